"""The `twograd` command: help, version, graph, check, tour, and one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.cli import main
from models.neuron import NEURON_INPUTS, neuron_graph, neuron_manual_grad, neuron_report

HAVE_DOT = shutil.which("dot") is not None

#: the neuron's o and its gradients against their exact values (1/sqrt 2, -1.5, 0.5, ...): b is
#: atanh(1/sqrt 2) + 6 written to 17 digits and every gradient is a product of O(1) floats, so the
#: error is a few ulps (measured <= 6.7e-16). 1e-12 leaves room for another libm's tanh.
NEURON_RTOL = 1e-12
#: absolute floor for do/dw2, which is exactly 0 (x2 = 0), and for near-zero rounding.
NEURON_ATOL = 1e-12


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "models.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("twograd ")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("tour", "graph", "check"):
        assert cmd in out


def test_neuron_gradients_are_the_known_ones() -> None:
    o, leaves = neuron_graph()
    # The inputs are chosen so that o = 1/sqrt(2), hence do/dn = 1 - o^2 = 1/2.
    assert o.data == pytest.approx(2**-0.5, rel=NEURON_RTOL, abs=NEURON_ATOL)
    expected = {"x1": -1.5, "x2": 0.5, "w1": 1.0, "w2": 0.0, "b": 0.5}
    for name, value in expected.items():
        assert leaves[name].grad == pytest.approx(value, rel=NEURON_RTOL, abs=NEURON_ATOL), name
        assert neuron_manual_grad()[name] == pytest.approx(value, rel=NEURON_RTOL, abs=NEURON_ATOL), name
    assert neuron_report().passed
    assert set(NEURON_INPUTS) == set(expected)


def test_graph_dot_always_works(tmp_path: Path, capsys) -> None:
    out = tmp_path / "neuron.dot"
    assert main(["graph", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.lstrip().startswith("digraph") and "tanh" in text
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_graph_image_formats(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"neuron{suffix}"
    assert main(["graph", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_graph_without_dot_is_one_clear_line(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # a PATH with no `dot` on it
    res = run_cli("graph", "-o", str(tmp_path / "n.svg"), env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "apt-get install graphviz" in lines[0]
    assert not (tmp_path / "n.svg").exists()


def test_graph_unknown_suffix_is_one_clear_line(tmp_path: Path) -> None:
    res = run_cli("graph", "-o", str(tmp_path / "n.bmp"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and ".svg" in res.stderr


def test_check_unknown_piece_is_one_clear_line() -> None:
    res = run_cli("check", "no_such_piece")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "no_such_piece" in res.stderr and "linear" in res.stderr


def test_usage_errors_are_one_line() -> None:
    for args in (["check", "--seed", "-5"], ["check", "--seed", "x"], ["bogus"]):
        res = run_cli(*args)
        assert res.returncode == 2, args
        assert len(res.stderr.strip().splitlines()) == 1 and "--help" in res.stderr, res.stderr


def test_tour_out_must_be_a_folder(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    res = run_cli("tour", "--out", str(afile))
    assert res.returncode == 2 and "is a file, not a folder" in res.stderr
    assert afile.read_text() == "keep me"


def test_tour_runs_every_stage(tmp_path: Path) -> None:
    res = run_cli("tour", "--out", str(tmp_path / "tour"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stages passed" in res.stdout and "FAIL" not in res.stdout
    assert any((tmp_path / "tour").iterdir())
