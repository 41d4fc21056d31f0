"""A small arithmetic expression, read safely (Python's `ast`, never `eval`) and built on Values.

    >>> from engine.expr import build_expression
    >>> root, leaves = build_expression("tanh(x*w + b)", {"x": 0.5, "w": -1.0, "b": 2.0})
    >>> round(root.data, 6), round(leaves["b"].grad, 6)
    (0.905148, 0.180707)

Accepted: numbers, variable names, `+ - * / **`, unary `-` and `+`, and calls of the engine's
functions exp log sqrt tanh sigmoid relu erf and abs with one argument; a function's name is
never a variable (`exp + x` is an InputError). Anything else (an attribute, a subscript, a keyword,
a string, a lambda, ...) is an InputError naming it. Every interior node is labelled with its
own source text, as written, so `explain` and `viz.draw` read like the expression. Standard library only, like the rest of `engine`.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engine import functions
from engine.errors import InputError
from engine.value import Value

#: longer expressions are refused before parsing (the parser nests, the evaluation recurses)
MAX_EXPRESSION_CHARS = 500

FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "exp": functions.exp,
    "log": functions.log,
    "sqrt": functions.sqrt,
    "tanh": functions.tanh,
    "sigmoid": functions.sigmoid,
    "relu": functions.relu,
    "erf": functions.erf,
    "abs": abs,
}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: lambda a: a,
}  # Value has no unary +: +a is a


def _source(text: str, node: ast.AST) -> str:
    """The part of `text` that `node` was parsed from, as the user wrote it (ast.unparse would
    recurse once per level of nesting, and re-space it)."""
    return ast.get_source_segment(text, node) or type(node).__name__


def parse_expression(text: str) -> ast.expr:
    """The checked syntax tree of `text`; InputError for anything outside the grammar above."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("--expr: needs an expression such as 'tanh(x*w + b)'")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InputError(f"--expr: at most {MAX_EXPRESSION_CHARS} characters, got {len(text)}")
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise InputError(f"--expr: {text!r} is not an expression: {getattr(err, 'msg', err)}") from None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and id(node) not in called:
            # a function's name is not a variable: `exp + x` would look up a leaf that never exists
            raise InputError(
                f"--expr: {node.id!r} is a function, not a variable: call it as {node.id}(...), or give the variable another name"
            )
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            raise InputError(f"--expr: the operator in {_source(text, node)!r} is not one of + - * / **")
        if isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
            raise InputError(f"--expr: the operator in {_source(text, node)!r} is not - or +")
        if (
            isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Name, ast.Load))
            or type(node) in _BINARY
            or type(node) in _UNARY
        ):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            continue
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in FUNCTIONS and len(node.args) == 1 and not node.keywords:
                continue
            raise InputError(
                f"--expr: {_source(text, node)!r}: only {', '.join(FUNCTIONS)} with one argument can be called"
            )
        raise InputError(
            f"--expr: {_source(text, node)!r} is not allowed (numbers, names, + - * / **, and function calls only)"
        )
    return tree


def variables(tree: ast.expr) -> list[str]:
    """The variable names of a parsed expression, in order of first use."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS]
    found.sort(key=lambda n: (n.lineno, n.col_offset))  # ast.walk is breadth-first: back to reading order
    return list(dict.fromkeys(n.id for n in found))


def build_expression(text: str, at: Mapping[str, float]) -> tuple[Value, dict[str, Value]]:
    """Parse `text`, build it on labelled leaf Values from `at` (name -> number), run backward.

    Returns (root, leaves by name). InputError when a variable has no value or a value names
    no variable, or when the expression cannot be evaluated there (log of 0, an overflow).
    """
    text = text.strip() if isinstance(text, str) else text
    tree = parse_expression(text)
    names = variables(tree)
    missing = [n for n in names if n not in at]
    extra = [n for n in at if n not in names]
    if missing or extra:
        parts = ([f"no value for {', '.join(missing)}"] if missing else []) + (
            [f"{', '.join(extra)} not in the expression"] if extra else []
        )
        raise InputError(f"--at: {'; '.join(parts)} (the expression uses {', '.join(names) or 'no variables'})")
    leaves = {n: Value(float(at[n]), n) for n in names}

    def build(node: ast.expr) -> Value | float:
        if isinstance(node, ast.Constant) and isinstance(
            node.value, (int, float)
        ):  # (parse_expression allowed no other)
            return float(node.value)  # floats only: no giant integers from 9**9**9
        if isinstance(node, ast.Name):
            return leaves[node.id]
        out: Value | float
        if isinstance(node, ast.BinOp):
            out = _BINARY[type(node.op)](build(node.left), build(node.right))
        elif isinstance(node, ast.UnaryOp):
            out = _UNARY[type(node.op)](build(node.operand))
        else:
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # parse_expression allowed no other
            out = FUNCTIONS[node.func.id](build(node.args[0]))
        if isinstance(out, Value) and not out.label:
            out.label = _source(text, node)
        return out

    try:
        root = build(tree)
    except (ValueError, ZeroDivisionError, OverflowError) as err:
        raise InputError(f"--expr: {text!r} at {dict(at)}: {err}") from None
    if not isinstance(root, Value):
        raise InputError(f"--expr: {text!r} has no variable, so there is no gradient to explain")
    root.backward()
    return root, leaves
