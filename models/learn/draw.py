"""A failing backward drawn with the backprop explorer (`twograd learn check NAME --html FILE`).

The graph is twograd's own loops form of the piece on the failing case, on engine Values and
reduced by the same weighting R the check used (L = sum out * R), so its graph gradient is the
right one; the learner's manual gradient is painted onto its leaves (`viz.explore`'s `compare`),
so the page shows where theirs disagrees, leaf by leaf. Their code is not run here: their
gradients come from the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.learn.diagnose import Finding


def drawable(findings: list[Finding]) -> Finding | None:
    """The first finding that is a wrong gradient of an nn piece (the one worth drawing), if any."""
    return next((f for f in findings if f.drawable is not None), None)


def draw(finding: Finding, path: str | Path) -> tuple[Path, int, int]:
    """Write the explorer page of `finding`'s case to `path`; (the path, entries of yours that disagree, entries compared)."""
    from engine import Value, to_values
    from engine.gradcheck import _flatten
    from viz import explore

    spec, inputs, static, R, yours = finding.drawable
    piece = spec.reference()
    leaves = {n: to_values(np.asarray(a, dtype=np.float64), n) for n, a in inputs.items()}
    outs = _flatten(piece.loops(*leaves.values(), **static))
    weights = np.asarray(R, dtype=np.float64).reshape(-1).tolist()
    total: Any = outs[0] * weights[0]
    for leaf, w in zip(outs[1:], weights[1:]):
        total = total + leaf * w
    total = total if isinstance(total, Value) else Value(float(total))
    total.label = "L = sum(out * R)"
    total.backward()
    page = explore(
        total,
        compare={n: np.asarray(g, dtype=np.float64) for n, g in yours.items()},
        title=f"{piece.name}, case {finding.case!r}: your gradients painted on twograd's graph",
    )
    page.save(str(path))
    comparison = page.comparison  # None only when explore was given nothing to compare
    if comparison is None:
        return Path(path), 0, 0
    return Path(path), len(comparison.disagree), len(comparison.rel)
