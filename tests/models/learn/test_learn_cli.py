"""`twograd learn` on the command line, the workspace's progress, loading a passed file, and the pytest plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from engine import InputError
from models.cli import main
from models.learn import catalog, template, workspace

ROOT = Path(__file__).resolve().parents[3]
TRANSPOSED_DW = """from nn.linear import linear_loops, linear_forward
from nn.linear import linear_backward as _ours


def linear_backward(dout, cache):
    dx, dW, db = _ours(dout, cache)
    return dx, dW.T, db
"""


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["learn", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_show_hint_solution(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "--dir", str(tmp_path), "--json")
    plan = json.loads(out)
    assert code == 0 and [r["name"] for r in plan["exercises"]] == catalog.names()
    assert {r["status"] for r in plan["exercises"]} == {"not started"}
    code, out, _ = run(capsys, "show", "linear", "--json")
    info = json.loads(out)
    assert [f["signature"] for f in info["functions"]] == [
        "linear_loops(x, W, b)",
        "linear_forward(x, W, b)",
        "linear_backward(dout, cache)",
    ]
    assert (
        "y = x @ W + b" in info["math"] and "dW = x^T @ G" not in info["math"]
    )  # the forward's docstring, not the derivation
    code, out, _ = run(capsys, "hint", "linear")
    assert code == 0 and out.startswith("hint 1 of 2 for linear:") and "--level 2" in out
    code, out, _ = run(capsys, "solution", "layer_norm")
    assert "nn/normalization.py, layer_norm_backward" in out
    code, _, err = run(capsys, "show", "layernorm")
    assert code == 2 and "did you mean 'layer_norm'?" in err and len(err.strip().splitlines()) == 1


def test_start_check_fix_pass_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ws = str(tmp_path)
    assert run(capsys, "start", "linear", "--dir", ws)[0] == 0
    stub = workspace.exercise_file(tmp_path, "linear")
    text = stub.read_text()
    assert "def linear_backward(dout, cache):" in text and "raise NotImplementedError" in text
    code, _, err = run(capsys, "start", "linear", "--dir", ws)
    assert code == 2 and "already exists" in err and stub.read_text() == text  # never overwritten
    assert workspace.status(tmp_path, "linear").status == "started"

    stub.write_text(TRANSPOSED_DW)
    code, out, _ = run(capsys, "check", "linear", "--dir", ws, "--json")
    result = json.loads(out)
    assert code == 1 and result["passed"] is False and result["exercise"] == "linear"
    assert result["diagnosis"][0]["kind"] == "transposed" and result["diagnosis"][0]["input"] == "linear_backward: dW"
    assert workspace.status(tmp_path, "linear").status == "failing"

    stub.write_text(template.reference_file(catalog.get("linear")))
    assert workspace.status(tmp_path, "linear").edited  # edited since its failing check
    code, out, _ = run(capsys, "check", "linear", "--dir", ws)
    assert code == 0 and out.startswith("linear: passed")
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["version"] == 1 and progress["exercises"]["linear"]["status"] == "passed"
    assert workspace.load_learner_module(tmp_path, "linear").linear_forward is not None

    stub.write_text(stub.read_text() + "\n# edited\n")
    with pytest.raises(InputError, match="edited since its last check"):
        workspace.load_learner_module(tmp_path, "linear")
    assert run(capsys, "check", "mse", "--dir", ws)[0] == 2  # not started: a usage error naming `learn start`


#: installed (pip install -e .), the entry point loads the plugin; otherwise -p does (both would register it twice)
PLUGIN_ARGS = (
    []
    if any(e.value == "models.learn.plugin" for e in metadata.entry_points(group="pytest11"))
    else ["-p", "models.learn.plugin"]
)


@pytest.mark.slow  # a pytest in a child process
def test_pytest_plugin_reports_the_diagnosis(tmp_path: Path) -> None:
    workspace.start(tmp_path, "linear")
    workspace.exercise_file(tmp_path, "linear").write_text(TRANSPOSED_DW)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *PLUGIN_ARGS, "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed" in proc.stdout
    assert "[transposed] linear_backward: dW is the transpose" in proc.stdout  # learn_check
    assert "[transposed] your backward: dW is the transpose" in proc.stdout  # three_way


def test_the_plugin_imports_only_pytest() -> None:
    code = (
        "import sys; before = set(sys.modules); import models.learn.plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('numpy', 'engine', 'nn')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_html_paints_a_wrong_gradient_on_twograds_graph(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mistakes import LAYER_NORM_NO_MEAN_PATH

    workspace.start(tmp_path, "layer_norm")
    workspace.exercise_file(tmp_path, "layer_norm").write_text(LAYER_NORM_NO_MEAN_PATH)
    page = tmp_path / "ln.html"
    code, out, _ = run(capsys, "check", "layer_norm", "--dir", str(tmp_path), "--html", str(page))
    assert code == 1 and f"wrote {page}" in out
    wrong, compared = map(int, re.search(r"\((\d+) of your (\d+) gradient entries disagree\)", out).groups())
    assert 0 < wrong < compared  # the mean path is missing in dx only: dgamma and dbeta agree
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    workspace.exercise_file(tmp_path, "layer_norm").write_text(template.reference_file(catalog.get("layer_norm")))
    code, out, _ = run(capsys, "check", "layer_norm", "--dir", str(tmp_path), "--html", str(tmp_path / "none.html"))
    assert code == 0 and "no page written" in out and not (tmp_path / "none.html").exists()


def test_three_way_without_a_reference_judges_by_the_numeric_gradient() -> None:
    import numpy as np

    from models.learn.selfcheck import three_way_findings

    def loops(x, w):  # y_i = x_i w_i
        return [xi * wi for xi, wi in zip(x, w)]

    def forward(x, w):
        return x * w, (x, w)

    def backward(dy, cache):
        x, w = cache
        return dy * w, -dy * x  # dw with the wrong sign

    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal(4), "w": rng.standard_normal(4)}
    findings, table = three_way_findings(loops, forward, backward, inputs)
    assert [(f.kind, f.input) for f in findings] == [("sign", "your backward: dw")]
    assert set(findings[0].values) >= {"graph", "manual", "numeric"} and "FAIL" in table
    right = lambda dy, cache: (dy * cache[1], dy * cache[0])  # noqa: E731
    assert three_way_findings(loops, forward, right, inputs)[0] == []
