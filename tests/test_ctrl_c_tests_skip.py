"""A Ctrl-C test under a pytest started with SIGINT ignored (nohup, `&`, some CI runners) skips
and says why, instead of failing with a cryptic assert (tests/real_sigint.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from real_sigint import REASON

ROOT = Path(__file__).resolve().parents[1]
#: generous: a pytest collecting two small files and running a few quick tests
PYTEST_TIMEOUT_SECONDS = 300
#: one Ctrl-C test in the process (the trainer's latch), one that starts a child (start-up)
CTRL_C_TESTS = [
    "tests/models/training/test_trainer.py::test_second_sigint_stops_at_once_with_a_whole_state",
    "tests/models/cli/test_cli_startup.py",
]


@pytest.mark.slow  # a whole pytest in a child process
def test_ctrl_c_tests_skip_with_the_reason_when_sigint_is_ignored() -> None:
    ignoring = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, '-m', 'pytest', *sys.argv[1:]])"
    )
    argv = [sys.executable, "-c", ignoring, "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", *CTRL_C_TESTS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 skipped" in result.stdout and "passed" not in result.stdout and "failed" not in result.stdout, (
        result.stdout
    )
    assert REASON in result.stdout.replace("\n", "")
