"""`twograd` interrupted while it is still starting up: one line and exit 130, never a traceback.

The child is held inside its first import of numpy (the first heavy import, where most of the
start-up time goes) by a `sitecustomize` module on its path: it says so on stderr and waits, the
test sends the real SIGINT then. No sleep: the test waits for that line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from real_sigint import needs_real_sigint, skip_if_a_child_ignores_sigint

ROOT = Path(__file__).resolve().parents[3]
#: generous: the child imports a little and runs nothing
CHILD_TIMEOUT_SECONDS = 120
HELD = "held at the import of numpy"

_SITECUSTOMIZE = f'''
import sys

class _HoldAtNumpy:
    """Stops the first import of numpy until the parent's SIGINT arrives (as a KeyboardInterrupt)."""
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            print("{HELD}", file=sys.stderr, flush=True)
            sys.stdin.readline()  # the parent never writes: only the signal ends this wait
        return None

sys.meta_path.insert(0, _HoldAtNumpy())
'''

#: how the command is started: `python -m models.cli` and what the console script `twograd` runs
STARTS = {
    "python -m models.cli": ["-m", "models.cli"],
    "the twograd console script": ["-c", "import sys; from models.cli import main; sys.exit(main())"],
}


@needs_real_sigint
@pytest.mark.parametrize("start", list(STARTS))
@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_while_importing_is_one_line_and_exit_130(start: str, as_json: bool, tmp_path: Path) -> None:
    skip_if_a_child_ignores_sigint()
    (tmp_path / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    argv = [sys.executable, *STARTS[start], "check", "--list"] + (["--json"] if as_json else [])
    child = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stderr.readline().strip() == HELD  # the event: it is inside the import now
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    finally:
        child.kill()
        child.wait()
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == ["twograd: interrupted"]
    assert child.returncode == 130
    assert out == ('{"error": "interrupted"}\n' if as_json else "")
