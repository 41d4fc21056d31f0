"""What a fresh-eyed learner found wrong with `twograd learn` (issue 19's review), one test each.

The planted mistakes of the review (a loops form without the max shift) are in mistakes.py's
FOURTH_BATCH and counted by test_learn_grading.py's hit rate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.cli import main


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


def test_start_in_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    where = tmp_path / "file" / "ws"  # under a regular file: mkdir fails whoever runs it (root too)
    line = _one_line(capsys, ["learn", "start", "linear", "--dir", str(where)], 1)
    assert str(where) in line and "I/O error" not in line and "Errno" not in line
