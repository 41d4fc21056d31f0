"""The learner's workspace: DIR/NAME.py, DIR/test_NAME.py and DIR/progress.json (never a hidden global folder).

progress.json (written atomically by `twograd learn check`; see LEARN_CONTRACT):

    {"version": 1, "exercises": {"linear": {"status": "passed" | "failing", "sha256": "<hex of linear.py>",
                                            "checked_at": "<ISO 8601 UTC>"}}}

A file's status: "not started" (no file), "started" (a file never checked, or edited since its
last check), "failing", "passed". A piece counts as the learner's own (for `train --learner`)
only when it passed AND the file's bytes still have the recorded sha256.

`load_learner_module(dir, name)` is the one place that imports a learner's file into this
process: by path, under a private module name (never via sys.path), and only after it passed.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from engine import InputError, RunError
from engine.atomic import atomic_write, sha256_file

DEFAULT_DIR = Path("twograd-learn")
PROGRESS = "progress.json"
VERSION = 1
STATUSES = ("not started", "started", "failing", "passed")


def exercise_file(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.py"


def test_file(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"test_{name}.py"


def read_progress(directory: str | Path) -> dict[str, Any]:
    """The progress file's exercises (name -> record); {} when there is none yet."""
    path = Path(directory) / PROGRESS
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(
            f"{path} is not a progress file of twograd learn ({err}); move it away and check again"
        ) from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("exercises"), dict):
        raise InputError(
            f"{path} is not a progress file of twograd learn (version {VERSION}); move it away and check again"
        )
    return data["exercises"]


def record(
    directory: str | Path, name: str, passed: bool, sha256: str, diagnosis: dict[str, Any] | None = None
) -> None:
    """Write the result of one check into progress.json, atomically (the other exercises' records are kept);
    `diagnosis` is a failing check's headline finding ({"kind", "input", "case", "message"}), for `learn hint`."""
    exercises = read_progress(directory)
    exercises[name] = {
        "status": "passed" if passed else "failing",
        "sha256": sha256,
        "checked_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if diagnosis and not passed:
        exercises[name]["diagnosis"] = {k: diagnosis.get(k, "") for k in ("kind", "input", "case", "message")}
    text = json.dumps({"version": VERSION, "exercises": dict(sorted(exercises.items()))}, indent=2) + "\n"
    atomic_write(Path(directory) / PROGRESS, text.encode("utf-8"))


def last_diagnosis(directory: str | Path, name: str) -> dict[str, Any] | None:
    """The headline finding of the last check of DIR/NAME.py when it failed and the file is unchanged since; else None."""
    path = exercise_file(directory, name)
    if not path.is_file():
        return None
    rec = read_progress(directory).get(name) or {}
    if (
        rec.get("status") != "failing"
        or rec.get("sha256") != sha256_file(path)
        or not isinstance(rec.get("diagnosis"), dict)
    ):
        return None
    return rec["diagnosis"]


@dataclass
class Status:
    """One exercise's progress: `status` is one of STATUSES; `edited` when a checked file changed since."""

    status: str
    edited: bool = False
    last_check: str = ""  # "passed" / "failing" as recorded, "" if never checked
    checked_at: str = ""

    def text(self) -> str:
        if self.edited:
            return f"started (edited since it {self.last_check}: check again)"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "edited_since_check": self.edited,
            "last_check": self.last_check or None,
            "checked_at": self.checked_at or None,
        }


def status(directory: str | Path, name: str, progress: dict[str, Any] | None = None) -> Status:
    path = exercise_file(directory, name)
    if not path.exists():
        return Status("not started")
    rec = (progress if progress is not None else read_progress(directory)).get(name)
    if not rec:
        return Status("started")
    if rec.get("sha256") != sha256_file(path):
        return Status("started", edited=True, last_check=rec.get("status", ""), checked_at=rec.get("checked_at", ""))
    return Status(rec.get("status", "started"), last_check=rec.get("status", ""), checked_at=rec.get("checked_at", ""))


def start(directory: str | Path, name: str) -> list[Path]:
    """Write DIR/NAME.py and DIR/test_NAME.py for exercise `name`; refuse (InputError) to overwrite either."""
    from models.learn import catalog, template

    ex = catalog.get(name)
    directory = Path(directory)
    targets = {
        exercise_file(directory, name): lambda: template.starting_file(ex, str(directory)),
        test_file(directory, name): lambda: template.test_file(ex),
    }
    existing = [p for p in targets if p.exists()]
    if existing:
        raise InputError(
            f"{existing[0]} already exists: it is yours, so learn start leaves it as it is (move it away to start over)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in targets.items():
            atomic_write(path, text().encode("utf-8"))
    except OSError as err:  # a folder that cannot be made or written: one line naming it, not errno's words alone
        raise RunError(f"cannot write the workspace folder {directory}: {err.strerror or err}") from None
    return list(targets)


def is_workspace(directory: str | Path) -> bool:
    """A folder `twograd learn` made: it holds progress.json (a check ran there) or a test file `learn start` wrote."""
    from models.learn import catalog

    directory = Path(directory)
    return (directory / PROGRESS).is_file() or any(test_file(directory, n).is_file() for n in catalog.names())


def check_command(name: str, directory: str | Path) -> str:
    """The command that (re)checks exercise `name` in `directory`."""
    return f"twograd learn check {name} --dir {directory}"


def exercise_status(directory: str | Path, name: str, progress: dict[str, Any] | None = None) -> str:
    """One word for `train --learner`: "not started", "started", "failing", "passed", or "changed"
    (a file edited since its last check)."""
    st = status(directory, name, progress)
    return "changed" if st.edited else st.status


def load_learner_module(directory: str | Path, name: str) -> ModuleType:
    """Import the learner's DIR/NAME.py in this process; InputError unless it passed its check and is unchanged since.

    By path and under a private module name (`twograd_learner_NAME`), never via sys.path, so it
    can neither shadow nor be shadowed by another module.
    """
    path = exercise_file(directory, name)
    st = status(directory, name)
    if st.status != "passed":
        why = {
            "not started": f"there is no {path}",
            "failing": "it failed its last check",
            "started": ("it was edited since its last check" if st.edited else "it was never checked"),
        }[st.status]
        raise InputError(f"your {name} is not used: {why}; run `{check_command(name, directory)}`")
    spec = importlib.util.spec_from_file_location(f"twograd_learner_{name}", path)
    if spec is None or spec.loader is None:
        raise RunError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # their file ran here: anything it raises is one line, not our traceback
        raise InputError(
            f"your {name} failed while being imported ({type(err).__name__}: {err}); "
            f"run `{check_command(name, directory)}`"
        ) from None
    return module
