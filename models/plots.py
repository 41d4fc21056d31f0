"""Pictures of a training run: the loss curve and, for 2-D data, the decision boundary.

matplotlib is optional (the `plot` extra: `pip install 'twograd[plot]'`) and imported only
when a picture is drawn. Figures are rendered with the Agg canvas directly, without pyplot,
so drawing never changes the backend of a notebook or a GUI session that imported us.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

INSTALL_HINT = "pip install 'twograd[plot]'"


class PlotsUnavailable(ImportError):
    """matplotlib is not installed; the message says how to get it."""


def _figure(width: float, height: float) -> Any:
    """A new matplotlib Figure on an Agg canvas, or PlotsUnavailable."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"pictures need matplotlib: {INSTALL_HINT}") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def matplotlib_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        _figure(1, 1)
    except PlotsUnavailable:
        return False
    return True


def plot_loss(losses: Sequence[float], path: Path, title: str = "training loss") -> Path:
    """Save the loss per step as a PNG (log scale when the loss stays positive); return `path`."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    values = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(values) + 1)
    ax.plot(steps, values, color="tab:blue", linewidth=1.2)
    if len(values) and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    path: Path,
    *,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    title: str = "decision boundary",
    resolution: int = 200,
    margin: float = 0.5,
) -> Path:
    """Colour the plane by `predict` (class per row of an (M, 2) array) and draw the points.

    Training points are circles, test points (if given) squares, coloured by their true class. `margin`
    widens the drawn box around the data; `resolution` is the grid size per side.
    """
    if X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: needs 2-D inputs, X has shape {X.shape}")
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    points = X if X_test is None else np.concatenate([X, X_test])
    lo = points.min(axis=0) - margin
    hi = points.max(axis=0) + margin
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.stack([g1.ravel(), g2.ravel()], axis=1)  # (resolution^2, 2)
    classes = np.asarray(predict(grid)).reshape(g1.shape)  # (resolution, resolution)
    n_classes = int(max(classes.max(), y.max(), 1)) + 1
    cmap = "coolwarm" if n_classes == 2 else "viridis"
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(g1, g2, classes, levels=levels, cmap=cmap, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=0, vmax=n_classes - 1, s=22, edgecolors="k", linewidths=0.5, label="train")
    if X_test is not None and y_test is not None:
        ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap=cmap, vmin=0, vmax=n_classes - 1, s=26, marker="s", edgecolors="k", linewidths=0.8, label="test")
        ax.legend(loc="best", fontsize=8)
    if class_names:
        ax.set_title(f"{title}\nclasses: {', '.join(class_names)}", fontsize=10)
    else:
        ax.set_title(title)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
