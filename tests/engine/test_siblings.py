"""A user's folder holding its own engine.py (or models/ ...) gives one ImportError naming it
(engine/_siblings.py), not `cannot import name ... from 'engine'`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
#: a fresh interpreter importing nn takes about a second; the bound only catches a hang.
IMPORT_TIMEOUT_SECONDS = 120


def _import_from(folder: Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` with `folder` as the current folder (first on sys.path) and twograd after it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )


@pytest.mark.parametrize(
    "shadow, importing",
    [("engine.py", "nn"), ("engine.py", "viz"), ("models/__init__.py", "nn"), ("viz.py", "models.cli")],
)
def test_a_shadowing_file_is_named_in_one_import_error(tmp_path: Path, shadow: str, importing: str) -> None:
    target = tmp_path / shadow
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("EXACT = None  # a user's own module of the same name\n")
    result = _import_from(tmp_path, f"import {importing}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ") and str(target) in last, result.stderr
    assert "rename that file or folder, or run Python from another folder" in last
    assert "cannot import name" not in result.stderr


def test_a_folder_without_such_files_imports_as_usual(tmp_path: Path) -> None:
    (tmp_path / "notes.py").write_text("")
    result = _import_from(tmp_path, "import nn, models, viz; print('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
