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
from typing import Callable

from engine import GradientReport, InputError, RunError, Value, compare_gradients, numerical_gradient

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


def draw_neuron(path: Path, rankdir: str = "LR") -> Path:
    """Draw the neuron after backward to `path` (format from the suffix)."""
    from viz import draw

    o, _ = neuron_graph()
    return draw(o, rankdir=rankdir, title="o = tanh(x1*w1 + x2*w2 + b)").save(path)


def save_neuron_graph(path: Path, rankdir: str = "LR") -> Path:
    """`draw_neuron` for `twograd graph`, with viz's errors as twograd's: a suffix that names no
    format is an InputError (exit 2); a missing or failing Graphviz `dot` is a RunError (exit 1:
    the request was fine, this machine cannot render it). OSErrors from writing pass through."""
    from viz import GraphvizNotFound
    from viz.draw import SAVE_FORMATS

    suffix = Path(path).suffix
    if suffix.lower() not in SAVE_FORMATS:
        what = f"the suffix {suffix!r} is not a known format" if suffix else "the file name has no suffix to say the format"
        raise InputError(f"cannot save {str(path)!r}: {what}; use one of {' '.join(SAVE_FORMATS)}")
    try:
        return draw_neuron(path, rankdir=rankdir)
    except GraphvizNotFound as err:
        raise RunError(str(err)) from None
    except RuntimeError as err:  # `dot` ran and failed: its own message says why
        raise RunError(str(err)) from err


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage 1: the neuron's three-way gradient table and its graph picture."""
    from viz import GraphvizNotFound

    o, _ = neuron_graph()
    echo(f"o = tanh(x1*w1 + x2*w2 + b) = {o.data:.6f}")
    report = neuron_report()
    echo(str(report))
    try:
        path = draw_neuron(out_dir / "neuron.svg")
    except GraphvizNotFound as err:
        echo(f"(no picture: {err})")
        path = draw_neuron(out_dir / "neuron.dot")
    echo(f"wrote {path}")
    return report.passed
