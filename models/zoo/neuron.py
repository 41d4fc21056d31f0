"""The classic two-input tanh neuron, differentiated three ways.

    n = x1*w1 + x2*w2 + b
    o = tanh(n)

Hand-derived gradient (the "manual" way): with do/dn = 1 - o^2,

    do/dx1 = w1 (1 - o^2)     do/dw1 = x1 (1 - o^2)
    do/dx2 = w2 (1 - o^2)     do/dw2 = x2 (1 - o^2)
    do/db  = 1 - o^2
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from engine import (
    Explanation,
    GradientReport,
    InputError,
    UnknownNameError,
    Value,
    compare_gradients,
    explain,
    numerical_gradient,
)

if TYPE_CHECKING:  # viz is imported only when a page is written
    from viz.explore import Explorer

#: Inputs chosen so that n = 0.8814 and o = tanh(n) = 0.7071 = 1/sqrt(2): do/dn = 1/2.
NEURON_INPUTS: dict[str, float] = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}
NAMES = tuple(NEURON_INPUTS)


def neuron_graph(inputs: dict[str, float] | None = None) -> tuple[Value, dict[str, Value]]:
    """Build the neuron on labelled Values, run backward, return (o, leaves by name)."""
    vals = {k: Value(v, k) for k, v in (inputs or NEURON_INPUTS).items()}
    x1w1 = vals["x1"] * vals["w1"]
    x1w1.label = "x1*w1"
    x2w2 = vals["x2"] * vals["w2"]
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    n = s + vals["b"]
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o, vals


def neuron_float(x1: float, x2: float, w1: float, w2: float, b: float) -> float:
    """The same neuron on plain floats (for finite differences)."""
    return math.tanh(x1 * w1 + x2 * w2 + b)


def neuron_manual_grad(inputs: dict[str, float] | None = None) -> dict[str, float]:
    """The hand-derived gradient of o with respect to every input (see module docstring)."""
    p = inputs or NEURON_INPUTS
    o = neuron_float(**p)
    do_dn = 1.0 - o * o
    return {"x1": p["w1"] * do_dn, "x2": p["w2"] * do_dn, "w1": p["x1"] * do_dn, "w2": p["x2"] * do_dn, "b": do_dn}


def neuron_report(inputs: dict[str, float] | None = None) -> GradientReport:
    """Graph, hand-derived and finite-difference gradients of the neuron, compared."""
    p = inputs or NEURON_INPUTS
    _, leaves = neuron_graph(p)
    graph = {k: leaves[k].grad for k in NAMES}
    manual = neuron_manual_grad(p)
    numeric = dict(zip(NAMES, numerical_gradient(neuron_float, [p[k] for k in NAMES])))
    return compare_gradients({"graph": graph, "manual": manual, "numeric": numeric}, title="tanh neuron: do/d(input)")


def graph_for(expr: str | None = None, at: dict[str, float] | None = None) -> tuple[Value, dict[str, Value], str]:
    """(root, leaves by name, title) of `twograd graph`: the neuron, or the expression `expr`
    evaluated at `at` (engine.expr: parsed with ast, never eval), after backward."""
    if expr is None:
        if at:
            raise InputError("--at gives the variables of --expr; the neuron's inputs are fixed")
        o, leaves = neuron_graph()
        return o, leaves, "o = tanh(x1*w1 + x2*w2 + b)"
    from engine.expr import build_expression

    root, leaves = build_expression(expr, at or {})
    return root, leaves, root.label


def explain_graph(label: str, expr: str | None = None, at: dict[str, float] | None = None) -> Explanation:
    """`engine.explain(root, leaf)` for the leaf named `label` of `graph_for(expr, at)`."""
    root, leaves, _ = graph_for(expr, at)
    if label not in leaves:
        raise UnknownNameError(f"--explain: no input named {label!r}; the inputs are {', '.join(leaves)}")
    return explain(root, leaves[label])


def save_graph(
    path: Path,
    rankdir: str = "LR",
    expr: str | None = None,
    at: dict[str, float] | None = None,
    highlight: str | None = None,
) -> Path:
    """Draw `graph_for(expr, at)` to `path` for `twograd graph`, the paths from `highlight` coloured.

    A suffix that names no format is an InputError (exit 2); a missing or failing Graphviz `dot`
    is a viz.GraphvizError, a RunError (exit 1: the request was fine, this machine cannot render
    it), after the DOT text is saved beside `path`. OSErrors from writing pass through."""
    from viz import draw
    from viz.draw import SAVE_FORMATS

    suffix = Path(path).suffix
    if suffix.lower() not in SAVE_FORMATS:
        what = (
            f"the suffix {suffix!r} is not a known format"
            if suffix
            else "the file name has no suffix to say the format"
        )
        raise InputError(f"cannot save {str(path)!r}: {what}; use one of {' '.join(SAVE_FORMATS)}")
    root, leaves, title = graph_for(expr, at)
    if highlight is not None and highlight not in leaves:
        raise UnknownNameError(f"--explain: no input named {highlight!r}; the inputs are {', '.join(leaves)}")
    lit = leaves[highlight] if highlight is not None else None
    return draw(root, rankdir=rankdir, title=title, highlight=lit).save(path)


def explore_graph(path: Path, expr: str | None = None, at: dict[str, float] | None = None) -> Explorer:
    """Write the step-through page of `graph_for(expr, at)` to `path` for `twograd graph --html`
    (viz.explore); returns the Explorer (`.layout_error` says when there is no picture, `.table()`
    lists the steps). A suffix other than .html/.htm is an InputError (exit 2)."""
    from viz import explore

    root, _, title = graph_for(expr, at)
    explorer = explore(root, title=title)
    explorer.save(path)
    return explorer
