"""`twograd graph --html FILE` and `twograd check NAME --html FILE`: the explorer's pages from the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import models.check_explore as check_explore
from models.check import pieces
from models.cli import EXIT_OK, EXIT_USAGE, main
from models.zoo.neuron import neuron_graph

ROOT = Path(__file__).resolve().parents[3]


def _page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" class="tg-data">(.*?)</script>', text, re.S).group(1))


def test_graph_html_writes_the_neuron_page(tmp_path: Path, capsys) -> None:
    out = tmp_path / "neuron.html"
    assert main(["graph", "--html", str(out)]) == EXIT_OK
    assert capsys.readouterr().out == f"wrote {out} (15 steps)\n"
    data = _page_data(out)
    o, _ = neuron_graph()
    assert data["title"] == "o = tanh(x1*w1 + x2*w2 + b)" and len(data["steps"]) == 15
    assert data["nodes"][-1]["d"] == o.data and data["layoutError"] is None


def test_graph_html_of_an_expression_as_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "e.html"
    assert main(["graph", "--expr", "x*x + x", "--at", "x=3", "--html", str(out), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"html": {"wrote": str(out), "steps": 7, "picture": True}}
    assert [n["g"] for n in _page_data(out)["nodes"]] == [7.0, 1.0, 1.0]  # x, x*x, x*x + x


def test_graph_html_without_dot_lists_the_steps_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}  # no `dot` on PATH
    res = subprocess.run(
        [sys.executable, "-m", "models.cli", "graph", "--html", str(tmp_path / "n.html")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == EXIT_OK, res.stderr
    lines = res.stdout.splitlines()
    assert (
        lines[-2].startswith("no picture: Graphviz's `dot` was not found") and "apt-get install graphviz" in lines[-2]
    )
    assert lines[-3] == "final grads: x1 = -1.5, w1 = 1, x2 = 0.5, w2 = 0, b = 0.5"
    assert lines[-1] == f"wrote {tmp_path / 'n.html'} (15 steps)"
    assert (tmp_path / "n.html").is_file()


def test_graph_html_refuses_another_suffix_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["graph", "--html", str(tmp_path / "n.svg")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the explorer writes an .html file" in err


def test_check_html_paints_the_manual_gradient_on_the_leaves(tmp_path: Path, capsys) -> None:
    out = tmp_path / "linear.html"
    assert main(["check", "linear", "--html", str(out)]) == EXIT_OK
    assert f"wrote {out}: 0 of 11 leaves disagree (relative error above 1e-10)" in capsys.readouterr().out
    painted = _page_data(out)["compare"]
    assert len(painted["rel"]) == 11 and painted["disagree"] == []  # x (1, 3), W (3, 2), b (2,)


def test_check_html_needs_exactly_one_name(tmp_path: Path, capsys) -> None:
    assert main(["check", "linear", "tanh", "--html", str(tmp_path / "x.html")]) == EXIT_USAGE
    assert "--html FILE needs exactly one piece NAME" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_a_manual_backward_wrong_on_one_entry_is_painted_there_only(monkeypatch) -> None:
    linear = pieces(["linear"])[0]

    def wrong_backward(dout, cache):
        dx, dW, db = linear.backward(dout, cache)
        dW = dW.copy()
        dW[1, 0] += 1.0  # one wrong entry
        return dx, dW, db

    monkeypatch.setattr(check_explore, "pieces", lambda names: [dataclasses.replace(linear, backward=wrong_backward)])
    explorer = check_explore.piece_explorer("linear")
    names = [explorer.recording.nodes[i].name for i in explorer.comparison.disagree]
    assert names == ["W[1,0]"]
    assert np.isfinite(list(explorer.comparison.rel.values())).all()
