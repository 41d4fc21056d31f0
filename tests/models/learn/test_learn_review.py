"""What a fresh-eyed learner found wrong with `twograd learn` (issue 19's review), one test each.

The planted mistakes of the review (a loops form without the max shift) are in mistakes.py's
FOURTH_BATCH and counted by test_learn_grading.py's hit rate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import mistakes
import numpy as np
import pytest

from models.cli import main
from models.learn import catalog, grade, report, template
from models.learn.exercise import Exercise

ROOT = Path(__file__).resolve().parents[3]


def _one_line(capsys: pytest.CaptureFixture, argv: list[str], code: int) -> str:
    got = main(argv)
    out, err = capsys.readouterr()
    assert got == code, (got, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines  # one line, no traceback
    return lines[0]


def test_train_learner_refuses_a_folder_that_is_not_a_workspace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("not a workspace")
    line = _one_line(capsys, ["train", "xor", "--learner", str(tmp_path)], 2)
    assert "not a twograd learn workspace" in line and f"twograd learn start NAME --dir {tmp_path}" in line


def test_start_in_a_folder_that_cannot_be_made_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    where = tmp_path / "file" / "ws"  # under a regular file: mkdir fails whoever runs it (root too)
    line = _one_line(capsys, ["learn", "start", "linear", "--dir", str(where)], 1)
    assert str(where) in line and "I/O error" not in line and "Errno" not in line


def _checked(tmp_path: Path, files: dict[str, tuple[str, str]]) -> dict[str, grade.CheckResult]:
    """label -> (exercise, text): each file in its own folder, all checked in one child process."""
    items = []
    for i, (exercise, text) in enumerate(files.values()):
        (tmp_path / f"w{i}").mkdir()
        path = tmp_path / f"w{i}" / f"{exercise}.py"
        path.write_text(text)
        items.append((catalog.get(exercise), path))
    return dict(zip(files, grade.check_many(items, random_seed=0)))


def test_the_review_s_diagnoses_are_clean_sentences(tmp_path: Path) -> None:
    """A forward returning only y is `shape` in one sentence; a db left unsummed names the axis the learner missed."""
    r = _checked(
        tmp_path,
        {
            "only_y": ("linear", mistakes.LINEAR_FORWARD_ONLY_Y),
            "over_b": ("linear", mistakes.LINEAR_DB_OVER_B_ONLY),
            "first_row": ("linear", mistakes.LINEAR_DB_FIRST_ROW),
            "loops": ("softmax", mistakes.SOFTMAX_LOOPS_NO_SHIFT),
        },
    )
    head = {k: v.findings[0] for k, v in r.items()}
    assert head["only_y"].kind == "shape"
    assert head["only_y"].message == "linear_forward must return (out, cache), a tuple; it returned an ndarray"
    assert head["over_b"].kind == "axis" and "T (axis 1" in head["over_b"].message
    assert "not summed over axis 0" not in head["over_b"].message  # they did sum over axis 0
    assert head["first_row"].kind == "axis" and "not summed over the broadcast batch axis" in head["first_row"].message
    assert (
        head["loops"].kind == "overflow"
        and head["loops"].input == "softmax_loops"
        and "+-1000" in head["loops"].message
    )


def _formula_lines(ex: Exercise) -> list[str]:
    """The backward's formulas: every line of its derivation (the docstrings' backward part) that states an equation,
    and the hints from the formula level on."""
    lines = [ln.strip() for ln in ex.derivation_text().splitlines() if "=" in ln and len(ln.strip()) >= 12]
    return lines + [h for h in ex.hints[ex.formula_level - 1 :] if "=" in h]


@pytest.mark.parametrize("name", catalog.names())
def test_stub_and_show_give_the_forward_and_what_to_derive_not_the_backwards_formula(name: str) -> None:
    ex = catalog.get(name)
    stub = template.starting_file(ex, "twograd-learn")
    show = report.format_exercise(report.exercise_info(ex))
    for line in _formula_lines(ex):
        assert line not in stub and line not in show, line
    if any(f.name.endswith("_backward") for f in ex.functions):
        for text in (stub, show):  # the return contract, and the gradients to derive by name
            assert "returns (out, cache)" in text and "a tuple even for one input" in text
            assert re.search(r"Return \(d\w+", text)
        assert ex.derivation_text() or len(ex.hints) > 1  # the derivation is still given, at the formula's hint level
    assert ex.math_text().strip()


def test_the_formula_level_hint_gives_the_derivation(capsys: pytest.CaptureFixture) -> None:
    assert main(["learn", "hint", "linear", "--level", "2"]) == 0
    out = capsys.readouterr().out
    assert "dx = G @ W^T" in out and "dW = x^T @ G" in out  # nn/linear.py's linear_backward docstring


@pytest.mark.parametrize("name", catalog.names())
def test_stubs_keep_pep8s_two_blank_lines_and_import_what_they_name(name: str) -> None:
    stub = template.starting_file(catalog.get(name), "twograd-learn")
    lines = stub.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("def ", "class ")):
            assert lines[i - 1] == lines[i - 2] == "" and lines[i - 3] != "", (i, line)
    compile(stub, f"{name}.py", "exec")
    if "engine.data_of" in stub:
        assert re.search(r"^from engine import .*\bdata_of\b", stub, flags=re.M)
    assert "Each row is `engine.softmax`" not in stub


def _check_file(capsys: pytest.CaptureFixture, ws: Path, name: str, text: str) -> str:
    if not (ws / f"{name}.py").exists():
        assert main(["learn", "start", name, "--dir", str(ws)]) == 0
    (ws / f"{name}.py").write_text(text)
    assert main(["learn", "check", name, "--dir", str(ws), "--random-seed", "0"]) == 1
    return capsys.readouterr().out


def test_the_first_hint_points_at_what_the_last_check_found(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ws = tmp_path / "ws"
    _check_file(capsys, ws, "linear", mistakes._wrap_backward("nn.linear", "linear", "    g[1] = g[1].T"))
    assert main(["learn", "hint", "linear", "--dir", str(ws)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert "[transposed] linear_backward: dW" in first and "your dW is transposed" in first
    assert "hint 1 of 2 for linear, in general:" in out  # then the general hint
    assert main(["learn", "hint", "linear", "--dir", str(ws), "--level", "2"]) == 0
    assert "last check" not in capsys.readouterr().out  # --level N is the N-th hint, as before
    (ws / "linear.py").write_text(
        template.reference_file(catalog.get("linear"))
    )  # edited since: the diagnosis is stale
    assert main(["learn", "hint", "linear", "--dir", str(ws)]) == 0
    assert capsys.readouterr().out.startswith("hint 1 of 2 for linear: ")


def test_a_level_past_the_last_hint_says_how_many_there_are(capsys: pytest.CaptureFixture) -> None:
    code = main(["learn", "hint", "linear", "--level", "99"])
    err = capsys.readouterr().err
    assert code == 2 and "linear has only 2 hints" in err and len(err.strip().splitlines()) == 1


def test_after_an_error_the_report_points_at_the_error_not_the_hints(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = tmp_path / "ws"
    out = _check_file(
        capsys, ws, "linear", mistakes._wrap_backward("nn.linear", "linear", "    raise IndexError('oops')")
    )
    assert "[error]" in out and "learn hint" not in out and "fix that first" in out
    assert main(["learn", "hint", "linear", "--dir", str(ws)]) == 0
    assert "stopped at an error" in capsys.readouterr().out.splitlines()[0]


def test_show_training_loop_gives_the_math_of_a_training_loop(capsys: pytest.CaptureFixture) -> None:
    assert main(["learn", "show", "training_loop"]) == 0
    out = capsys.readouterr().out
    assert "p <- p - lr g" in out and "train(loss_and_grad, params, *, lr, steps)" in out and "IN PLACE" in out
    assert "Ctrl-C" not in out and "checkpoint" not in out.lower()  # the Trainer's run machinery is not the exercise


def test_the_recheck_says_a_factor_in_words(tmp_path: Path) -> None:
    from models.training.learner import _how_far

    ours = np.arange(1.0, 7.0).reshape(2, 3)
    assert _how_far(ours, 2 * ours, 0.59) == "2x too big (factor)"
    assert _how_far(ours, ours / 4, 0.6) == "4x too small (factor)"


def test_every_stub_passes_ruff(tmp_path: Path) -> None:
    """The project's linter on the files `learn start` writes (pycodestyle's blank-line rules are ruff's preview ones)."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra)")
    for name in catalog.names():
        (tmp_path / f"{name}.py").write_text(template.starting_file(catalog.get(name), "twograd-learn"))
    res = subprocess.run(
        [
            ruff,
            "check",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--preview",
            "--select",
            "E,W,F",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout
