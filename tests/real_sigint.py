"""For the Ctrl-C tests: a real SIGINT reaches the code under test only if it is not ignored.

A process started with SIGINT ignored (`nohup pytest ... &`, `pytest ... &` in a non-interactive
shell, some CI runners) keeps it ignored, and so does every child it starts: a test that sends
SIGINT would then fail with a cryptic assert. Such a test is marked `needs_real_sigint` (it is
skipped, with the reason, in the process) and, when it starts a child, also calls
`skip_if_a_child_ignores_sigint()` (it asks a fresh interpreter, as the child will be).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

REASON = (
    "SIGINT is ignored in this test process (pytest was started under nohup, with & in a non-interactive shell, "
    "or by a runner that ignores it), so a real Ctrl-C cannot reach the code under test; run pytest in the "
    "foreground to run this test"
)
#: generous: a bare interpreter answering one question
CHILD_TIMEOUT_SECONDS = 120


def sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


needs_real_sigint = pytest.mark.skipif(sigint_ignored(), reason=REASON)


def skip_if_a_child_ignores_sigint() -> None:
    """Skip the calling test when a child process started from here would ignore SIGINT."""
    probe = "import signal, sys; sys.exit(3 if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else 0)"
    code = subprocess.run([sys.executable, "-c", probe], timeout=CHILD_TIMEOUT_SECONDS).returncode
    if code == 3:
        pytest.skip("a child process " + REASON.replace("this test process", "the children of this test process"))
