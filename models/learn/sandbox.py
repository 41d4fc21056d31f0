"""Running the learner's file in a child process, with a wall-clock limit and a memory limit.

The parent writes the tasks (spec.json) and their arrays (inputs.npz) into a fresh temporary
folder, starts `sys.executable runner.py FOLDER` in a new session (so the whole group can be
killed), and reads back results.json and results.npz (allow_pickle=False). Nothing is pickled
either way. The child sets its own limits (resource.setrlimit: RLIMIT_AS for memory, RLIMIT_CPU
as a backstop), so a 10 GB allocation is a MemoryError inside it, and the parent's wall-clock
limit kills an infinite loop, a `time.sleep` or a child that never returns.

Whatever happens in the child, the parent gets one `Outcome`: the results, or a kind
(`timeout`, `error`) and one line saying what happened (exit status, signal, the last line the
child printed). The child's output goes to a file it may not grow past OUTPUT_LIMIT, never a pipe.
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


@dataclass(frozen=True)
class Job:
    """One learner file and what to run on it."""

    path: Path
    exercise: str
    tasks: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
    required: list[str] = field(default_factory=list)


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
    return run_jobs(
        [Job(Path(path), exercise, tasks, arrays, list(required or []))],
        time_limit=time_limit,
        memory_limit=memory_limit,
    )[0]


def run_jobs(
    jobs: list[Job], *, time_limit: float = DEFAULT_TIME_LIMIT, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> list[Outcome]:
    """Run several jobs in ONE child (saving a start-up per file); the limits are for the whole batch, and
    when the child does not finish, every job gets that same one-line outcome (the caller may retry them alone)."""
    import time

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twograd-learn-") as tmp:
        spec = {
            "root": str(ROOT),
            "memory_bytes": int(memory_limit),
            "cpu_seconds": int(time_limit) + 2,
            "file_bytes": OUTPUT_LIMIT,
            "jobs": [
                {
                    "exercise": j.exercise,
                    "module_path": str(Path(j.path).resolve()),
                    "workspace": str(Path(j.path).resolve().parent),
                    "required": list(j.required),
                    "tasks": j.tasks,
                    "inputs": f"inputs_{i}.npz",
                }
                for i, j in enumerate(jobs)
            ],
        }
        Path(tmp, "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        for i, j in enumerate(jobs):
            # (typed Any: numpy 2.x stubs would match a key to its allow_pickle flag; the keys are input names)
            np.savez(Path(tmp, f"inputs_{i}.npz"), **cast("dict[str, Any]", j.arrays))
        env = dict(os.environ)
        # one BLAS thread: the cases are tiny, the machine is shared, and a thread pool reserves address space
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing of ours written into the learner's folder
        env.pop("PYTHONPATH", None)  # the runner puts twograd's root first itself
        # their prints go to a file, not a pipe: a file that prints in a loop must not fill our memory
        # (the child's RLIMIT_FSIZE caps it; only its last line is ever read)
        output = open(Path(tmp, "output.txt"), "wb")
        proc = subprocess.Popen(
            [sys.executable, "-u", str(RUNNER), tmp],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=str(Path(jobs[0].path).resolve().parent),
            env=env,
            start_new_session=True,
        )
        output.close()
        try:
            proc.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            _kill(proc)
            failed = Outcome(
                kind="timeout",
                seconds=time.perf_counter() - start,
                message=f"your file did not finish within the time limit of {time_limit:g} s "
                "(an infinite loop? a loop that never reaches its end condition?)",
            )
            return [failed for _ in jobs]
        finally:
            _kill(proc)  # anything it left behind in its session
        seconds = time.perf_counter() - start
        done = Path(tmp, "results.json")
        if not done.exists():
            code = proc.returncode
            how = f"was killed by {_signal_name(code)}" if code < 0 else f"exited with status {code}"
            last = _last_line(Path(tmp, "output.txt"))
            hint = " (os._exit or a crash in native code?)" if code >= 0 else ""
            failed = Outcome(
                kind="error",
                seconds=seconds,
                message=f"the process running your file {how} before the check finished{hint}"
                + (f"; the last line it printed: {last}" if last else ""),
            )
            return [failed for _ in jobs]
        results = json.loads(done.read_text(encoding="utf-8"))
        with np.load(Path(tmp, "results.npz"), allow_pickle=False) as data:
            out_arrays = {k: data[k] for k in data.files}
    return [Outcome(results=r, arrays=out_arrays, seconds=seconds / len(jobs)) for r in results["jobs"]]


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


#: bytes of the child's output read back for its last line (the file itself is capped by the child's RLIMIT_FSIZE)
TAIL_BYTES = 4096
#: the most the child may write into any one file (its output, its results): a printing loop stops there
OUTPUT_LIMIT = 64 * 1024**2


def _last_line(path: Path) -> str:
    """The last non-empty line the child printed (stdout and stderr), from the end of its output file."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - TAIL_BYTES))
        lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else ""
