"""Catch a user's own `engine.py`, `nn/`, `models/` or `viz/` hiding one of twograd's packages.

twograd's four top-level names are common words. Python looks in the current folder (or the
script's folder) first, so a user's `engine.py` there is what `from engine import EXACT`
inside `nn` finds, and the error would be an obscure `cannot import name 'EXACT'`. Each of
nn, models and viz calls `check_siblings` before it imports a sibling: the spec that `import
NAME` would use is looked up (nothing is imported) and compared with twograd's own folder.

This file is loaded by path (engine/_siblings.py beside the importing package), because
`import engine._siblings` would itself find the shadowing module. Standard library only.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SIBLINGS = ("engine", "nn", "models", "viz")


def _where(name: str) -> Path | None:
    """The file or folder `import name` uses (already imported, or found on sys.path), or None."""
    module = sys.modules.get(name)
    if module is not None:
        origin = getattr(module, "__file__", None)
        paths = list(getattr(module, "__path__", []) or [])
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        origin = spec.origin if spec.has_location else None
        paths = list(spec.submodule_search_locations or [])
    if origin:
        return Path(origin)
    return Path(paths[0]) if paths else None


def check_siblings(package: str, package_file: str) -> None:
    """Raise one ImportError naming every sibling of `package` that is not twograd's own.

    `package_file` is the importing package's `__init__.py`; twograd's siblings live in the
    folder above it. A sibling missing there (a partial install) is not checked."""
    root = Path(package_file).resolve().parent.parent
    found = []
    for name in SIBLINGS:
        ours = root / name / "__init__.py"
        if name == package or not ours.is_file():
            continue
        where = _where(name)
        if where is not None and where.resolve() != ours.resolve():
            found.append((name, where))
    if found:
        names = ", ".join(f"`{name}` is {where}" for name, where in found)
        raise ImportError(
            f"twograd's `{package}` needs its own packages {', '.join(SIBLINGS)}, but {names}, which shadows "
            f"twograd's (in {root}); rename that file or folder, or run Python from another folder"
        )
