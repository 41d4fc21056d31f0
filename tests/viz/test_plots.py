"""viz.plots: loss curves, decision boundaries, attention heatmaps; matplotlib loaded lazily,
no pyplot, one PlotsUnavailable, files written atomically."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import viz.plots as plots
from nn.masks import causal_mask
from nn.mha import attention_weights, init_mha_params, self_attention_forward
from viz.plots import INSTALL_HINT, PlotsUnavailable, plot_attention, plot_decision_boundary, plot_loss

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg")
#: |mean log(raw / trend)| in the middle of a noisy run; the noise is uniform on [0.5, 1.5]
#: per step, so the geometric mean of raw / its own trend stays within a few percent of 1
TREND_CENTRE_TOLERANCE = 0.05
#: generous: a fresh interpreter importing matplotlib and drawing three figures takes seconds
SUBPROCESS_TIMEOUT_SECONDS = 120

needs_matplotlib = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True).returncode != 0,
    reason="matplotlib is not installed (the plot extra)",
)


@pytest.fixture
def figures(monkeypatch) -> list:
    """Every figure the plot functions save, captured on its way to the file."""
    saved: list = []
    real_save = plots._save

    def keep(fig, path):
        saved.append(fig)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def _no_matplotlib(monkeypatch) -> None:
    for name in MATPLOTLIB_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _two_class_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 2))
    y = (X[:, 0] > 0).astype(int)
    X_test = rng.standard_normal((10, 2))
    y_test = (X_test[:, 0] > 0).astype(int)
    return X, y, X_test, y_test


def _attention(T: int = 4, H: int = 3, C: int = 6):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, T, C))
    p = init_mha_params(C, H, rng)
    _, cache = self_attention_forward(x, *p.values(), n_heads=H, mask=causal_mask(T))
    return attention_weights(cache)[0]  # (H, T, T)


# ---------------------------------------------------------------------------- imports and the one error
def test_importing_viz_and_the_plot_module_does_not_import_matplotlib() -> None:
    code = "import sys, viz, viz.plots, models.tour_stages.attention, models.training.tasks; print('matplotlib' in sys.modules)"
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
    )
    assert res.stdout.strip() == "False"


def test_plots_unavailable_is_defined_once_in_the_packages() -> None:
    where = [
        str(path.relative_to(ROOT))
        for pkg in ("engine", "nn", "models", "viz")
        for path in sorted((ROOT / pkg).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name == "PlotsUnavailable"
    ]
    assert where == ["viz/plots.py"]
    assert issubclass(PlotsUnavailable, ImportError)


@pytest.mark.parametrize("draw", ["loss", "boundary", "attention"])
def test_without_matplotlib_each_plot_names_the_install(monkeypatch, tmp_path: Path, draw: str) -> None:
    _no_matplotlib(monkeypatch)
    X, y, _, _ = _two_class_problem()
    calls = {
        "loss": lambda: plot_loss([1.0, 0.5], tmp_path / "x.png"),
        "boundary": lambda: plot_decision_boundary(lambda g: np.zeros(len(g), dtype=int), X, y, tmp_path / "x.png"),
        "attention": lambda: plot_attention(np.full((2, 2), 0.5), ["a", "b"], ["a", "b"], tmp_path / "x.png"),
    }
    with pytest.raises(PlotsUnavailable) as err:
        calls[draw]()
    message = str(err.value)
    assert INSTALL_HINT == 'pip install -e ".[plot]"' and INSTALL_HINT in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@needs_matplotlib
def test_drawing_uses_no_pyplot_and_changes_no_setting(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np, matplotlib\n"
        "raw_rc = lambda: repr(sorted(dict.items(matplotlib.rcParams)))  # not get_backend(): it imports pyplot\n"
        "before = raw_rc()\n"
        "from viz.plots import plot_loss, plot_decision_boundary, plot_attention\n"
        f"out = {str(tmp_path)!r}\n"
        "plot_loss([1.0, 0.5, 0.2], out + '/l.png', validation={'val': ([2], [0.6])}, metrics={'acc': ([2], [0.9])})\n"
        "X = np.array([[0.0, 0.0], [1.0, 1.0]]); y = np.array([0, 1])\n"
        "plot_decision_boundary(lambda g: (g[:, 0] > 0.5).astype(int), X, y, out + '/b.png')\n"
        "plot_attention([[1.0, 0.0], [0.5, 0.5]], 'ab', 'ab', out + '/a.png')\n"
        "print('matplotlib.pyplot' in sys.modules, raw_rc() == before)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "l.png"]


# ---------------------------------------------------------------------------- saving
@needs_matplotlib
@pytest.mark.parametrize(
    "suffix, magic",
    [(".png", PNG_MAGIC), (".svg", b"<?xml"), (".pdf", b"%PDF-"), (".PNG", PNG_MAGIC)],
)
def test_the_suffix_picks_the_format(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = plot_loss([1.0, 0.5, 0.25], tmp_path / f"loss{suffix}")
    assert path == tmp_path / f"loss{suffix}"
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [f"loss{suffix}"]  # no temporary file left


def test_unknown_suffix_is_refused_before_drawing(tmp_path: Path, monkeypatch) -> None:
    _no_matplotlib(monkeypatch)  # the suffix is checked first, so no PlotsUnavailable here
    for name in ("loss.jpg", "loss"):
        with pytest.raises(ValueError, match=r"^plot_loss: cannot save to path .*\.png \.svg \.pdf$"):
            plot_loss([1.0], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@needs_matplotlib
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_pictures_are_written_atomically_with_the_umask_mode(tmp_path: Path, umask: int, mode: int) -> None:
    target = tmp_path / "loss.png"
    target.write_bytes(b"old picture")
    target.chmod(0o640)
    previous = os.umask(umask)
    try:
        plot_loss([1.0, 0.5], target)
    finally:
        os.umask(previous)
    assert target.read_bytes().startswith(PNG_MAGIC)
    assert target.stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


@needs_matplotlib
def test_a_failed_save_keeps_the_old_picture(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "loss.png"
    target.write_bytes(b"old picture")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left on device") as info:
        plot_loss([1.0, 0.5], target)
    monkeypatch.undo()
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    assert target.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


# ---------------------------------------------------------------------------- loss curves
@needs_matplotlib
def test_loss_curve_is_labelled(tmp_path: Path, figures: list) -> None:
    path = plot_loss([0.9, 0.7, 0.6, 0.55], tmp_path / "loss.png", title="xor: training loss")
    assert path.read_bytes()[:8] == PNG_MAGIC
    (ax,) = figures[0].axes
    assert ax.get_title() == "xor: training loss"
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    assert ax.get_yscale() == "linear"  # 0.55..0.9 spans less than a decade
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4]  # step s holds the loss after step s


@needs_matplotlib
def test_log_scale_only_where_the_values_span_decades(tmp_path: Path, figures: list) -> None:
    plot_loss(np.geomspace(2.0, 2e-3, 50), tmp_path / "decades.png")
    plot_loss(np.linspace(2.0, -1.0, 50), tmp_path / "negative.png")  # a loss that goes below 0
    plot_loss([0.5, 0.4, np.nan, np.inf, 0.3], tmp_path / "diverged.png")  # non-finite steps leave gaps
    assert [fig.axes[0].get_yscale() for fig in figures] == ["log", "linear", "linear"]
    assert figures[0].axes[0].get_ylabel() == "loss (log scale)"


@needs_matplotlib
def test_validation_and_metric_curves_share_the_figure(tmp_path: Path, figures: list) -> None:
    steps = np.arange(1, 501)
    losses = 2.0 * np.exp(-steps / 100.0) * np.random.default_rng(3).uniform(0.5, 1.5, steps.size)  # minibatch noise
    evals = [100, 200, 300, 400, 500]
    plot_loss(
        losses,
        tmp_path / "loss.png",
        validation={"validation loss": (evals, [0.7, 0.3, 0.1, 0.05, 0.03])},
        metrics={"validation accuracy": (evals, [0.6, 0.8, 0.9, 0.95, 0.97])},
    )
    loss_ax, metric_ax = figures[0].axes
    val_line = [ln for ln in loss_ax.get_lines() if ln.get_label() == "validation loss"][0]
    assert list(val_line.get_xdata()) == evals  # drawn at the evaluation steps
    assert loss_ax.get_yscale() == "log" and metric_ax.get_yscale() == "linear"
    assert metric_ax.get_ylabel() == "validation accuracy"
    texts = _legend_texts(loss_ax)
    assert "validation loss" in texts and "validation accuracy" in texts
    assert any(t.startswith("training loss (mean of") for t in texts)  # 500 noisy steps: a trend over the raw curve


def test_loss_curve_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^plot_loss: losses is empty"):
        plot_loss([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="^plot_loss: curve 'val' has 2 steps but 3 values$"):
        plot_loss([1.0], tmp_path / "x.png", validation={"val": ([1, 2], [1.0, 2.0, 3.0])})
    with pytest.raises(ValueError, match="^plot_loss: losses must be numbers, got list$"):
        plot_loss(["high", "low"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="^plot_loss: curve 'val' values must be numbers"):
        plot_loss([1.0], tmp_path / "x.png", validation={"val": ([1], ["n/a"])})
    with pytest.raises(ValueError, match=r"^plot_loss: curve 'acc' must be \(steps, values\)"):
        plot_loss([1.0], tmp_path / "x.png", metrics={"acc": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_moving_mean_is_centred_and_cut_at_the_ends() -> None:
    values = np.array([4.0, 2.0, 6.0, 0.0])
    np.testing.assert_array_equal(plots._moving_mean(values, 1), [3.0, 4.0, 8.0 / 3.0, 3.0])


@needs_matplotlib
def test_only_a_long_noisy_loss_gets_a_trend_line(tmp_path: Path, figures: list) -> None:
    steps = np.arange(1, 1001)
    smooth = np.exp(-steps / 200.0)  # full batch: falls every step
    noisy = smooth * np.random.default_rng(0).uniform(0.5, 1.5, steps.size)  # minibatches
    plot_loss(smooth, tmp_path / "smooth.png")
    plot_loss(noisy, tmp_path / "noisy.png")
    plot_loss(noisy[:50], tmp_path / "short.png")
    labels = [[ln.get_label() for ln in fig.axes[0].get_lines()] for fig in figures]
    assert labels[0] == ["training loss"] and labels[2] == ["training loss"]
    assert labels[1] == ["training loss (each step)", "training loss (mean of 21 steps)"]
    # On the log axis the trend is a geometric mean: it runs through the middle of the band.
    trend = figures[1].axes[0].get_lines()[1].get_ydata()
    middle = slice(100, 900)
    ratio = np.exp(np.mean(np.log(noisy[middle] / trend[middle])))
    assert abs(np.log(ratio)) < TREND_CENTRE_TOLERANCE


# ---------------------------------------------------------------------------- decision boundary
@needs_matplotlib
def test_decision_boundary_is_labelled(tmp_path: Path, figures: list) -> None:
    X, y, X_test, y_test = _two_class_problem()
    path = plot_decision_boundary(
        lambda g: (g[:, 0] > 0).astype(int),
        X,
        y,
        tmp_path / "b.png",
        X_test=X_test,
        y_test=y_test,
        class_names=["left", "right"],
        title="split",
        resolution=20,
    )
    assert path.read_bytes()[:8] == PNG_MAGIC
    (ax,) = figures[0].axes
    assert ax.get_title() == "split"
    assert ax.get_xlabel().startswith("x1") and ax.get_ylabel().startswith("x2")
    assert _legend_texts(ax) == ["left", "right", "train (40)", "test (10)"]


@needs_matplotlib
def test_decision_boundary_names_unnamed_classes(tmp_path: Path, figures: list) -> None:
    X = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    y = np.array([0, 1, 2])
    plot_decision_boundary(
        lambda g: np.clip(np.round(g[:, 0]), 0, 2).astype(int), X, y, tmp_path / "b.png", resolution=10
    )
    assert _legend_texts(figures[0].axes[0]) == ["class 0", "class 1", "class 2", "train (3)"]


def test_decision_boundary_bad_input(tmp_path: Path) -> None:
    predict = lambda g: np.zeros(len(g), dtype=int)  # noqa: E731
    with pytest.raises(ValueError, match=r"^plot_decision_boundary: X must have shape \(M, 2\)"):
        plot_decision_boundary(predict, np.zeros((5, 3)), np.zeros(5), tmp_path / "b.png")
    with pytest.raises(ValueError, match="^plot_decision_boundary: y has 4 classes for 5 rows of X$"):
        plot_decision_boundary(predict, np.zeros((5, 2)), np.zeros(4), tmp_path / "b.png")
    with pytest.raises(ValueError, match="^plot_decision_boundary: resolution must be an int >= 2"):
        plot_decision_boundary(predict, np.zeros((5, 2)), np.zeros(5), tmp_path / "b.png", resolution=1)
    # test points without their classes (or the reverse) were once dropped without a word
    with pytest.raises(ValueError, match="^plot_decision_boundary: give X_test and y_test together, got only X_test$"):
        plot_decision_boundary(predict, np.zeros((5, 2)), np.zeros(5), tmp_path / "b.png", X_test=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="^plot_decision_boundary: give X_test and y_test together, got only y_test$"):
        plot_decision_boundary(predict, np.zeros((5, 2)), np.zeros(5), tmp_path / "b.png", y_test=np.zeros(2))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- attention heatmaps
@needs_matplotlib
def test_plot_attention_writes_a_png(tmp_path: Path, figures: list) -> None:
    weights = _attention()  # (3, 4, 4)
    tokens = ["a", "b", "c", "d"]
    path = plot_attention(weights, tokens, tokens, tmp_path / "heads.png", title="causal")
    assert path.read_bytes()[:8] == PNG_MAGIC
    heads = [ax for ax in figures[0].axes if ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in heads] == ["head 0", "head 1", "head 2"]
    assert heads[0].get_ylabel() == "query token" and heads[0].get_xlabel() == "key token"
    assert [t.get_text() for t in heads[0].get_xticklabels()] == tokens
    assert figures[0].get_suptitle() == "causal"
    path2 = plot_attention(weights[0], tokens, tokens, tmp_path / "one.png")  # (Tq, Tk)
    assert path2.stat().st_size > 0


def test_plot_attention_bad_input(tmp_path: Path) -> None:
    weights = _attention()
    tokens = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="3 query tokens for 4 rows"):
        plot_attention(weights, tokens[:3], tokens, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="5 key tokens for 4 columns"):
        plot_attention(weights, tokens, tokens + ["e"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"must have shape \(H, Tq, Tk\) or \(Tq, Tk\), got 1 axes"):
        plot_attention([0.5, 0.5], tokens, tokens, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="head 1 is not a 2 x 2 grid like head 0"):
        plot_attention([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0]]], "ab", "ab", tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []
