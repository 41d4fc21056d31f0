"""Keep the README true: its Python examples run as written and print what it shows."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run_as_shown(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write files (c.dot)
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 15, "the README lost its examples"
    assert result.failed == 0
    assert (tmp_path / "c.dot").read_text().startswith("digraph")


def test_readme_quickstart_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text()
    assert 'pip install -e ".[plot]" && twograd tour' in text
    assert 'pip install -e ".[test,plot]" && python -m pytest -q' in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and os.access(README.parent / ".ci" / "run", os.R_OK)
