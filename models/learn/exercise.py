"""The Exercise type: everything about one exercise in one entry of the table (catalog.py).

An exercise names the functions the learner writes by the import path of twograd's own
version (`"nn.linear:linear_forward"`): that function is the reference the grader compares
with, its name and signature are the ones the learner must use, its docstring (and its
module's) is the math `learn show` prints, and its file is what `learn solution` names.
Nothing of the math is copied here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: the plan's phases, in order
PHASES: tuple[str, ...] = ("Phase 0", "Phase 1", "Phase 2", "Phase 3", "Extensions")


def resolve(ref: str) -> Any:
    """ "package.module:attr.attr" -> the object; "package.module" -> the module."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


#: a module's docstring turns into the backward's derivation at its first paragraph that starts with one of these
DERIVATION_STARTS: tuple[str, ...] = ("Gradient", "Backward", "Derivation", "`backward()`")


def split_derivation(ref: str, doc: str) -> tuple[str, str]:
    """(the forward's math, the backward's derivation) of the docstring of `ref`.

    The rule: the docstring of a function or method named `*backward` is all derivation; any other
    docstring is forward math up to its first paragraph that starts with one of DERIVATION_STARTS
    ("Gradient (the derivation ...)" in nn.distill, "`backward()` is then ..." in engine.value), and
    derivation from there on.
    """
    doc = doc.strip()
    if ref.partition(":")[2].rsplit(".", 1)[-1].endswith("backward"):
        return "", doc
    paragraphs = doc.split("\n\n")
    for i, para in enumerate(paragraphs):
        if i and para.lstrip().startswith(DERIVATION_STARTS):
            return "\n\n".join(paragraphs[:i]).strip(), "\n\n".join(paragraphs[i:]).strip()
    return doc, ""


@dataclass(frozen=True)
class Fn:
    """One function (or class) the learner writes, named by twograd's own version of it.

    `signature` overrides the reference's when ours takes extras a learner does not need
    (attention_loops' `trace=`); `optional` marks a stretch goal (the block's backward).
    """

    ref: str
    signature: str = ""
    optional: bool = False
    #: the learner's name when it differs from ours (adam_step for the step inside nn.optim.Adam)
    alias: str = ""
    #: what an aliased function takes and returns (ours is a class, so its docstring is not that contract)
    contract: str = ""

    @property
    def name(self) -> str:
        return self.alias or self.ref.partition(":")[2].rsplit(".", 1)[-1]

    def reference(self) -> Any:
        return resolve(self.ref)

    def text_signature(self) -> str:
        """`name(args)` without type annotations: the names, defaults and `*` the learner must keep."""
        if self.signature:
            return f"{self.name}{self.signature}"
        obj = self.reference()
        if inspect.isclass(obj) and not self.alias:
            return f"class {self.name}"
        sig = inspect.signature(obj)
        params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
        return f"{self.name}{sig.replace(parameters=params, return_annotation=inspect.Signature.empty)}"

    def location(self) -> str:
        """'nn/linear.py, linear_forward' (the file, relative to twograd's root, and the name in it)."""
        module = self.ref.partition(":")[0]
        return f"{module.replace('.', '/')}.py, {self.ref.partition(':')[2]}"


class Grader(Protocol):
    """How an exercise is graded: the tasks for the child, and the findings from its results."""

    def plan(self, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
        """(tasks, arrays, context): what the child runs, the arrays it needs, what `judge` needs later."""

    def judge(self, outcome: Any, context: Any) -> list[Any]:
        """The findings (diagnose.Finding), empty when everything agrees with the reference."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of the plan: one entry of `catalog.EXERCISES`."""

    name: str
    phase: str
    title: str
    functions: tuple[Fn, ...]
    #: import paths whose docstrings are the math, printed in this order (a module, then functions)
    math: tuple[str, ...]
    #: what to derive, in one or two sentences (the derivation itself is in the docstrings)
    derive: str
    builds_on: tuple[str, ...]
    #: graded hints: first where to look, then the formula; never the code
    hints: tuple[str, ...]
    grader: Grader
    #: other places of twograd's own version worth reading (beyond the functions' own files)
    see_also: tuple[str, ...] = field(default_factory=tuple)

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.functions if not f.optional]

    def _split_math(self) -> tuple[list[str], list[str]]:
        forward: list[str] = []
        backward: list[str] = []
        for ref in self.math:
            title = ref.partition(":")[2] or ref
            ahead, derivation = split_derivation(ref, inspect.getdoc(resolve(ref)) or "")
            if ahead:
                forward.append(f"[{title}]\n{ahead}")
            if derivation:
                backward.append(f"[{title}]\n{derivation}")
        return forward, backward

    def math_text(self) -> str:
        """The forward's math and what to derive, from the library's own docstrings (module first, then each
        function's), WITHOUT the derivation of the backward (see `split_derivation`): `show` and the stub print it."""
        return "\n\n".join(self._split_math()[0])

    def derivation_text(self) -> str:
        """The backward's derivation, from the same docstrings: given with the hint that gives the formula."""
        return "\n\n".join(self._split_math()[1])

    @property
    def formula_level(self) -> int:
        """The hint level that gives the formula (and with it the derivation): the second, or the only one."""
        return min(2, len(self.hints))

    def solution(self) -> list[str]:
        """Where twograd's own version lives: 'file, function' per function, then the see-also places."""
        return [f.location() for f in self.functions] + list(self.see_also)


Make = Callable[..., Any]
