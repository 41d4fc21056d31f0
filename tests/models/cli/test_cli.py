"""The `twograd` command: help, version, graph, check, tour, one-line errors, exit statuses, --json."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine import InputError
from models import check
from models.cli import COMMANDS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, build_parser, main
from models.tour_stages.runner import STAGES
from models.zoo.neuron import NEURON_INPUTS, neuron_graph, neuron_manual_grad, neuron_report

HAVE_DOT = shutil.which("dot") is not None

#: the neuron's o and its gradients against their exact values (1/sqrt 2, -1.5, 0.5, ...): b is
#: atanh(1/sqrt 2) + 6 written to 17 digits and every gradient is a product of O(1) floats, so the
#: error is a few ulps (measured <= 6.7e-16). 1e-12 leaves room for another libm's tanh.
NEURON_RTOL = 1e-12
#: absolute floor for do/dw2, which is exactly 0 (x2 = 0), and for near-zero rounding.
NEURON_ATOL = 1e-12


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    if cwd is not None:  # run from elsewhere: the package must still import from this checkout
        env = {**(env or os.environ), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.run(
        [sys.executable, "-m", "models.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


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
    assert res.returncode == 1  # the request was fine; this machine cannot render it: a run-time failure
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


def test_an_unknown_flag_is_named_by_its_command(capsys) -> None:
    assert main(["align", "--frob"]) == EXIT_USAGE
    assert (
        capsys.readouterr().err.strip()
        == "twograd align: error: unrecognized arguments: --frob (see twograd align --help)"
    )
    assert main(["--frob"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == "twograd: error: unrecognized arguments: --frob (see twograd --help)"


def test_tour_out_must_be_a_folder(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    res = run_cli("tour", "--out", str(afile))
    assert res.returncode == 2 and "is a file, not a folder" in res.stderr
    assert afile.read_text() == "keep me"


def test_tour_out_empty_is_a_usage_error_that_writes_nothing(tmp_path: Path) -> None:
    res = run_cli("tour", "--out", "", cwd=tmp_path)
    assert res.returncode == 2 and "needs a folder name" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # not the whole tour in the current folder


@pytest.mark.slow
def test_tour_runs_every_stage(tmp_path: Path) -> None:
    """The whole tour, once, through a real process (the one full tour of the suite: it is its slowest test)."""
    res = run_cli("tour", "--out", str(tmp_path / "tour"), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["passed"] is True and "error" not in out
    assert [s["module"] for s in out["stages"]] == [m for _, m in STAGES]
    assert all(s["passed"] and s["lines"] for s in out["stages"])
    assert any((tmp_path / "tour").iterdir())
    # docs/getting-started.md shows this run's output (times and the training numbers vary by machine):
    # its stage titles, its piece table's names and its count of checks must be this tour's.
    shown = _getting_started_tour_lines()
    titles = [f"== {i}/{len(STAGES)}: {title} ==" for i, (title, _) in enumerate(STAGES, 1)]
    assert [line for line in shown if line.startswith("== ")] == titles
    pieces = "\n".join(out["stages"][1]["lines"]).splitlines()  # a stage may echo several lines at once
    assert _counts_line(shown) == _counts_line(pieces), "docs/getting-started.md shows an old count of checks"
    assert _piece_names(shown) == _piece_names(pieces), "docs/getting-started.md shows an old list of pieces"


def _getting_started_tour_lines() -> list[str]:
    """The lines of the first ```text block of docs/getting-started.md: what the tour prints there."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "getting-started.md").read_text(encoding="utf-8")
    return text.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


def _counts_line(lines: list[str]) -> str:
    found = [line for line in lines if "(piece, parameter) checks passed over" in line]
    assert len(found) == 1, found
    return found[0]


def _piece_names(lines: list[str]) -> list[str]:
    """The first column of the stage-2 table, between its dashes row and the counts line."""
    start = next(i for i, line in enumerate(lines) if line.startswith("piece ")) + 2
    end = next(i for i, line in enumerate(lines) if "(piece, parameter) checks passed over" in line)
    return [line.split()[0] for line in lines[start:end]]


@pytest.mark.slow
def test_tour_with_a_failing_dot_runs_every_stage_and_saves_dot_files(tmp_path: Path) -> None:
    """issue 14: a `dot` that exists but fails used to end the tour at stage 1 with exit 2."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dot").write_text("#!/bin/sh\necho 'dot: something broke' >&2\nexit 1\n")
    (fake / "dot").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the stages that draw a graph with `dot` (the others draw with matplotlib, which a failing dot cannot stop)
    drawing_stages = ["neuron", "xor", "attention", "transformer"]
    res = run_cli("tour", "--out", str(tmp_path / "tour"), *(f"--stage={s}" for s in drawing_stages), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    stages = len(drawing_stages)
    assert f"tour: {stages} of {stages} stages passed" in res.stdout
    why = [line for line in res.stdout.splitlines() if line.startswith("(no picture: ")]
    # the stages that draw a graph
    drawn = {
        "models.zoo.neuron",
        "models.training.tasks",
        "models.tour_stages.attention",
        "models.tour_stages.transformer",
    }
    assert len(why) == len(drawn) and all("failed (exit 1): dot: something broke" in line for line in why), why
    dots = sorted(p.name for p in (tmp_path / "tour").glob("*.dot"))
    assert len(dots) == len(drawn) and not list((tmp_path / "tour").glob("*graph*.svg")), dots
    assert "Traceback" not in res.stderr


def test_graph_explain_prints_the_paths_of_the_neuron(capsys) -> None:
    assert main(["graph", "--explain", "x1"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "d(o)/d(x1): 1 path" in out and "x1 --(-3)--> x1*w1" in out and "total: -1.5" in out


def test_graph_explain_of_an_expression(tmp_path: Path, capsys) -> None:
    target = tmp_path / "e.dot"
    argv = ["graph", "--expr", "tanh(x*w + b)", "--at", "x=0.5,w=-1,b=2", "--explain", "w", "-o", str(target)]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "d(tanh(x*w + b))/d(w): 1 path" in out and f"wrote {target}" in out
    assert "#d93025" in target.read_text()  # the path from w is coloured
    assert main(argv + ["--json"]) == EXIT_OK
    result = json_out(capsys)
    assert result["explain"]["paths"] == 1 and result["explain"]["total"] == pytest.approx(
        0.5 * (1 - math.tanh(1.5) ** 2)
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["graph"], "needs -o FILE"),
        (["graph", "--explain", "zz"], "no input named 'zz'"),
        (["graph", "--expr", "__import__('os').system('true')", "--at", "x=1", "--explain", "x"], "can be called"),
        (["graph", "--expr", "x*y", "--at", "x=1", "--explain", "x"], "no value for y"),
        (["graph", "--expr", "x", "--at", "x=one", "--explain", "x"], "is not a number"),
    ],
)
def test_graph_explain_usage_errors(argv: list[str], needle: str, capsys) -> None:
    assert main(argv) == EXIT_USAGE
    assert needle in capsys.readouterr().err


# ------------------------------------------------------------------------------ the table
def test_every_table_command_is_a_subcommand_with_its_module() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [c.name for c in COMMANDS]
    for c in COMMANDS:
        args = sub.choices[c.name].parse_args(
            {"train": ["xor"], "graph": ["-o", "f.dot"], "sample": ["--run", "r"], "distill": ["spirals"]}.get(
                c.name, []
            )
        )
        assert args.func.__module__ == c.module, c.name


def test_no_cli_module_holds_library_logic() -> None:
    """A command module only parses and prints: `add_arguments` and `run` (argparse `type=`
    converters live in models/cli/types.py, shared by all commands)."""
    import ast

    folder = Path(__file__).resolve().parents[3] / "models" / "cli"
    for c in COMMANDS:
        if not c.module.startswith("models.cli."):
            continue
        tree = ast.parse((folder / f"{c.module.rsplit('.', 1)[1]}.py").read_text())
        funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert {"add_arguments", "run"} <= set(funcs), c.name
        assert set(funcs) == {"add_arguments", "run"}, f"{c.module} defines {funcs}"
        assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], c.module


# ------------------------------------------------------------------------------ exit statuses
def json_out(capsys) -> dict:
    """The one strict JSON object a command printed on stdout."""
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1, out
    return json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_exit_0_and_graph_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "n.dot"
    assert main(["graph", "-o", str(out), "--json"]) == EXIT_OK
    assert json_out(capsys) == {"wrote": str(out), "format": "dot"}
    assert out.read_text().startswith("digraph")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["bogus"], "invalid choice"),  # argparse
        (["check", "--seed", "-1"], "--seed"),  # argparse, in a subcommand
        (["check", "no_such_piece"], "no_such_piece"),  # UnknownNameError (an InputError)
        (["check", "--list", "no_such_piece"], "no_such_piece"),
        (["graph", "-o", "n.bmp"], ".bmp"),  # InputError: no such format
        (["graph", "-o", "n.dot", "--rankdir", "XY"], "invalid choice"),
    ],
)
def test_exit_2_usage_errors(argv: list[str], needle: str, capsys) -> None:
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert needle in line and line.startswith("twograd") and ": error: " in line


@pytest.mark.parametrize(
    "argv,needle",
    [(["bogus"], "invalid choice"), (["check", "no_such_piece"], "no_such_piece"), (["graph", "-o", "n.bmp"], ".bmp")],
)
def test_exit_2_json_is_an_error_object(argv: list[str], needle: str, capsys) -> None:
    assert main(argv + ["--json"]) == EXIT_USAGE
    out = json_out(capsys)
    assert list(out) == ["error"] and needle in out["error"]


def test_tour_out_that_is_a_file_is_exit_2_json(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["tour", "--out", str(afile), "--json"]) == EXIT_USAGE
    assert "is a file, not a folder" in json_out(capsys)["error"]


def test_exit_1_run_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz `dot` on it: viz's GraphvizNotFound -> RunError
    assert main(["graph", "-o", str(tmp_path / "n.svg")]) == EXIT_FAILED
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("twograd graph: error: ") and "apt-get install graphviz" in line
    assert main(["graph", "-o", str(tmp_path / "n.svg"), "--json"]) == EXIT_FAILED
    assert "apt-get install graphviz" in json_out(capsys)["error"]
    assert not (tmp_path / "n.svg").exists()


def test_exit_1_io_error_while_writing(tmp_path: Path, capsys) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir" / "n.dot"
    assert main(["graph", "-o", str(missing_dir)]) == EXIT_FAILED
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("twograd graph: error: I/O error: ") and str(missing_dir.parent) in line
    assert main(["graph", "-o", str(missing_dir), "--json"]) == EXIT_FAILED
    assert json_out(capsys)["error"].startswith("I/O error: ")


def test_exit_130_when_interrupted(capsys, monkeypatch) -> None:
    def ctrl_c(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check, "run_checks", ctrl_c)
    assert main(["check"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "twograd check: interrupted"
    assert main(["check", "--json"]) == EXIT_INTERRUPTED
    assert json_out(capsys) == {"error": "interrupted"}


@pytest.mark.parametrize("bug", [KeyError("k"), RuntimeError("r"), ValueError("v"), TypeError("t")], ids=repr)
def test_an_exception_that_is_not_ours_is_a_bug_with_its_traceback(bug: Exception, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise bug

    monkeypatch.setattr(check, "run_checks", broken)
    with pytest.raises(type(bug)) as err:
        main(["check"])
    assert err.value is bug


def test_twograd_debug_shows_the_traceback_of_a_handled_error(monkeypatch) -> None:
    monkeypatch.setenv("TWOGRAD_DEBUG", "1")
    with pytest.raises(InputError, match="no_such_piece"):
        main(["check", "no_such_piece"])


# ------------------------------------------------------------------------------ --json forms
def test_check_list_json_has_nn_and_models_pieces(capsys) -> None:
    assert main(["check", "--list", "--json"]) == EXIT_OK
    pieces = json_out(capsys)["pieces"]
    by_name = {p["name"]: p for p in pieces}
    assert by_name["mlp"]["module"] == "models.zoo.mlp" and by_name["linear"]["module"] == "nn.linear"
    assert all(p["cases"] for p in pieces)
    assert main(["check", "--list"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "mlp" in text and "from models" in text and "from nn" in text


def test_tour_json_in_process(tmp_path: Path, capsys) -> None:
    """In process, two quick stages (test_tour_runs_every_stage runs them all, once, in a real process)."""
    assert main(["tour", "--out", str(tmp_path / "t"), "--json", "--stage", "neuron", "--stage", "xor"]) == EXIT_OK
    out = json_out(capsys)
    assert out["passed"] is True and "error" not in out
    assert [s["module"] for s in out["stages"]] == ["models.tour_stages.neuron", "models.tour_stages.xor"]
    assert all(s["passed"] and s["lines"] for s in out["stages"])


def test_json_and_exit_status_through_a_real_process(tmp_path: Path) -> None:
    """Once through `python -m models.cli`: stdout is exactly one JSON object, in both outcomes."""
    ok = run_cli("check", "relu", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["passed"] is True
    bad = run_cli("graph", "-o", str(tmp_path / "n.bmp"), "--json")
    assert bad.returncode == 2 and list(json.loads(bad.stdout)) == ["error"]
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`twograd check --list | head -1`: the reader goes away; no traceback, no error line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "models.cli", "check", "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 141, err
    assert err == b""


def test_running_out_of_memory_is_one_line_and_exit_1(capsys, monkeypatch) -> None:
    def too_big(*_args, **_kwargs):
        raise MemoryError("Unable to allocate 23.9 GiB for an array")

    monkeypatch.setattr(check, "run_checks", too_big)
    assert main(["check", "--json"]) == EXIT_FAILED
    assert json_out(capsys)["error"].startswith("out of memory (Unable to allocate 23.9 GiB")
