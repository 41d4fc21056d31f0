"""The learner's workspace: their exercise files, `progress.json`, and loading a file that passed.

    DIR/NAME.py          the learner's exercise (default DIR ./twograd-learn/)
    DIR/progress.json    {"version": 1, "exercises": {NAME: {"status": "passed" | "failing",
                                                             "sha256": "<hex of DIR/NAME.py at that check>",
                                                             "checked_at": "<ISO 8601 UTC>"}}}

`twograd learn check` writes progress.json (atomically); this module only reads it. A piece
counts as the learner's own only when its status is "passed" AND the file's bytes still hash to
the recorded sha256: a file edited since it passed must be checked again.

`load_learner_module(dir, name)` is the one place that imports a learner's file in-process: by
path, under a private module name (never through sys.path, so their `linear.py` cannot shadow
anything), and only for a piece that passed. Every failure is one InputError line naming the
piece and the command that fixes it.

(Written by the learn-zoo engineer from the shared contract, for `twograd train --learner`;
learn-core owns this file and adopts or replaces it.)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.atomic import sha256_file
from engine.errors import InputError

PROGRESS = "progress.json"
PROGRESS_VERSION = 1
DEFAULT_DIR = Path("twograd-learn")
#: the statuses `exercise_status` returns
STATUSES = ("not started", "started", "failing", "passed", "changed")


def check_command(name: str, folder: str | Path) -> str:
    """The command that (re)checks exercise `name` in `folder`."""
    return f"twograd learn check {name} --dir {folder}"


def read_progress(folder: str | Path) -> dict[str, dict[str, Any]]:
    """NAME -> its record in DIR/progress.json ({} when there is no such file); InputError when it is not readable."""
    path = Path(folder) / PROGRESS
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable progress file ({err}); `twograd learn check` writes it again") from None
    exercises = data.get("exercises") if isinstance(data, dict) else None
    if not isinstance(exercises, dict) or data.get("version") != PROGRESS_VERSION:
        raise InputError(f"{path}: not a version-{PROGRESS_VERSION} twograd progress file; `twograd learn check` writes it again")
    return {name: record for name, record in exercises.items() if isinstance(record, dict)}


def exercise_status(folder: str | Path, name: str, progress: dict[str, dict[str, Any]] | None = None) -> str:
    """One of STATUSES: no file; a file never checked; failing; passed (and unchanged since); changed since its check."""
    path = Path(folder) / f"{name}.py"
    if not path.is_file():
        return "not started"
    record = (read_progress(folder) if progress is None else progress).get(name)
    if record is None or record.get("status") not in ("passed", "failing"):
        return "started"
    if record.get("sha256") != sha256_file(path):
        return "changed"
    return str(record["status"])


def load_learner_module(folder: str | Path, name: str) -> ModuleType:
    """The learner's DIR/NAME.py as a module, if it passed its check and is unchanged since.

    InputError (one line, naming the piece and `twograd learn check NAME --dir DIR`) when the file
    is missing, never checked, failing, edited since it passed, or raises while it is imported.
    """
    folder = Path(folder)
    status = exercise_status(folder, name)
    if status != "passed":
        why = {"not started": f"there is no {folder / (name + '.py')}",
               "started": "it has not been checked",
               "failing": "it failed its check",
               "changed": "it was edited after it passed"}[status]
        raise InputError(f"your {name} cannot be used: {why}; run {check_command(name, folder)}")
    path = folder / f"{name}.py"
    module_name = f"_twograd_learner_{name}_{sha256_file(path)[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"your {name}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered under its private name while it runs: dataclasses and typing look their module up there.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as err:  # their code: SyntaxError, ImportError, SystemExit, anything
        sys.modules.pop(module_name, None)
        if isinstance(err, KeyboardInterrupt):
            raise
        raise InputError(f"your {name} failed while being imported ({type(err).__name__}: {err}); "
                         f"run {check_command(name, folder)}") from None
    return module
