"""Running the learner's file in a child process, with a wall-clock limit and a memory limit.

The parent writes the tasks (spec.json) and their arrays (inputs.npz) into a fresh temporary
folder, starts `sys.executable runner.py FOLDER` in a new session (so the whole group can be
killed), and reads back results.json and results.npz (allow_pickle=False). Nothing is pickled
either way. The child sets its own limits (resource.setrlimit: RLIMIT_AS for memory, RLIMIT_CPU
as a backstop), so a 10 GB allocation is a MemoryError inside it, and the parent's wall-clock
limit kills an infinite loop, a `time.sleep` or a child that never returns.

Whatever happens in the child, the parent gets one `Outcome`: the results, or a kind
(`timeout`, `error`) and one line saying what happened (exit status, signal, the last line the
child printed on stderr).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

#: seconds of wall-clock time a check may take; a transformer block's full check takes about 3 s.
DEFAULT_TIME_LIMIT = 60.0
#: address-space limit of the child: numpy and the cases need ~0.5 GiB; a runaway allocation stops here.
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
RUNNER = Path(__file__).resolve().parent / "runner.py"
ROOT = Path(__file__).resolve().parents[2]  # the folder holding engine/, nn/, models/


@dataclass
class Outcome:
    """What the child did: `results` (per task) when it finished, else `kind` and `message`."""

    results: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = ""  # "" (finished), "timeout" or "error"
    message: str = ""
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return not self.kind

    def array(self, meta: dict[str, Any]) -> np.ndarray:
        return self.arrays[meta["key"]]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_file(
    path: Path,
    exercise: str,
    tasks: list[dict[str, Any]],
    arrays: dict[str, np.ndarray],
    *,
    required: list[str] | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> Outcome:
    """Run `tasks` on the learner's file `path` in a child process; never raises for anything the child does."""
    import time

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twograd-learn-") as tmp:
        spec = {
            "exercise": exercise, "module_path": str(Path(path).resolve()), "workspace": str(Path(path).resolve().parent),
            "root": str(ROOT), "memory_bytes": int(memory_limit), "cpu_seconds": int(time_limit) + 2,
            "required": list(required or []), "tasks": tasks,
        }
        Path(tmp, "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        # (typed Any: numpy 2.x stubs would match a key to its allow_pickle flag; the keys are input names)
        np.savez(Path(tmp, "inputs.npz"), **cast("dict[str, Any]", arrays))
        env = dict(os.environ)
        # one BLAS thread: the cases are tiny, the machine is shared, and a thread pool reserves address space
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing of ours written into the learner's folder
        env.pop("PYTHONPATH", None)  # the runner puts twograd's root first itself
        proc = subprocess.Popen(
            [sys.executable, "-u", str(RUNNER), tmp], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=str(Path(path).resolve().parent), env=env, start_new_session=True,
        )
        try:
            _, err = proc.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return Outcome(kind="timeout", seconds=time.perf_counter() - start,
                           message=f"your file did not finish within the time limit of {time_limit:g} s "
                                   "(an infinite loop? a loop that never reaches its end condition?)")
        finally:
            _kill(proc)  # anything it left behind in its session
        seconds = time.perf_counter() - start
        done = Path(tmp, "results.json")
        if not done.exists():
            code = proc.returncode
            how = f"was killed by {_signal_name(code)}" if code < 0 else f"exited with status {code}"
            last = _last_line(err)
            hint = " (os._exit or a crash in native code?)" if code >= 0 else ""
            return Outcome(kind="error", seconds=seconds,
                           message=f"the process running your file {how} before the check finished{hint}"
                                   + (f"; last words on stderr: {last}" if last else ""))
        results = json.loads(done.read_text(encoding="utf-8"))
        with np.load(Path(tmp, "results.npz"), allow_pickle=False) as data:
            out_arrays = {k: data[k] for k in data.files}
    return Outcome(results=results, arrays=out_arrays, seconds=seconds)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child's whole session (it may have started processes of its own), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _last_line(err: bytes | None) -> str:
    lines = [ln for ln in (err or b"").decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else ""
