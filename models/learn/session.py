"""One `twograd learn check` in a workspace: grade the learner's file, record the result in
progress.json, and paint a wrong gradient on twograd's graph when asked (the command only prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.atomic import sha256_file
from engine.errors import InputError
from models.learn import draw, grade, sandbox, workspace


def check_in_workspace(
    ex: Any,
    directory: str | Path,
    *,
    seed: int = 0,
    random_seed: int | None = None,
    time_limit: float | None = None,
    html: str | Path | None = None,
) -> tuple[grade.CheckResult, tuple[Path, int, int] | None]:
    """`twograd learn check`: grade DIR/NAME.py, record the result in progress.json (with the sha256 of
    the bytes that were checked), and with `html` paint a wrong gradient on twograd's graph.

    Returns (the result, (the page, entries that disagree, entries compared) or None when nothing was drawn).
    """
    directory = Path(directory)
    path = workspace.exercise_file(directory, ex.name)
    if not path.is_file():
        raise InputError(
            f"there is no {path}: start it with `twograd learn start {ex.name}`"
            + (f" --dir {directory}" if directory != workspace.DEFAULT_DIR else "")
        )
    digest = sha256_file(path)  # the bytes that were checked, not whatever is there when the check ends
    result = grade.check(
        ex, path, seed=seed, random_seed=random_seed, time_limit=time_limit or sandbox.DEFAULT_TIME_LIMIT
    )
    workspace.record(
        directory, ex.name, result.passed, digest, result.findings[0].to_dict() if result.findings else None
    )
    drew = None
    if html is not None:
        finding = draw.drawable(result.findings)
        drew = None if finding is None else draw.draw(finding, html)
    return result, drew
