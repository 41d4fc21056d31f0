"""docs/guide/learn.md's session, replayed: every `$ twograd` command in order, with the learner's edits between.

tests/test_readme.py cannot replay this page (SESSIONS_NOT_REPLAYED): the learner edits their file
between the commands. Here the edits are made where the page says they are: the first attempt is
the page's own python block, the fix is the one line the page names, and layer norm's file is the
planted mistake the page describes (tests/models/learn/mistakes.py). Every shown output is compared
line for line (the pytest run's too); only durations are normalised.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mistakes import LAYER_NORM_NO_MEAN_PATH

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "guide" / "learn.md"
#: the fix the page names, applied to its first attempt
WRONG_LINE, FIXED_LINE = "dW = d2.T @ x2", "dW = x2.T @ d2"


def _no_time(line: str) -> str:
    """A line with its durations replaced ("in 2.53s" -> "in <t>s"): the one thing a replay may change."""
    return re.sub(r"\b\d+(\.\d+)? ?s\b", "<t>s", line)


def _sessions(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


@pytest.mark.slow  # the guide's whole session, command by command
def test_the_guides_session_prints_what_it_shows(tmp_path: Path) -> None:
    text = PAGE.read_text()
    attempt = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    assert WRONG_LINE in attempt and f"`{FIXED_LINE}`" in text
    mine = tmp_path / "twograd-learn" / "linear.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    checks = 0
    ran = 0
    for command, shown in _sessions(text):
        argv = shlex.split(command)
        if argv[0] == "pytest":  # the plugin's run of the kept test file: the same, but for its time
            res = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            printed = [_no_time(line.rstrip()) for line in res.stdout.splitlines()]
            assert printed == [_no_time(line.rstrip()) for line in shown], f"$ {command}"
            ran += 1
            continue
        if argv[1:3] == ["learn", "check"] and argv[3] == "linear":
            checks += 1
            if checks == 2:
                mine.write_text(attempt)
            if checks == 3:
                mine.write_text(attempt.replace(WRONG_LINE, FIXED_LINE))
        if argv[1:4] == ["learn", "check", "layer_norm"]:
            subprocess.run(
                [sys.executable, "-m", "models.cli", "learn", "start", "layer_norm"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                check=True,
            )
            (tmp_path / "twograd-learn" / "layer_norm.py").write_text(LAYER_NORM_NO_MEAN_PATH)
        res = subprocess.run(
            [sys.executable, "-m", "models.cli", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        printed = [line.rstrip() for line in (res.stdout + res.stderr).splitlines()]
        assert printed == [line.rstrip() for line in shown], f"$ {command}"
        ran += 1
    assert checks == 3 and ran >= 10
