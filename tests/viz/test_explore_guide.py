"""docs/guide/explore.md runs as written: its Python examples (doctest) and its commands, with their output."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide" / "explore.md"


def test_the_python_examples_print_what_the_guide_says(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write neuron.html
    result = doctest.testfile(str(GUIDE), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 25 and result.failed == 0, result
    assert (tmp_path / "neuron.html").is_file()


def _console_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every `$ twograd ...` line of the console blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; a line "..." stands for any number of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and _matches(expected[1:], actual[1:])


@pytest.mark.slow
def test_the_commands_print_what_the_guide_says(tmp_path) -> None:
    commands = _console_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(commands) == 3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[0] == "twograd"
        res = subprocess.run(
            [sys.executable, "-m", "models.cli", *argv[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr
        assert _matches(expected, res.stdout.splitlines()), (command, res.stdout)


def test_the_screenshots_it_shows_exist() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", GUIDE.read_text(encoding="utf-8"))
    assert len(images) == 4  # the neuron, the folded MLP, an opened group, a painted comparison
    for image in images:
        assert (GUIDE.parent / image).resolve().is_file(), image
