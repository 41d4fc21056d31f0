"""Pictures of a run: loss curves, decision boundaries of 2-D classifiers, attention heatmaps.

    >>> from viz.plots import plot_loss, plot_decision_boundary, plot_attention
    >>> plot_loss(losses, "runs/x/loss.png", validation={"val loss": (eval_steps, val_losses)})
    >>> plot_decision_boundary(model.predict, X, y, "runs/x/boundary.png")
    >>> plot_attention(weights, tokens, tokens, "runs/x/attention.png")   # weights (H, Tq, Tk) or (Tq, Tk)

matplotlib is optional (the `plot` extra) and imported only when a picture is drawn, so
`import viz` never pulls it in; without it every function raises the one `PlotsUnavailable`
(an ImportError whose one-line message names `pip install -e ".[plot]"`).

No pyplot: each figure is a `matplotlib.figure.Figure` on its own Agg canvas, so drawing
needs no display, never changes the backend of a notebook or GUI session that imported us,
and leaves no figure registered in pyplot's global state. The figure is rendered to bytes
in memory and written with `engine.atomic.atomic_write`: a reader never sees a half-drawn
file, a failed save leaves the old picture intact, and the file's mode follows the umask.
The suffix of `path` picks the format (SAVE_FORMATS).

Shape legend (the letters of the docstrings below):

    N   training steps (one loss each)          E   evaluations of one curve
    M   points in the plane (rows of X)         G   grid cells per side of a boundary plot
    H   attention heads     Tq  query tokens    Tk  key tokens
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from engine.atomic import atomic_write

if TYPE_CHECKING:  # for annotations only: matplotlib is imported when a plot is drawn
    from matplotlib.artist import Artist

INSTALL_HINT = 'pip install -e ".[plot]"'
SAVE_FORMATS = (".png", ".svg", ".pdf")
DPI = 100
#: an axis turns logarithmic when its positive values span at least this factor (one decade)
LOG_SCALE_MIN_SPAN = 10.0
#: below this span (a bit over two decades) a log axis also labels its 2, 3 and 5 minor ticks
LOG_MINOR_LABELS_MAX_SPAN = 300.0
#: from this many steps on, a noisy loss is drawn faint under a moving mean that shows the trend
SMOOTH_MIN_STEPS = 200
#: "noisy": the loss goes up on at least this fraction of steps (minibatches); a full-batch
#: loss that falls almost every step is drawn as it is, since a mean would only blur it
NOISY_UP_FRACTION = 0.2
#: the moving mean covers this fraction of the run
SMOOTH_FRACTION = 0.02
#: attention panels whose cells are annotated with their weight (more would be unreadable)
ANNOTATE_MAX_CELLS = 100
#: inches per token in an attention panel, so labels stay readable
CELL_INCHES = 0.45

PathLike = Union[str, "os.PathLike[str]"]
#: evaluation steps and the value at each: ((E,), (E,))
EvalCurve = tuple[Sequence[float], Sequence[float]]  # the steps may come as floats


class PlotsUnavailable(ImportError):
    """matplotlib is not installed; the message (one line) says how to get it."""


# ---------------------------------------------------------------------------- figure and saving
def _figure(width: float, height: float) -> Any:
    """A new matplotlib Figure (constrained layout) on its own Agg canvas, or PlotsUnavailable."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"pictures need matplotlib, which is not installed: {INSTALL_HINT}") from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_path(piece: str, path: PathLike) -> Path:
    """`path` as a Path whose suffix is a format we save; checked before any drawing."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        what = f"the suffix {path.suffix!r} is not a format" if path.suffix else "it has no suffix to name the format"
        raise ValueError(f"{piece}: cannot save to path {str(path)!r}: {what}; use one of {' '.join(SAVE_FORMATS)}")
    return path


def _save(fig: Any, path: Path) -> Path:
    """Render `fig` to bytes in the format of `path`'s suffix and write them atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lower()[1:])
    atomic_write(path, buffer.getvalue())
    return path


def _log_scale_fits(values: np.ndarray) -> bool:
    """True when every finite value is positive and they span LOG_SCALE_MIN_SPAN or more."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.any(finite <= 0):
        return False
    return float(finite.max() / finite.min()) >= LOG_SCALE_MIN_SPAN


def _plain_log_ticks(axis: Any, values: np.ndarray) -> None:
    """Label a log axis with plain numbers (0.3, 1, 2) instead of 3x10^-1; minor ticks at
    2, 3 and 5 per decade are labelled only while the values span less than
    LOG_MINOR_LABELS_MAX_SPAN, where there are few major labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() / finite.min() < LOG_MINOR_LABELS_MAX_SPAN:

        def minor(v: float, _: Any) -> str:
            mantissa = round(v / 10 ** np.floor(np.log10(v)))
            return f"{v:g}" if mantissa in (2, 3, 5) else ""

        axis.set_minor_formatter(FuncFormatter(minor))
    else:
        axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------- loss curves
def _numbers(piece: str, argument: str, values: Any) -> np.ndarray:
    """`values` as a flat float64 array, or a ValueError naming the piece and argument."""
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{piece}: {argument} must be numbers, got {type(values).__name__}") from None


def _as_curve(piece: str, name: str, curve: EvalCurve) -> tuple[np.ndarray, np.ndarray]:
    """(steps (E,), values (E,)) of an evaluation curve, checked."""
    try:
        steps, values = curve
    except (TypeError, ValueError):
        raise ValueError(f"{piece}: curve {name!r} must be (steps, values), got {type(curve).__name__}") from None
    steps_arr = _numbers(piece, f"curve {name!r} steps", steps)
    values_arr = _numbers(piece, f"curve {name!r} values", values)
    if steps_arr.size != values_arr.size:
        raise ValueError(f"{piece}: curve {name!r} has {steps_arr.size} steps but {values_arr.size} values")
    if steps_arr.size == 0:
        raise ValueError(f"{piece}: curve {name!r} is empty")
    return steps_arr, values_arr


def _moving_mean(values: np.ndarray, half_width: int) -> np.ndarray:
    """Centred mean over steps i-w..i+w (w = `half_width`), cut at the ends: (N,) -> (N,).

    Centred, not trailing, so the trend does not lag the raw curve.
    """
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    starts = np.maximum(index - half_width, 0)
    ends = np.minimum(index + half_width + 1, values.size)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def _is_noisy(values: np.ndarray) -> bool:
    """True when the finite values go up on at least NOISY_UP_FRACTION of the steps."""
    finite = values[np.isfinite(values)]
    return finite.size >= 2 and float(np.mean(np.diff(finite) > 0)) >= NOISY_UP_FRACTION


def plot_loss(
    losses: Sequence[float],
    path: PathLike,
    *,
    validation: Mapping[str, EvalCurve] | None = None,
    metrics: Mapping[str, EvalCurve] | None = None,
    title: str = "training loss",
) -> Path:
    """Save the training loss per step, with optional evaluation curves, to `path`; return it.

    The training loss of step s (s = 1..N) is drawn as a line. A long (SMOOTH_MIN_STEPS or
    more) and noisy (NOISY_UP_FRACTION) curve is drawn faint, under its centred moving mean
    over 2w + 1 steps, w = max(1, N * SMOOTH_FRACTION / 2); on a log axis the mean is taken
    of log(loss) (a geometric mean), so the trend runs through the middle of the band drawn.
    Non-finite losses (a diverged run) leave gaps.

    Args:
        losses: (N,) the training loss after each step.
        path: where to write (.png, .svg or .pdf).
        validation: name -> (steps, values): curves in the loss's units (validation or test
            loss) measured at their evaluation steps; drawn with markers on the loss axis.
        metrics: name -> (steps, values): curves in other units (accuracy, reward, ...),
            drawn on a second y axis on the right.
        title: the figure's title.

    Each y axis is logarithmic when its values are all positive and span a factor of
    LOG_SCALE_MIN_SPAN or more, linear otherwise.

    Raises:
        ValueError: no losses, a curve whose steps and values differ in length, a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_loss"
    path = _check_path(piece, path)
    train = _numbers(piece, "losses", losses)  # (N,)
    if train.size == 0:
        raise ValueError(f"{piece}: losses is empty; there is no curve to draw")
    val_curves = {name: _as_curve(piece, name, c) for name, c in (validation or {}).items()}
    metric_curves = {name: _as_curve(piece, name, c) for name, c in (metrics or {}).items()}

    fig = _figure(7.0, 4.6 if metric_curves else 4.2)
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, train.size + 1)
    shown = np.where(np.isfinite(train), train, np.nan)  # inf would wreck the limits
    log_loss = _log_scale_fits(np.concatenate([train] + [v for _, v in val_curves.values()]))
    if train.size >= SMOOTH_MIN_STEPS and _is_noisy(train):
        half_width = max(1, int(round(train.size * SMOOTH_FRACTION / 2)))
        ax.plot(steps, shown, color="tab:blue", linewidth=0.8, alpha=0.3, label="training loss (each step)")
        finite = np.isfinite(train)
        smooth = np.full(train.size, np.nan)
        if log_loss:
            smooth[finite] = np.exp(_moving_mean(np.log(train[finite]), half_width))
        else:
            smooth[finite] = _moving_mean(train[finite], half_width)
        ax.plot(
            steps, smooth, color="tab:blue", linewidth=1.8, label=f"training loss (mean of {2 * half_width + 1} steps)"
        )
    else:
        ax.plot(
            steps,
            shown,
            color="tab:blue",
            linewidth=1.5,
            marker="." if train.size <= 30 else None,
            label="training loss",
        )
    val_colors = ("tab:orange", "tab:red", "tab:brown", "tab:pink")
    for i, (name, (at, values)) in enumerate(val_curves.items()):
        ax.plot(
            at,
            np.where(np.isfinite(values), values, np.nan),
            color=val_colors[i % len(val_colors)],
            linewidth=1.5,
            marker="o",
            markersize=4,
            label=name,
        )
    if log_loss:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, np.concatenate([train] + [v for _, v in val_curves.values()]))
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # steps are whole numbers
    ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    last_step = max(
        [float(train.size)] + [float(at.max()) for at, _ in (*val_curves.values(), *metric_curves.values())]
    )
    ax.set_xlim(0.5, last_step + 0.5)
    handles, labels = ax.get_legend_handles_labels()
    if metric_curves:
        right = ax.twinx()
        metric_colors = ("tab:green", "tab:purple", "tab:olive", "tab:cyan")
        for i, (name, (at, values)) in enumerate(metric_curves.items()):
            right.plot(
                at,
                np.where(np.isfinite(values), values, np.nan),
                color=metric_colors[i % len(metric_colors)],
                linewidth=1.5,
                marker="s",
                markersize=4,
                linestyle="--",
                label=name,
            )
        if _log_scale_fits(np.concatenate([v for _, v in metric_curves.values()])):
            right.set_yscale("log")
            _plain_log_ticks(right.yaxis, np.concatenate([v for _, v in metric_curves.values()]))
        right.set_ylabel(", ".join(metric_curves) + (" (log scale)" if right.get_yscale() == "log" else ""))
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
        # "best" only avoids the left axis's lines: with a right axis, the legend goes below.
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    elif len(handles) > 1:
        ax.legend(handles, labels, loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


# ---------------------------------------------------------------------------- decision boundary
def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    path: PathLike,
    *,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    title: str = "decision boundary",
    resolution: int = 200,
    margin: float = 0.5,
) -> Path:
    """Colour the plane by the class `predict` gives each point, draw the data on it; return `path`.

    The drawn box is the data's bounding box widened by `margin` on each side, sampled on a
    G x G grid (G = `resolution`); `predict` maps a (G*G, 2) array to G*G class indices.
    Training points are circles, test points (if given) squares, filled with their true
    class's colour, so a point on the wrong colour is a mistake.

    Args:
        predict: (M, 2) -> (M,) class indices 0..K-1.
        X: (M, 2) training inputs.
        y: (M,) their classes.
        path: where to write (.png, .svg or .pdf).
        X_test: optional (M', 2) test inputs.
        y_test: their (M',) classes.
        class_names: K names for the legend (default "class 0", "class 1", ...).
        title: a caption over the plot.
        resolution: G, the grid's points per side (as above).
        margin: how far the drawn box reaches past the data (as above).

    Raises:
        ValueError: X is not (M, 2), y does not match it, X_test without y_test (or the reverse),
            resolution < 2, a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_decision_boundary"
    path = _check_path(piece, path)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{piece}: X must have shape (M, 2) (two input features), got {X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{piece}: y has {y.shape[0]} classes for {X.shape[0]} rows of X")
    if (X_test is None) != (y_test is None):  # one without the other was silently not drawn
        raise ValueError(
            f"{piece}: give X_test and y_test together, got only {'X_test' if y_test is None else 'y_test'}"
        )
    if X_test is not None and y_test is not None:
        X_test = np.asarray(X_test, dtype=np.float64)
        y_test = np.asarray(y_test).reshape(-1)
        if X_test.ndim != 2 or X_test.shape[1] != 2 or y_test.shape[0] != X_test.shape[0]:
            raise ValueError(
                f"{piece}: X_test must be (M, 2) with one class per row, got {X_test.shape} and {y_test.shape}"
            )
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"{piece}: resolution must be an int >= 2, got {resolution!r}")

    fig = _figure(6.0, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    points = np.concatenate([X, X_test]) if X_test is not None else X
    lo = points.min(axis=0) - margin
    hi = points.max(axis=0) + margin
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))  # (G, G) each
    grid = np.stack([g1.ravel(), g2.ravel()], axis=1)  # (G*G, 2)
    classes = np.asarray(predict(grid)).reshape(g1.shape)  # (G, G)
    n_classes = int(max(classes.max(), y.max(), y_test.max() if y_test is not None else 0, len(class_names) - 1, 1)) + 1
    names = list(class_names) + [f"class {k}" for k in range(len(class_names), n_classes)]

    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    palette = (
        "#3b6fb6",
        "#d1495b",
        "#2e9e5b",
        "#edae49",
        "#7a5195",
        "#00798c",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
    )
    colors = [palette[k % len(palette)] for k in range(n_classes)]
    cmap = ListedColormap(colors)
    levels = np.arange(n_classes + 1) - 0.5  # one band per class index
    ax.contourf(g1, g2, classes, levels=levels, cmap=cmap, alpha=0.25)
    if np.unique(classes).size > 1:  # a plane of one class has no boundary line to draw
        ax.contour(g1, g2, classes, levels=levels[1:-1], colors="k", linewidths=0.8, alpha=0.6)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, s=22, edgecolors="k", linewidths=0.5)
    legend: list[Artist] = [
        Patch(facecolor=colors[k], edgecolor="k", alpha=0.6, label=names[k]) for k in range(n_classes)
    ]
    legend.append(
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markerfacecolor="white",
            markeredgecolor="k",
            label=f"train ({X.shape[0]})",
        )
    )
    if X_test is not None and y_test is not None:
        ax.scatter(
            X_test[:, 0],
            X_test[:, 1],
            c=y_test,
            cmap=cmap,
            vmin=-0.5,
            vmax=n_classes - 0.5,
            s=30,
            marker="s",
            edgecolors="k",
            linewidths=0.9,
        )
        legend.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="s",
                markerfacecolor="white",
                markeredgecolor="k",
                label=f"test ({X_test.shape[0]})",
            )
        )
    ax.legend(handles=legend, loc="best", fontsize=8, framealpha=0.9)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("x1 (feature 0)")
    ax.set_ylabel("x2 (feature 1)")
    return _save(fig, path)


# ---------------------------------------------------------------------------- attention heatmaps
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
    path: PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Save a heatmap of attention weights (one panel per head) to `path`; return the path.

    Cell (i, j) of head h is weights[h, i, j] = softmax_j(q_i . k_j / sqrt(d_k) + mask_ij):
    how much query token i attends to key token j. Rows sum to 1 and masked cells are 0, so
    the colour scale is fixed to [0, 1]; panels of at most ANNOTATE_MAX_CELLS cells print
    each weight in its cell.

    Args:
        weights: (H, Tq, Tk) or (Tq, Tk): an array, nested lists of floats or engine Values.
        tokens_q: Tq labels for the rows (queries).
        tokens_k: Tk labels for the columns (keys).
        path: where to write (.png, .svg or .pdf).
        title: a caption over the panels.

    Raises:
        ValueError: the weights are not a (H,) Tq x Tk grid, the token counts differ from it,
            a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    path = _check_path("plot_attention", path)
    grid = _as_float_grid(weights)
    H, Tq, Tk = len(grid), len(grid[0]), len(grid[0][0])
    if len(tokens_q) != Tq:
        raise ValueError(
            f"plot_attention: {len(tokens_q)} query tokens for {Tq} rows of weights (shape ({H}, {Tq}, {Tk}))"
        )
    if len(tokens_k) != Tk:
        raise ValueError(
            f"plot_attention: {len(tokens_k)} key tokens for {Tk} columns of weights (shape ({H}, {Tq}, {Tk}))"
        )

    width = max(3.5, H * (CELL_INCHES * Tk + 0.9) + 1.2)
    height = max(3.0, CELL_INCHES * Tq + 1.9)
    fig = _figure(width, height)
    axes = fig.subplots(1, H, squeeze=False)[0]
    rotation = 60 if max(len(str(t)) for t in tokens_k) > 2 else 0  # long key labels would overlap
    image = None
    for h, ax in enumerate(axes):
        image = ax.imshow(grid[h], vmin=0.0, vmax=1.0, cmap="Blues", aspect="equal")
        ax.set_xticks(range(Tk))
        ax.set_xticklabels(
            [str(t) for t in tokens_k],
            rotation=rotation,
            ha="right" if rotation else "center",
            rotation_mode="anchor",
            fontsize=8,
        )
        ax.set_yticks(range(Tq))
        ax.set_yticklabels([str(t) for t in tokens_q], fontsize=8)
        ax.set_xlabel("key token")
        if h == 0:
            ax.set_ylabel("query token")
        ax.set_title(f"head {h}" if H > 1 else "attention", fontsize=10)
        if Tq * Tk <= ANNOTATE_MAX_CELLS:
            for i in range(Tq):
                for j in range(Tk):
                    w = grid[h][i][j]
                    ax.text(
                        j, i, f"{w:.2f}", ha="center", va="center", fontsize=7, color="white" if w > 0.6 else "black"
                    )
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="attention weight")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------------------- curves with bands, soft targets
#: a curve in `plot_curve_bands`: (steps (E,), mean (E,), std (E,)).
BandCurve = tuple[Sequence[float], Sequence[float], Sequence[float]]


def plot_curve_bands(
    curves: Mapping[str, BandCurve], path: PathLike, *, ylabel: str = "metric", title: str = "learning curves"
) -> Path:
    """Save one line per curve (the mean over runs) with a band of ± one standard deviation; return `path`.

    Args:
        curves: name -> (steps, mean, std), three sequences of one length E >= 1.
        path: where to write (.png, .svg or .pdf).

    Raises:
        ValueError: no curves, sequences of different lengths, a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_curve_bands"
    path = _check_path(piece, path)
    if not curves:
        raise ValueError(f"{piece}: curves is empty; there is nothing to draw")
    checked = {}
    for name, (steps, mean, std) in curves.items():
        at, m, s = (
            _numbers(piece, f"{name!r} {what}", v) for what, v in (("steps", steps), ("mean", mean), ("std", std))
        )
        if not (at.size == m.size == s.size) or at.size == 0:
            raise ValueError(
                f"{piece}: curve {name!r} needs steps, mean and std of one non-zero length, got "
                f"{at.size}, {m.size}, {s.size}"
            )
        checked[name] = (at, m, s)
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for i, (name, (at, m, s)) in enumerate(checked.items()):
        color = colors[i % len(colors)]
        ax.plot(at, m, color=color, linewidth=1.6, marker="o", markersize=3, label=name)
        ax.fill_between(at, m - s, m + s, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_soft_targets(
    probs: Mapping[float, Sequence[float]],
    class_names: Sequence[str],
    path: PathLike,
    *,
    title: str = "softened distribution",
) -> Path:
    """Save grouped bars: for each temperature T, the probabilities softmax(z / T) over the named classes.

    Args:
        probs: T -> (K,) probabilities, one per class in `class_names` (a subset of the classes may
            be shown: the bars then need not sum to 1).
        class_names: (K,) labels of the bars.
        path: where to write (.png, .svg or .pdf).

    Raises:
        ValueError: no temperatures, or a row whose length is not K; a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_soft_targets"
    path = _check_path(piece, path)
    if not probs:
        raise ValueError(f"{piece}: probs is empty; there is nothing to draw")
    K = len(class_names)
    rows = {T: _numbers(piece, f"probs at T={T:g}", p) for T, p in probs.items()}
    for T, p in rows.items():
        if p.size != K:
            raise ValueError(f"{piece}: probs at T={T:g} has {p.size} values for {K} class names")
    fig = _figure(max(6.0, 0.55 * K * len(rows) / 2 + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(rows)
    x = np.arange(K)
    for i, (T, p) in enumerate(rows.items()):
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, p, width=width, label=f"T = {T:g}")
    ax.set_xticks(x)
    ax.set_xticklabels(list(class_names), fontsize=8)
    ax.set_ylabel("probability")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


# ---------------------------------------------------------------------------- alignment
#: rows of the curves' panels: (key in each point, axis label)
ALIGN_PANELS = (
    ("true_reward", "true reward"),
    ("learned_reward", "learned reward (true reward's scale)"),
    ("kl", "KL(pi || pi_ref), nats"),
)


def plot_align_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    path: PathLike,
    *,
    true_max: float | None = None,
    title: str = "policy improvement: true reward, learned reward and KL per step",
) -> Path:
    """Three panels over the steps of each method: the true reward, the learned reward and the KL to the reference.

    Args:
        curves: method -> points, each a mapping with "step", "true_reward", "learned_reward", "kl".
        path: where to write (.png, .svg or .pdf).
        true_max: the best possible true reward, drawn as a dotted line on the first two panels.

    Raises:
        ValueError: no curves, an empty curve or a point without one of the keys; a bad suffix.
        PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_align_curves"
    path = _check_path(piece, path)
    if not curves:
        raise ValueError(f"{piece}: curves is empty; there is nothing to draw")
    for name, points in curves.items():
        if not points:
            raise ValueError(f"{piece}: the curve {name!r} has no points")
        for key in ("step",) + tuple(k for k, _ in ALIGN_PANELS):
            if any(key not in p for p in points):
                raise ValueError(f"{piece}: a point of {name!r} has no {key!r}")
    fig = _figure(7.0, 8.0)
    axes = fig.subplots(len(ALIGN_PANELS), 1, sharex=True)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for i, (name, points) in enumerate(curves.items()):
        steps = np.array([p["step"] for p in points], dtype=np.float64)
        for ax, (key, _) in zip(axes, ALIGN_PANELS):
            ax.plot(
                steps,
                [p[key] for p in points],
                color=colors[i % len(colors)],
                linewidth=1.3,
                marker="o" if len(points) <= 30 else None,
                markersize=3,
                label=name,
            )
    for ax, (key, label) in zip(axes, ALIGN_PANELS):
        if true_max is not None and key != "kl":
            ax.axhline(true_max, color="gray", linestyle=":", linewidth=1.0, label="best true reward")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=8, framealpha=0.9)
    axes[-1].set_xlabel("step")
    fig.suptitle(title)
    return _save(fig, path)


def plot_samples(
    samples: Mapping[str, Sequence[str]],
    path: PathLike,
    *,
    rows: int = 12,
    title: str = "samples before (reference) and after",
) -> Path:
    """A table of text: one column per policy, its first `rows` samples.

    Raises:
        ValueError: no columns, a bad suffix.  PlotsUnavailable: matplotlib is not installed.
    """
    piece = "plot_samples"
    path = _check_path(piece, path)
    if not samples:
        raise ValueError(f"{piece}: samples is empty; there is nothing to draw")
    fig = _figure(max(4.0, 2.2 * len(samples)), 0.32 * rows + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    for col, (name, texts) in enumerate(samples.items()):
        x = (col + 0.5) / len(samples)
        ax.text(x, 1.0, name, ha="center", va="top", fontsize=10, fontweight="bold", transform=ax.transAxes)
        for row, text in enumerate(list(texts)[:rows]):
            ax.text(
                x,
                1.0 - (row + 1.5) / (rows + 1.5),
                text or "(empty)",
                ha="center",
                va="top",
                fontsize=9,
                family="monospace",
                transform=ax.transAxes,
            )
    fig.suptitle(title)
    return _save(fig, path)
