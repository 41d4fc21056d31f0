"""argparse `type=` converters shared by the commands: each turns one argument's text into a
value or raises ArgumentTypeError, which argparse reports as a one-line usage error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def whole_number(low: int) -> Callable[[str], int]:
    """A converter to an int >= `low`."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return convert


seed = whole_number(0)


def _number(text: str, low: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < low or (what == "positive" and value == 0):
        raise argparse.ArgumentTypeError(f"must be a {what} finite number, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite float >= 0."""
    return _number(text, 0.0, "non-negative")


def positive(text: str) -> float:
    """A finite float > 0."""
    return _number(text, 0.0, "positive")


def folder(text: str) -> Path:
    """A folder name; an empty one is refused (it would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a folder name (an empty one would mean the current folder)")
    return Path(text)


def widths(text: str) -> tuple[int, ...]:
    """"16,16" -> (16, 16); "none" -> () (no hidden layer: logistic regression)."""
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated widths like 16,16 (or 'none'), got {text!r}") from None
    if any(w < 1 for w in values):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return values


def assignments(text: str) -> dict[str, float]:
    """"x=0.5,w=-1,b=2" -> {"x": 0.5, "w": -1.0, "b": 2.0} (names are identifiers, numbers finite)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, eq, number = part.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise argparse.ArgumentTypeError(f"takes NAME=NUMBER pairs separated by commas, like x=0.5,w=-1, got {text!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"{name!r} is given twice in {text!r}")
        try:
            value = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {number.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name}: must be a finite number, got {number.strip()!r}")
        out[name] = value
    return out
