"""`twograd tour --stage N|NAME` runs one stage (or a few), `--quiet` prints a line per stage; the
help says what the stages print (stages 6-9 train, they print no gradient check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.cli import EXIT_OK, EXIT_USAGE, main
from models.tour_stages.runner import STAGES, select_stages


@pytest.mark.slow
def test_tour_stage_by_number_or_name_runs_only_that_stage(tmp_path: Path, capsys) -> None:
    assert main(["tour", "--stage", "1", "--out", str(tmp_path / "a")]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"== 1/{len(STAGES)}: {STAGES[0][0]} ==" in out and f"== 2/{len(STAGES)}" not in out
    assert "tour: 1 of 1 stages passed" in out
    assert (tmp_path / "a" / "neuron.svg").exists() or (tmp_path / "a" / "neuron.dot").exists()  # .dot without Graphviz
    assert main(["tour", "--stage", "neuron", "--stage", "xor", "--out", str(tmp_path / "b"), "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert [s["module"] for s in result["stages"]] == [
        "models.tour_stages.neuron",
        "models.tour_stages.xor",
    ] and result["passed"]


def test_tour_quiet_prints_one_line_per_stage_and_the_summary(tmp_path: Path, capsys) -> None:
    assert main(["tour", "--stage", "xor", "--stage", "1", "--quiet", "--out", str(tmp_path)]) == EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"1/{len(STAGES)} passed  {STAGES[0][0]} (") and lines[1].startswith(
        f"3/{len(STAGES)} passed  "
    )
    assert lines[2] == f"tour: 2 of 2 stages passed; pictures in {tmp_path}/"


@pytest.mark.parametrize("bad", ["0", "10", "nope"])
def test_an_unknown_stage_is_a_usage_error_that_writes_nothing(bad: str, tmp_path: Path, capsys) -> None:
    assert main(["tour", "--stage", bad, "--out", str(tmp_path / "t")]) == EXIT_USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--stage: no stage {bad!r}; give a number 1-{len(STAGES)} or one of: neuron, pieces" in line
    assert not (tmp_path / "t").exists()


def test_select_stages_keeps_the_tour_order() -> None:
    assert select_stages(None) == list(range(1, len(STAGES) + 1))
    assert select_stages(["micro", "2", "MICRO"]) == [2, 7]


def test_the_help_says_which_stages_print_a_gradient_check(capsys) -> None:
    """It said "each stage prints its three-way gradient check", untrue of stages 6-9."""
    with pytest.raises(SystemExit):
        main(["tour", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Stages 1, 2, 4 and 5 print their three-way gradient checks" in text and "stages 6-9 train models" in text
    assert "each stage prints its three-way" not in text.lower()
    assert [i for i, (title, _) in enumerate(STAGES, 1) if "three ways" in title] == [1, 2, 4, 5]  # the claim's basis


def test_no_command_help_speaks_of_its_implementation(capsys) -> None:
    """`distill --help` said "Argument parsing only: the work is models.experiments.distill.distill"."""
    for command in ("tour", "graph", "check", "train", "sample", "distill", "align"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "Argument parsing" not in capsys.readouterr().out, command


def test_no_page_claims_every_stage_prints_a_gradient_check() -> None:
    root = Path(__file__).resolve().parents[3]
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    wrong = [
        str(p.relative_to(root)) for p in pages if "each stage prints its three-way" in " ".join(p.read_text().split())
    ]
    assert not wrong, f"these pages still say every stage prints a three-way check: {wrong}"
