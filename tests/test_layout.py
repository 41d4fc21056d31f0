"""The house: `models/` is a few entry modules and one room (subpackage) per concern, each
saying in its `__init__` docstring what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: more than this many modules at models/'s top level and a newcomer cannot tell the rooms apart again.
MAX_TOP_LEVEL_MODULES = 6


def test_models_top_level_stays_small() -> None:
    top = sorted(p.name for p in (ROOT / "models").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_room_says_what_it_holds() -> None:
    rooms = [p for p in sorted((ROOT / "models").iterdir()) if p.is_dir() and (p / "__init__.py").exists()]
    assert {"zoo", "training", "data", "experiments", "tour_stages", "learn", "cli"} <= {r.name for r in rooms}
    for room in rooms:
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 5, (
            f"models/{room.name}/__init__.py needs a docstring saying what the room holds"
        )
    stray = [
        p
        for p in (ROOT / "models").iterdir()
        if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists()
    ]
    assert not stray, f"folders in models/ that are not packages: {stray}"
