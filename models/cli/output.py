"""What every command prints for `--json`: one strict JSON object on one line of stdout.

Strict means `json.dumps(..., allow_nan=False)` never sees a NaN or an infinity: those become
null first (a gradient that went NaN is still reported, and any JSON reader can read it).
"""

from __future__ import annotations

import json
from typing import Any

from models.training.runs import finite_or_none


def dumps_strict(obj: dict[str, Any]) -> str:
    """`obj` as strict JSON text (non-finite floats as null)."""
    if not isinstance(obj, dict):
        raise TypeError(f"--json prints one object, got {type(obj).__name__}")
    return json.dumps(finite_or_none(obj), allow_nan=False)


def print_json(obj: dict[str, Any]) -> None:
    """Print `obj` as one line of strict JSON on stdout."""
    print(dumps_strict(obj), flush=True)
