"""The one input layer of the commands: argparse `type=` converters for every path and number a
command takes. Each turns one argument's text into a value or raises ArgumentTypeError, which
argparse reports as a one-line usage error (exit 2). Every number has a range, and its cap is
named in the flag's --help (`capped`); every path is checked for what its text alone can tell
(empty, too long a name, under a file) before any work starts.

The caps are far above any sensible use and low enough that no command runs until it is killed:
`sample --n 1e20` was accepted and ran forever; now it is refused at once, naming the cap."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

#: a seed: numpy takes any integer; this keeps it to 63 bits, as a JSON reader in any language can.
MAX_SEED = 2**63 - 1
#: steps of training (and evaluation / checkpoint intervals): the run schema's MAX_STEPS.
MAX_STEPS = 10_000_000
#: rows, widths, positions, heads, layers, top-k: beyond this no model fits the trainer anyway.
MAX_SIZE = 1_000_000
#: hidden layers of an MLP (the run schema takes 64 widths: inputs, 62 hidden, outputs).
MAX_LAYERS = 62
#: learning rates, weight decay, KL weights and clipping norms.
MAX_RATE = 1e6
#: a gradient-clipping norm (the run schema's bound too).
MAX_NORM = 1e300
#: bytes in one file name and in a whole path (NAME_MAX and PATH_MAX of Linux and macOS).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def capped(help_text: str, convert: Callable[[str], object]) -> str:
    """`help_text` with the converter's range appended ("...; 1 .. 1,000")."""
    where = getattr(convert, "range_text", "")
    return f"{help_text} [{where}]" if where else help_text


def whole_number(low: int, high: int = MAX_SIZE) -> Callable[[str], int]:
    """A converter to an int in [low, high]; "1e3" is read as 1000 (it is a whole number)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
            if not (math.isfinite(as_float) and as_float.is_integer()):
                raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
            value = int(as_float)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(
                f"must be at most {high:,}, got {text if len(text) < 40 else text[:37] + '...'}"
            )
        return value

    convert.range_text = f"{low:,} .. {high:,}"  # type: ignore[attr-defined]
    return convert


seed = whole_number(0, MAX_SEED)
steps = whole_number(1, MAX_STEPS)
interval = whole_number(0, MAX_STEPS)


def _number(text: str, low: float, what: str, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < low or (what == "positive" and value == 0):
        raise argparse.ArgumentTypeError(f"must be a {what} finite number, got {text!r}")
    if value > high:
        raise argparse.ArgumentTypeError(
            f"must be at most {high:g}, got {text if len(text) < 40 else text[:37] + '...'}"
        )
    return value


def non_negative(text: str) -> float:
    """A finite float in [0, MAX_RATE]."""
    return _number(text, 0.0, "non-negative", MAX_RATE)


def positive(text: str) -> float:
    """A finite float in (0, MAX_RATE]."""
    return _number(text, 0.0, "positive", MAX_RATE)


non_negative.range_text = f"0 .. {MAX_RATE:g}"  # type: ignore[attr-defined]
positive.range_text = f"> 0, at most {MAX_RATE:g}"  # type: ignore[attr-defined]


def fraction(text: str) -> float:
    """A float in [0, 1]."""
    return _number(text, 0.0, "non-negative", 1.0)


fraction.range_text = "0 .. 1"  # type: ignore[attr-defined]


def norm(text: str) -> float:
    """A finite float in (0, 1e300]: a clipping norm, where a huge one means "no clipping in effect"."""
    return _number(text, 0.0, "positive", MAX_NORM)


norm.range_text = f"> 0, at most {1e300:g}"  # type: ignore[attr-defined]


def temperature(low: float, high: float, *, greedy: bool) -> Callable[[str], float]:
    """A converter to a float in [low, high], or also 0 when `greedy` (sampling's argmax)."""

    def convert(text: str) -> float:
        value = _number(text, 0.0, "non-negative" if greedy else "positive", high)
        if value < low and not (greedy and value == 0.0):
            raise argparse.ArgumentTypeError(
                f"must be {'0 (greedy) or ' if greedy else ''}at least {low:g}, got {text!r}"
            )
        return value

    convert.range_text = f"{'0, or ' if greedy and low > 0 else ''}{low:g} .. {high:g}"  # type: ignore[attr-defined]
    return convert


# ---------------------------------------------------------------------------- paths
def _path(text: str, what: str) -> Path:
    """A path whose text is usable: not empty, no NUL, no name longer than a file system takes."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"needs a {what} name (an empty one would mean the current folder)")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"a {what} name cannot hold a NUL character")
    size = len(os.fsencode(text))
    if size > MAX_PATH_BYTES:
        raise argparse.ArgumentTypeError(
            f"the path is {size:,} bytes long, more than the {MAX_PATH_BYTES:,} a path may have"
        )
    for part in Path(text).parts:
        n = len(os.fsencode(part))
        if n > MAX_NAME_BYTES:
            raise argparse.ArgumentTypeError(
                f"the name {part[:24]}... is {n} bytes long, more than the {MAX_NAME_BYTES} a "
                "file or folder name may have; choose a shorter one"
            )
    return Path(text)


def _not_under_a_file(path: Path, what: str) -> Path:
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise argparse.ArgumentTypeError(
                f"{path} lies under a file ({parent}), not a folder, so no {what} can be made there"
            )
        if parent.is_dir():
            break
    return path


def folder(text: str) -> Path:
    """A folder name (to read or to write); an empty one is refused (it would silently mean the current folder)."""
    return _path(text, "folder")


def out_folder(text: str) -> Path:
    """A folder to write into: `folder`, and not under an existing file."""
    return _not_under_a_file(_path(text, "folder"), "folder")


def out_file(text: str) -> Path:
    """A file to write: a usable name, not under an existing file, not an existing folder."""
    path = _not_under_a_file(_path(text, "file"), "file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name (e.g. {path / 'graph.svg'})")
    return path


def in_file(text: str) -> Path:
    """A file to read: a usable name (whether it is a regular file of bounded size is checked when it is read)."""
    return _path(text, "file")


def widths(text: str) -> tuple[int, ...]:
    """ "16,16" -> (16, 16); "none" -> () (no hidden layer: logistic regression)."""
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated widths like 16,16 (or 'none'), got {text!r}") from None
    if any(w < 1 for w in values):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    if len(values) > MAX_LAYERS or any(w > MAX_SIZE for w in values):
        raise argparse.ArgumentTypeError(f"at most {MAX_LAYERS} widths of at most {MAX_SIZE:,} each, got {text[:40]!r}")
    return values


def assignments(text: str) -> dict[str, float]:
    """ "x=0.5,w=-1,b=2" -> {"x": 0.5, "w": -1.0, "b": 2.0} (names are identifiers, numbers finite)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, eq, number = part.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise argparse.ArgumentTypeError(
                f"takes NAME=NUMBER pairs separated by commas, like x=0.5,w=-1, got {text!r}"
            )
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
