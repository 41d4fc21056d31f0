"""Keep the README true: its Python examples run as written and print what it shows."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert 'pip install -e ".[test,plot]" && python -m pytest -q -n 2\n' in text
    assert 'python -m pytest -q -m "not slow"\n' in text  # the fast subset
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\npython -m pytest -q -n 2\n" in ci and os.access(README.parent / ".ci" / "run", os.R_OK)


#: what may differ from run to run in a shown command's output: wall times.
_TIMES = [(re.compile(r"\d+\.\d+ s\)"), "T s)"), (re.compile(r'"seconds": [0-9.e-]+'), '"seconds": T'),
          (re.compile(r'"ms_per_step": [0-9.e-]+'), '"ms_per_step": T')]

#: what may differ from machine to machine: the digits of a number below this, in scientific
#: notation. A loss trained down to ~1e-22 is floating-point noise whose digits depend on the
#: CPU's SIMD path: `twograd train xor --json` printed 6.094399623248929e-22 on one AMD EPYC VM
#: and 6.094430304073685e-22 on another. Such a number still has to be below the floor.
NOISE_FLOOR = 1e-12
_TINY = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?e-\d+")


def _below_floor(match: re.Match) -> str:
    return f"<{NOISE_FLOOR:g}" if abs(float(match.group())) < NOISE_FLOOR else match.group()


def _shell_sessions(text: str) -> list[tuple[str, list[str]]]:
    """Every `$ twograd ...` command in the README's text blocks with the lines shown under it."""
    sessions: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                sessions.append((line[2:], []))
            elif sessions and block.lstrip().startswith("$ "):
                sessions[-1][1].append(line)
    return sessions


def _normalized(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, repl in _TIMES:
            line = pattern.sub(repl, line)
        line = _TINY.sub(_below_floor, line)
        out.append(line.rstrip())
    return out


@pytest.mark.slow
def test_readme_commands_print_what_it_shows(tmp_path: Path) -> None:
    """Run every `$ twograd ...` line of the README in order, in one folder, and compare what it
    prints with what the README shows under it (wall times aside)."""
    sessions = _shell_sessions(README.read_text())
    assert len(sessions) >= 8, "the README lost its command examples"
    env = {**os.environ, "PYTHONPATH": str(README.parent)}
    ran = 0
    for command, shown in sessions:
        command, _, comment = command.partition("  #")
        if comment.strip().startswith("with "):
            continue  # shown for another machine ("# with no dot on PATH"); tests/viz covers those messages
        argv = shlex.split(command)
        assert argv[0] == "twograd", command
        res = subprocess.run([sys.executable, "-m", "models.cli", *argv[1:]], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        printed = (res.stdout + res.stderr).splitlines()
        assert _normalized(printed) == _normalized(shown), f"$ {command}"
        ran += 1
    assert ran >= 8
