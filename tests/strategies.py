"""Hypothesis strategies for the engine: random expression trees that stay inside every op's domain.

An expression is a small tree of tuples,

    ("x", i)                      the i-th input variable
    (op, child)                   a unary op, e.g. ("tanh", ("x", 0))
    (op, child, child)            a binary op
    (op, c, child)                an op with a float constant c on one side
    ("sum", child, child, ...)    Python's built-in sum over the children
    ("total", child, child, ...)  engine.total over the children (one fused node)
    ("dot", w.., x..)             engine.dot(first half, second half) (one fused node)
    ("dot_c", (c, ..), child, ..) engine.dot with float constants as the weights
    ("softmax", k, child, ..)     output k (mod n) of engine.softmax over the children (fused row op)
    ("rms_norm", k, x.., g..)     output k (mod n) of engine.rms_norm(first half, second half, RMS_EPS)
    ("cross_entropy", t, child, ..)  engine.cross_entropy over the children, target t (mod n)

and `evaluate(tree, xs)` computes it with the engine's free functions and operators only,
so the *same* tree runs on plain floats (a reference, and what finite differences perturb)
and on `engine.Value`s (where `backward()` gives the gradient under test).

Domains are kept by construction, the way minitorch shifts inputs away from undefined points:

    log(a)   -> log(a*a + c)        c >= 0.1, so the argument is >= 0.1
    sqrt(a)  -> sqrt(a*a + c)       c >= 0.1, away from the infinite slope at 0
    a / b    -> a / (b*b + 1)       the divisor is >= 1
    a ** p   -> (a*a + c) ** p      a positive base for any real constant p
    a ** b   -> (a*a + c) ** tanh(b)  a positive base, a bounded Value exponent
    a ** k   -> a ** k              k in {2, 3}: any base
    c ** a   -> c ** tanh(a)        2 ** v style, c > 0, bounded exponent
    log(exp(a)) and sqrt(exp(a))    also drawn: log/sqrt of a positive exp

What construction cannot rule out, `check_domain` measures on the float run: an exp of a
large argument (overflow, and a huge |f| ruins finite differences) and a ReLU argument
within `KINK_MARGIN` of its kink at 0 (central differences straddling the kink see a slope
of 1/2, not 0 or 1). Tests `assume()` those away; with the bounds below few draws are lost.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

import engine

Tree = tuple

#: leaves are drawn from [-LEAF_BOUND, LEAF_BOUND]; small enough that products of a few stay modest.
LEAF_BOUND = 2.0
#: ReLU arguments must be at least this far from 0: central differences with eps=1e-6 then never straddle the kink.
KINK_MARGIN = 1e-3
#: largest |intermediate value| accepted; bounds the rounding error of finite differences (~1e-10 * this).
MAX_MAGNITUDE = 1e3
#: smallest shift c in log(a*a + c), sqrt(a*a + c), (a*a + c) ** p: keeps arguments >= c.
MIN_SHIFT = 0.1
#: the eps of the drawn RMSNorms: keeps r = 1/sqrt(mean(x^2) + eps) <= 3.2 even for a row near 0,
#: so its slopes stay modest where finite differences look at them.
RMS_EPS = 0.1


# ------------------------------------------------------------------ the op table
# Each entry works on floats and on Values alike (operators and engine's free functions).
def _sq_plus(a: Any, c: float) -> Any:
    return a * a + c


UNARY: dict[str, Callable[[Any], Any]] = {
    "neg": lambda a: -a,
    "exp": engine.exp,
    "tanh": engine.tanh,
    "sigmoid": engine.sigmoid,
    "relu": engine.relu,
    "erf": engine.erf,
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "log_exp": lambda a: engine.log(engine.exp(a)),
    "sqrt_exp": lambda a: engine.sqrt(engine.exp(a)),
}

#: unary ops that take a positive float constant c as well: op(c, a).
UNARY_CONST: dict[str, Callable[[float, Any], Any]] = {
    "log_sq": lambda c, a: engine.log(_sq_plus(a, c)),
    "sqrt_sq": lambda c, a: engine.sqrt(_sq_plus(a, c)),
    "radd": lambda c, a: c + a,
    "add_c": lambda c, a: a + c,
    "rsub": lambda c, a: c - a,
    "sub_c": lambda c, a: a - c,
    "rmul": lambda c, a: c * a,
    "mul_c": lambda c, a: a * c,
    "rdiv": lambda c, a: c / _sq_plus(a, 1.0),
    "div_c": lambda c, a: a / c,
    "pow_c": lambda c, a: _sq_plus(a, 1.0) ** c,  # c is any real exponent here
    "rpow": lambda c, a: c ** engine.tanh(a),  # 2 ** v style
}

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / _sq_plus(b, 1.0),
    "pow_v": lambda a, b: _sq_plus(a, 0.5) ** engine.tanh(b),
}


def _rms_output(k: int, parts: list[Any]) -> Any:
    half = len(parts) // 2
    return engine.rms_norm(parts[:half], parts[half:], RMS_EPS)[k % half]


#: the fused row ops, each reduced to one of its outputs: op(k, children) -> scalar.
ROW_OPS: dict[str, Callable[[int, list[Any]], Any]] = {
    "softmax": lambda k, parts: engine.softmax(parts)[k % len(parts)],
    "rms_norm": _rms_output,
    "cross_entropy": lambda t, parts: engine.cross_entropy(parts, t % len(parts)),
}

# Ranges of the float constant for each UNARY_CONST op.
_CONST_RANGE: dict[str, tuple[float, float]] = {
    "log_sq": (MIN_SHIFT, 3.0),
    "sqrt_sq": (MIN_SHIFT, 3.0),
    "radd": (-3.0, 3.0),
    "add_c": (-3.0, 3.0),
    "rsub": (-3.0, 3.0),
    "sub_c": (-3.0, 3.0),
    "rmul": (-3.0, 3.0),
    "mul_c": (-3.0, 3.0),
    "rdiv": (-3.0, 3.0),
    "div_c": (0.25, 4.0),  # also drawn negated below: a / c with |c| >= 0.25
    "pow_c": (-2.5, 2.5),
    "rpow": (0.25, 4.0),
}


# ------------------------------------------------------------------ evaluation
def evaluate(tree: Tree, xs: list[Any], visit: Callable[[str, Any, Any], None] | None = None) -> Any:
    """The value of `tree` at inputs `xs` (floats or Values).

    `visit(op, argument, result)` is called for every node (argument is the first operand),
    which `check_domain` uses to inspect intermediates.
    """
    op = tree[0]
    if op == "x":
        out = xs[tree[1]]
        arg = out
    elif op == "sum":
        parts = [evaluate(t, xs, visit) for t in tree[1:]]
        out = builtins.sum(parts)
        arg = parts[0]
    elif op == "total":
        parts = [evaluate(t, xs, visit) for t in tree[1:]]
        out = engine.total(parts)
        arg = parts[0]
    elif op == "dot":
        parts = [evaluate(t, xs, visit) for t in tree[1:]]
        half = len(parts) // 2
        out = engine.dot(parts[:half], parts[half:])
        arg = parts[0]
    elif op == "dot_c":
        parts = [evaluate(t, xs, visit) for t in tree[2:]]
        out = engine.dot(list(tree[1]), parts)
        arg = parts[0]
    elif op in ROW_OPS:
        parts = [evaluate(t, xs, visit) for t in tree[2:]]
        out = ROW_OPS[op](tree[1], parts)
        arg = parts[0]
    elif op in UNARY:
        arg = evaluate(tree[1], xs, visit)
        out = UNARY[op](arg)
    elif op in UNARY_CONST:
        arg = evaluate(tree[2], xs, visit)
        out = UNARY_CONST[op](tree[1], arg)
    else:
        arg = evaluate(tree[1], xs, visit)
        out = BINARY[op](arg, evaluate(tree[2], xs, visit))
    if visit is not None:
        visit(op, arg, out)
    return out


@dataclass
class DomainCheck:
    ok: bool
    largest: float  # the largest |intermediate| seen (drives the finite-difference tolerance)
    why: str = ""


def check_domain(tree: Tree, xs: list[float]) -> DomainCheck:
    """Evaluate `tree` on floats and say whether finite differences are trustworthy there."""
    largest = 0.0
    problem = ""

    def visit(op: str, arg: Any, out: Any) -> None:
        nonlocal largest, problem
        largest = max(largest, abs(arg), abs(out))
        if op == "relu" and abs(arg) < KINK_MARGIN:
            problem = problem or f"relu argument {arg!r} within {KINK_MARGIN} of the kink"

    try:
        evaluate(tree, xs, visit)
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        return DomainCheck(False, float("inf"), f"{type(exc).__name__}: {exc}")
    if largest > MAX_MAGNITUDE:
        problem = problem or f"an intermediate of size {largest:.3g} exceeds {MAX_MAGNITUDE}"
    return DomainCheck(not problem, largest, problem)


def n_vars(tree: Tree) -> int:
    """1 + the largest variable index used in `tree` (0 if it has no variables)."""
    if tree[0] == "x":
        return tree[1] + 1
    return max((n_vars(t) for t in tree[1:] if isinstance(t, tuple)), default=0)


def render(tree: Tree) -> str:
    """A readable formula for failure messages, e.g. 'tanh(mul(x0, x1))'."""
    if tree[0] == "x":
        return f"x{tree[1]}"
    if not isinstance(tree[0], str):  # the constant weights of a dot_c
        return repr(list(tree))
    args = [render(t) if isinstance(t, tuple) else repr(t) for t in tree[1:]]
    return f"{tree[0]}({', '.join(args)})"


# ------------------------------------------------------------------ strategies
def leaf_values(bound: float = LEAF_BOUND) -> st.SearchStrategy[float]:
    """Finite floats in [-bound, bound]."""
    return st.floats(min_value=-bound, max_value=bound, allow_nan=False, allow_infinity=False)


def _const_for(op: str) -> st.SearchStrategy[float]:
    lo, hi = _CONST_RANGE[op]
    c = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    if op == "div_c":
        return st.tuples(c, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])
    return c


def expressions(n_inputs: int = 3, max_leaves: int = 8) -> st.SearchStrategy[Tree]:
    """Random expression trees over variables x0..x{n_inputs-1}, every op in the table."""
    leaves = st.builds(lambda i: ("x", i), st.integers(min_value=0, max_value=n_inputs - 1))

    def extend(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
        unary = st.tuples(st.sampled_from(sorted(UNARY)), children)
        unary_const = st.sampled_from(sorted(UNARY_CONST)).flatmap(
            lambda op: st.tuples(st.just(op), _const_for(op), children)
        )
        binary = st.tuples(st.sampled_from(sorted(BINARY)), children, children)
        summed = st.lists(children, min_size=2, max_size=3).map(lambda ts: ("sum", *ts))
        totals = st.lists(children, min_size=1, max_size=4).map(lambda ts: ("total", *ts))
        dots = st.integers(min_value=1, max_value=3).flatmap(
            lambda n: st.lists(children, min_size=2 * n, max_size=2 * n).map(lambda ts: ("dot", *ts))
        )
        constant = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)
        dots_c = st.lists(st.tuples(constant, children), min_size=1, max_size=3).map(
            lambda pairs: ("dot_c", tuple(c for c, _ in pairs), *(t for _, t in pairs))
        )
        index = st.integers(min_value=0, max_value=3)
        softmaxes = st.tuples(index, st.lists(children, min_size=1, max_size=4)).map(
            lambda kt: ("softmax", kt[0], *kt[1])
        )
        rms_norms = st.tuples(index, st.integers(min_value=1, max_value=2)).flatmap(
            lambda kn: st.lists(children, min_size=2 * kn[1], max_size=2 * kn[1]).map(
                lambda ts: ("rms_norm", kn[0], *ts)
            )
        )
        entropies = st.tuples(index, st.lists(children, min_size=1, max_size=4)).map(
            lambda kt: ("cross_entropy", kt[0], *kt[1])
        )
        return st.one_of(unary, unary_const, binary, summed, totals, dots, dots_c, softmaxes, rms_norms, entropies)

    return st.recursive(leaves, extend, max_leaves=max_leaves)


@st.composite
def expression_and_point(draw: Callable, n_inputs: int = 3, max_leaves: int = 8) -> tuple[Tree, list[float]]:
    """A tree and a point (one float per variable it uses, at least one)."""
    tree = draw(expressions(n_inputs=n_inputs, max_leaves=max_leaves))
    xs = draw(st.lists(leaf_values(), min_size=max(1, n_vars(tree)), max_size=max(1, n_vars(tree))))
    return tree, xs
