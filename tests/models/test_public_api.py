"""The public Python API: every name importable and documented; the reports print in a REPL and
render as HTML in Jupyter (checked in a real kernel with nbclient), with a progress bar that is a
widget when ipywidgets is there and text, with no warning, when it is not."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: (module, names) the README's Python section promises.
PUBLIC = {
    "models": (
        "train",
        "sample",
        "distill",
        "align",
        "tour",
        "TrainReport",
        "Samples",
        "DistillReport",
        "AlignResult",
        "AlignConfig",
        "TourResult",
        "MLP",
        "MLPConfig",
        "GPT",
        "GPTConfig",
        "Trainer",
        "TrainConfig",
        "ScalarMLP",
        "Layer",
        "Neuron",
    ),
    "nn": (
        "Linear",
        "LayerNorm",
        "RMSNorm",
        "MultiHeadAttention",
        "FeedForward",
        "TransformerBlock",
        "Embedding",
        "Sequential",
        "SGD",
        "Adam",
        "AdamW",
        "assert_three_way",
        "check_three_way",
    ),
    "viz": ("draw",),
}
#: a kernel's start and a 500-step XOR run; generous, it only catches a hang.
NOTEBOOK_TIMEOUT_SECONDS = 120


@pytest.mark.parametrize("module,name", [(m, n) for m, names in PUBLIC.items() for n in names])
def test_public_name_imports_and_says_what_it_is(module: str, name: str) -> None:
    obj = getattr(importlib.import_module(module), name)
    own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert own and own.strip(), f"{module}.{name} has no docstring"
    assert not own.startswith(f"{name}("), f"{module}.{name}'s docstring is the dataclass's generated signature"


def test_models_all_lists_the_public_names() -> None:
    import models

    assert set(PUBLIC["models"]) <= set(models.__all__) <= set(dir(models))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        models.nope  # noqa: B018


def test_import_models_loads_no_submodule_until_a_name_is_used() -> None:
    code = "import sys, models; print(sorted(m for m in sys.modules if m.startswith('models.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_train_report_prints_the_commands_summary_and_renders_html(capsys: pytest.CaptureFixture[str]) -> None:
    from models import train
    from models.training.tasks import format_report

    report = train("xor", quiet=True)
    assert capsys.readouterr().out == ""  # quiet: nothing printed on the way
    assert report.metrics["train_accuracy"] == 1.0
    assert repr(report) == str(report) == format_report(report)
    html = report._repr_html_()
    assert "<table" in html and "train accuracy" in html and "<polyline" in html  # the table and the loss curve
    assert "100.0%" in html  # an accuracy reads as the command prints it
    assert json.loads(json.dumps(report.to_json()))["task"] == "xor"


def test_train_takes_the_flags_as_keywords_and_refuses_unknown_ones() -> None:
    from engine import UnknownNameError
    from models import train

    report = train("xor", quiet=True, steps=20, hidden=[3], seed=1)
    assert report.outcome.state.step == 20 and report.model_config["sizes"] == [2, 3, 1]
    with pytest.raises(UnknownNameError, match="unknown option.*stepz"):
        train("xor", quiet=True, stepz=3)


def test_align_refuses_an_unknown_option_before_any_work() -> None:
    from engine import UnknownNameError
    from models import align

    with pytest.raises(UnknownNameError, match="unknown option.*klx"):
        align("dpo", klx=0.1)


def test_scalar_mlp_learns_xor_and_every_weight_gets_a_gradient() -> None:
    from models import ScalarMLP

    net = ScalarMLP(2, [4, 1], out_activation="tanh", seed=0)
    xs, ys = [[0, 0], [0, 1], [1, 0], [1, 1]], [-1, 1, 1, -1]
    for _ in range(200):
        loss = sum((net(x)[0] - y) ** 2 for x, y in zip(xs, ys))
        net.zero_grad()
        loss.backward()
        assert all(p.grad != 0.0 for p in net.parameters()[:8])  # the first layer's weights all feel the loss
        for p in net.parameters():
            p.data -= 0.05 * p.grad
    assert [1 if net(x)[0].data > 0 else -1 for x in xs] == ys


def test_scalar_layer_is_the_linear_loops_form_followed_by_the_activation() -> None:
    import math

    from models import Layer, Neuron

    layer = Layer(3, 2, "tanh", seed=4)
    x = [0.5, -1.0, 2.0]
    expected = [math.tanh(sum(x[i] * layer.W[i][j].data for i in range(3)) + layer.b[j].data) for j in range(2)]
    assert [v.data for v in layer(x)] == pytest.approx(expected, rel=1e-15)
    assert Neuron(3, "relu", seed=1)(x).data >= 0.0
    with pytest.raises(Exception, match="reads 3 inputs, got 2"):
        layer([1.0, 2.0])


def _run_notebook(cells: list[str]) -> list[dict]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if importlib.util.find_spec("ipykernel") is None:  # not imported here: this process is no kernel
        pytest.skip("ipykernel is not installed (the test extra has it)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(
        nb, timeout=NOTEBOOK_TIMEOUT_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    return [out for cell in nb.cells for out in cell.outputs]


def _stderr(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")


@pytest.mark.slow
def test_in_jupyter_the_report_is_html_and_the_bar_a_widget() -> None:
    if importlib.util.find_spec("ipywidgets") is None:
        pytest.skip("ipywidgets is not installed (the notebook extra has it)")
    outputs = _run_notebook(["from models import train\nreport = train('xor')", "report"])
    assert any("text/html" in o.get("data", {}) and "<table" in o["data"]["text/html"] for o in outputs)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), "no widget bar"
    assert "IProgress" not in _stderr(outputs) and not any(o.get("output_type") == "error" for o in outputs)


@pytest.mark.slow
def test_in_jupyter_without_ipywidgets_the_bar_is_text_with_no_warning() -> None:
    outputs = _run_notebook(
        [
            "import sys\nsys.modules['ipywidgets'] = None  # as if the notebook extra were not installed",
            "from models import train\nreport = train('xor')",
            "report",
        ]
    )
    assert any("text/html" in o.get("data", {}) for o in outputs)
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    err = _stderr(outputs)
    assert "IProgress" not in err and "Warning" not in err
    assert "step" in err  # the text bar ("0/500 [00:00<?, ?step/s]") went to stderr


def test_outside_a_kernel_no_bar_is_drawn_for_a_captured_stream() -> None:
    """Importing ipykernel (as a test runner may) does not make this process a notebook."""
    pytest.importorskip("ipykernel")
    from models.training.trainer import in_notebook, progress_bar_class, progress_wanted

    assert not in_notebook() and progress_bar_class().__module__ == "tqdm.std"
    assert progress_wanted(False) == sys.stderr.isatty()


def test_a_python_report_names_the_keyword_not_the_flag() -> None:
    from models import train

    assert (
        train("xor", quiet=True, steps=5)
        .text()
        .endswith("pass out=DIR to keep a checkpoint (to resume=DIR) and pictures")
    )
