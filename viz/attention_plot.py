"""Heatmaps of attention weights, one panel per head, tokens on the axes.

    >>> from viz.attention_plot import plot_attention
    >>> plot_attention(weights, tokens, tokens, "attention.png")   # weights (H, Tq, Tk) or (Tq, Tk)

matplotlib is optional (the `plot` extra, `pip install 'twograd[plot]'`) and is imported
only inside `plot_attention`, so `import viz` never pulls it in. The figure is drawn on
an Agg canvas directly (no pyplot, no `matplotlib.use`): it renders without a display and
leaves the backend of a notebook or GUI session that imported us untouched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence, Union

INSTALL_HINT = "pip install 'twograd[plot]'"
#: panels whose cells are annotated with their weight (more cells would be unreadable)
ANNOTATE_MAX_CELLS = 100


class PlotsUnavailable(ImportError):
    """matplotlib is not installed; the message (one line) says how to get it."""


def _as_float_grid(weights: Any) -> list[list[list[float]]]:
    """weights as (H, Tq, Tk) nested lists of floats; accepts arrays, nested lists, Values."""
    data = weights.tolist() if hasattr(weights, "tolist") else weights

    def depth(x: Any) -> int:
        n = 0
        while isinstance(x, (list, tuple)):
            if not x:
                raise ValueError("plot_attention: weights have an empty axis")
            n += 1
            x = x[0]
        return n

    nd = depth(data)
    if nd == 2:
        data = [data]
    elif nd != 3:
        raise ValueError(f"plot_attention: weights must have shape (H, Tq, Tk) or (Tq, Tk), got {nd} axes")

    def num(x: Any) -> float:
        return float(x.data) if hasattr(x, "data") and not hasattr(x, "shape") else float(x)

    grid = [[[num(x) for x in row] for row in head] for head in data]
    Tq, Tk = len(grid[0]), len(grid[0][0])
    for h, head in enumerate(grid):
        if len(head) != Tq or any(len(row) != Tk for row in head):
            raise ValueError(f"plot_attention: head {h} is not a {Tq} x {Tk} grid like head 0")
    return grid


def plot_attention(
    weights: Any,
    tokens_q: Sequence[str],
    tokens_k: Sequence[str],
    path: Union[str, os.PathLike],
    *,
    title: str | None = None,
) -> Path:
    """Save a heatmap of attention weights (one panel per head) to `path` (PNG); return the path.

    Args:
        weights: (H, Tq, Tk) or (Tq, Tk): row i holds how much query token i attends to
            each key token (rows sum to 1; masked cells are 0).
        tokens_q: Tq labels for the rows (queries).
        tokens_k: Tk labels for the columns (keys).
        path: where to write; the suffix picks the format (.png recommended).
        title: a caption over the panels.

    Raises:
        ValueError: the weights are not a (H,) Tq x Tk grid, or the token counts differ from it.
        PlotsUnavailable: matplotlib is not installed (an ImportError naming the install command).
    """
    grid = _as_float_grid(weights)
    H, Tq, Tk = len(grid), len(grid[0]), len(grid[0][0])
    if len(tokens_q) != Tq:
        raise ValueError(f"plot_attention: {len(tokens_q)} query tokens for {Tq} rows of weights (shape ({H}, {Tq}, {Tk}))")
    if len(tokens_k) != Tk:
        raise ValueError(f"plot_attention: {len(tokens_k)} key tokens for {Tk} columns of weights (shape ({H}, {Tq}, {Tk}))")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"attention heatmaps need matplotlib: {INSTALL_HINT}") from None

    cell = 0.45  # inches per token, so labels stay readable
    width = max(3.0, H * (cell * Tk + 1.2) + 0.8)
    height = max(2.8, cell * Tq + 1.6)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, H, squeeze=False)[0]
    image = None
    for h, ax in enumerate(axes):
        image = ax.imshow(grid[h], vmin=0.0, vmax=1.0, cmap="Blues", aspect="equal")
        ax.set_xticks(range(Tk))
        ax.set_xticklabels([str(t) for t in tokens_k], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(Tq))
        ax.set_yticklabels([str(t) for t in tokens_q], fontsize=8)
        ax.set_xlabel("key")
        if h == 0:
            ax.set_ylabel("query")
        ax.set_title(f"head {h}" if H > 1 else "attention", fontsize=10)
        if Tq * Tk <= ANNOTATE_MAX_CELLS:
            for i in range(Tq):
                for j in range(Tk):
                    w = grid[h][i][j]
                    ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=6, color="white" if w > 0.6 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02, label="weight")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path)
    return path
