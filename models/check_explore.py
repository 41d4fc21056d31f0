"""`twograd check NAME --html FILE`: a registered piece's manual gradient painted onto its graph.

The graph is the one the three-way check differentiates (nn/registry.py's `check_three_way`): the
piece's loops form on the case's inputs as labelled leaves ("W[0,1]"), reduced to

    L = sum_i out_i r_i        r ~ N(0, 1), the check's own weighting (same seed, same numbers)

so dL/d(input) is what the check compares. The manual backward's gradient of every input is
given to `viz.explore(compare=...)`, which colours each leaf by its relative error against the
graph's. A piece gives no manual gradient of its interior nodes, so only leaves are painted.
(`twograd learn check NAME --html FILE` paints a learner's backward the same way: models/learn/draw.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import InputError, Value, dot, to_values
from models.check import pieces

if TYPE_CHECKING:  # viz is imported only when a page is written
    from viz.explore import Explorer


def _leaves(nested: Any) -> list[Any]:
    """The entries of nested lists, row-major (the loops form's output, flattened)."""
    if isinstance(nested, (list, tuple)):
        return [leaf for item in nested for leaf in _leaves(item)]
    return [nested]


def explore_case(
    piece: Any,
    case: str,
    inputs: dict[str, np.ndarray],
    static: dict[str, Any],
    weights: np.ndarray,
    other: dict[str, np.ndarray],
    *,
    atol: float,
    rtol: float,
    who: str = "manual backward",
) -> Explorer:
    """The explorer of `piece`'s loops form on `inputs` (labelled leaves), reduced to L = sum(out * weights),
    with `other` (input name -> a gradient of L, e.g. a backward's) painted on the leaves.

    A leaf is painted as disagreeing when |other - g| > rtol * max(|other|, |g|, atol / rtol), the
    check's own rule |a - b| <= atol + rtol max(|a|, |b|) to within a factor of 2. A gradient whose
    shape is not its input's is an InputError naming both (it cannot be painted entry by entry)."""
    from viz import explore

    for n, g in other.items():
        if np.shape(g) != np.shape(inputs[n]):
            raise InputError(
                f"the {who}'s d{n} has shape {np.shape(g)}, the input {n} has {np.shape(inputs[n])}: "
                "nothing to paint entry by entry"
            )
    leaves = {n: to_values(a, n) for n, a in inputs.items()}
    outs = _leaves(piece.loops(*leaves.values(), **static))
    loss = dot(
        outs, np.asarray(weights, dtype=np.float64).reshape(-1).tolist()
    )  # the weights are constants: no edge, no hub
    if not isinstance(loss, Value):
        raise InputError(f"piece {piece.name!r}: its output does not depend on its inputs on case {case!r}")
    loss.label = "L"
    title = f"{piece.name}[{case}]: L = sum(out * r); painted: the {who} vs the graph's gradient"
    return explore(
        loss,
        compare={n: np.asarray(g, dtype=np.float64) for n, g in other.items()},
        title=title,
        tolerance=rtol,
        floor=atol / rtol,
    )


def piece_explorer(name: str, seed: int = 0) -> Explorer:
    """The explorer of piece `name` on its first case, its manual gradient painted on the leaves."""
    piece = pieces([name])[0]
    case = piece.cases[0]
    inputs, static = case.make(np.random.default_rng(seed))  # as nn.registry.check_piece makes them
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    out, cache = piece.forward(*inputs.values(), **static)
    weights = np.random.default_rng(seed + 1).standard_normal(np.shape(out))  # as check_three_way weighs the output
    manual = {n: np.asarray(g, dtype=np.float64) for n, g in zip(inputs, piece.backward(weights.copy(), cache))}
    return explore_case(piece, case.name, inputs, static, weights, manual, atol=piece.exact.atol, rtol=piece.exact.rtol)


def write_piece_page(name: str, path: Path, seed: int = 0) -> Explorer:
    """`piece_explorer(name, seed)` saved to `path` (.html); returns the explorer."""
    explorer = piece_explorer(name, seed)
    explorer.save(path)
    return explorer
