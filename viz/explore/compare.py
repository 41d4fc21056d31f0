"""Paint where another gradient disagrees with the graph's.

`compare` maps nodes to the other gradient (a hand-derived one, a finite difference):

    {leaf_value: 0.5, "w1": -1.5, "W": array}   a Value of the graph, a label, or an array's
                                                name whose leaves are labelled "W[i,j]" (engine.to_values)

For each compared node, the relative error against the replayed graph gradient g is

    rel = |other - g| / max(|other|, |g|, floor)

(`floor` keeps two zeros from dividing by zero). A node disagrees when rel > tolerance. Among
the compared nodes that disagree, the first in backward order (the nearest the root) is
marked: with interior nodes compared (a layer's hand-derived intermediate gradients), that is
where the manual backward first goes wrong; with leaves only, it is the first wrong leaf.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError
from engine.value import Value
from viz.explore.record import Recording

#: rel above this: the node is painted as disagreeing (the three-way check's NUMERIC rtol is 1e-6)
DEFAULT_TOLERANCE = 1e-6
#: the denominator's floor: two gradients both below it are compared absolutely
DEFAULT_FLOOR = 1e-12
#: legend bins: (upper bound of rel, css class, text)
BINS = (
    (1e-10, "err0", "rel < 1e-10"),
    (1e-6, "err1", "1e-10 .. 1e-6"),
    (1e-2, "err2", "1e-6 .. 1e-2"),
    (math.inf, "err3", ">= 1e-2"),
)


@dataclass
class Comparison:
    """rel error by node id, the ids that disagree, and the first of them in backward order (or -1)."""

    rel: dict[int, float] = field(default_factory=dict)
    other: dict[int, float] = field(default_factory=dict)
    disagree: list[int] = field(default_factory=list)
    first: int = -1
    tolerance: float = DEFAULT_TOLERANCE


def relative_error(a: float, b: float, floor: float = DEFAULT_FLOOR) -> float:
    """|a - b| / max(|a|, |b|, floor); infinite when either is NaN or infinite and they differ."""
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), floor)


def short_number(x: float) -> str:
    """A threshold as the page and the CLI both write it: "1e-6", "1e-10", "0.05" (no zero-padded exponent)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), f"{x:g}")


def bin_of(rel: float) -> str:
    """The legend's css class for `rel`."""
    return next(css for bound, css, _ in BINS if rel < bound)


def _entries(rec: Recording, compare: Mapping[Any, Any]) -> dict[int, float]:
    by_label: dict[str, list[int]] = {}
    for n in rec.nodes:
        if n.label:
            by_label.setdefault(n.label, []).append(n.id)
    index = rec.index()
    out: dict[int, float] = {}
    for key, grad in compare.items():
        if isinstance(key, Value):
            if key not in index:
                raise InputError(f"explore: compare holds a Value that is not part of the graph: {key!r}")
            out[index[key]] = float(grad)
        elif isinstance(key, str) and key in by_label and not hasattr(grad, "shape"):
            if len(by_label[key]) > 1:
                raise InputError(f"explore: compare label {key!r} names {len(by_label[key])} nodes; give the Value")
            out[by_label[key][0]] = float(grad)
        elif isinstance(key, str) and hasattr(grad, "shape"):
            _array_entries(key, grad, by_label, out)
        else:
            raise InputError(f"explore: compare key {key!r} is neither a Value of the graph nor a label in it")
    return out


def _array_entries(name: str, grad: Any, by_label: dict[str, list[int]], out: dict[int, float]) -> None:
    """An array gradient: entry [i,j] goes to the leaf labelled name[i,j] (a 0-d array to `name`)."""
    import numpy as np  # only an array compare needs it

    arr = np.asarray(grad, dtype=np.float64)
    if arr.ndim == 0:
        labels = [name]
    else:
        labels = [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(arr.shape)]
    found = 0
    for label, g in zip(labels, arr.reshape(-1).tolist()):
        for i in by_label.get(label, ()):
            out[i] = g
            found += 1
    if not found:
        raise InputError(f"explore: compare array {name!r}: no node of the graph is labelled {labels[0]!r} ...")


def compare_grads(
    rec: Recording, compare: Mapping[Any, Any], *, tolerance: float = DEFAULT_TOLERANCE, floor: float = DEFAULT_FLOOR
) -> Comparison:
    """The relative error of each compared node against the replayed graph gradient (module docstring)."""
    if hasattr(compare, "rows") and hasattr(compare, "sources"):  # an engine.GradientReport
        raise InputError(
            "explore: a GradientReport keeps only each input's worst entry, too little to paint every leaf; "
            "pass the other gradient itself, e.g. compare={'W': dW_manual, 'b': db_manual}"
        )
    if not isinstance(compare, Mapping):
        raise InputError(f"explore: compare must be a mapping of Value/label -> gradient, got {type(compare).__name__}")
    result = Comparison(tolerance=tolerance)
    for i, other in sorted(_entries(rec, compare).items()):
        rel = relative_error(rec.grads[i], other, floor)
        result.rel[i] = rel
        result.other[i] = other
        if not rel <= tolerance:
            result.disagree.append(i)
    result.first = (
        max(result.disagree) if result.disagree else -1
    )  # ids are topological: the largest is reached first backward
    return result
