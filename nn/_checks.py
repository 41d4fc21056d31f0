"""Input validation shared by the nn pieces, so every bad-input message reads the same way.

Every message starts with the piece's name and names the argument, e.g.

    linear: x has 5 features but W expects 4: x (3, 5), W (4, 2)
    softmax: x has non-finite values (nan at index (0, 2))

The numpy checks are O(1) shape tests plus one `np.isfinite(a).all()` pass per input;
only when that pass fails is the offending index looked up. The loops-form checks walk the
nested lists once (the loops form touches every scalar anyway).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from engine import InputError, Value


def shape_text(shape: Sequence[int]) -> str:
    """A shape as PyTorch and numpy print it: (3, 5), (4,), ()."""
    shape = tuple(int(n) for n in shape)
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def fail(piece: str, message: str) -> InputError:
    """The error every check raises: "<piece>: <message>" (an InputError, so also a ValueError)."""
    return InputError(f"{piece}: {message}")


# ------------------------------------------------------------------------------ numpy inputs
def as_float_array(piece: str, name: str, a: Any) -> np.ndarray:
    """`a` as a float64 array (no copy if it already is one); ValueError if it is not numeric."""
    if type(a) is np.ndarray and a.dtype == np.float64:
        return a
    try:
        out = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise fail(piece, f"{name} must be an array of real numbers, got {type(a).__name__}: {err}") from None
    return out


def check_finite(piece: str, name: str, a: np.ndarray) -> None:
    """One isfinite pass; on failure, name the first bad entry and its index."""
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        value = a[tuple(bad)]
        where = f" at index {tuple(int(i) for i in bad)}" if a.ndim else ""
        raise fail(piece, f"{name} has non-finite values ({value}{where})")


def array_input(piece: str, name: str, a: Any, ndims: Sequence[int] | None = None, layout: str = "") -> np.ndarray:
    """Convert, check the number of dimensions (if `ndims` is given) and finiteness.

    `layout` describes the expected shape for the message, e.g. "(B, n_in) or (B, T, n_in)".
    """
    a = as_float_array(piece, name, a)
    if ndims is not None and a.ndim not in ndims:
        want = layout or " or ".join(f"{d}-d" for d in ndims)
        raise fail(piece, f"{name} must have shape {want}, got shape {shape_text(a.shape)}")
    check_finite(piece, name, a)
    return a


def same_shape(piece: str, name_a: str, shape_a: Sequence[int], name_b: str, shape_b: Sequence[int]) -> None:
    """Two arguments that must match elementwise (no broadcasting)."""
    if tuple(shape_a) != tuple(shape_b):
        raise fail(
            piece,
            f"{name_a} and {name_b} must have the same shape: {name_a} {shape_text(shape_a)}, {name_b} {shape_text(shape_b)}",
        )


def nonempty_last_axis(piece: str, name: str, a: np.ndarray, axis_name: str) -> None:
    """Reductions over the last axis need at least one entry there."""
    if a.ndim < 1 or a.shape[-1] == 0:
        raise fail(piece, f"{name} needs at least one entry along its last axis ({axis_name}), got shape {shape_text(a.shape)}")


def dout_array(piece: str, dout: Any, shape: Sequence[int]) -> np.ndarray:
    """The upstream gradient given to a backward: real numbers, the output's shape, all finite.

    A NaN or inf in dout would spread silently into every gradient it reaches, so it is
    refused here (one isfinite pass, as for the inputs), naming the piece and "dout".
    """
    if type(dout) is not np.ndarray or dout.dtype.kind not in "fiu":
        dout = as_float_array(piece, "dout", dout)
    if dout.shape != tuple(shape):
        raise fail(piece, f"dout has shape {shape_text(dout.shape)} but the output has shape {shape_text(shape)}")
    check_finite(piece, "dout", dout)
    return dout


def class_targets(piece: str, targets: Any, n_rows: int, n_classes: int, logits_shape: Sequence[int]) -> np.ndarray:
    """Integer class indices, one per row of the logits, each in [0, n_classes)."""
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":  # booleans and floats are refused: a class index is an integer
        raise fail(piece, f"targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != (n_rows,):
        raise fail(
            piece,
            f"targets has shape {shape_text(t.shape)} but logits has {n_rows} rows: "
            f"logits {shape_text(logits_shape)}, targets {shape_text(t.shape)}",
        )
    if n_rows and (t.min() < 0 or t.max() >= n_classes):
        i = int(np.argmax((t < 0) | (t >= n_classes)))
        raise fail(piece, f"targets must be class indices in [0, {n_classes}), got {int(t[i])} at index {i}")
    return t


# ------------------------------------------------------------------------------ loops inputs
def _leaf_number(x: Any) -> float | None:
    """The number behind a leaf (Value, int, float, numpy scalar), or None if it is not one."""
    if type(x) is Value:
        return x.data
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        return float(x)
    return None


def nested_input(
    piece: str, name: str, x: Any, ndims: Sequence[int] | None = None, layout: str = ""
) -> tuple[Any, tuple[int, ...]]:
    """Validate a loops-form input: rectangular nested lists of finite numbers or Values.

    A numpy array is accepted and turned into nested lists. Returns (x, shape).
    """
    if isinstance(x, np.ndarray):
        x = x.tolist()
    # The shape is read along the first entries, then every list is checked against it.
    shape_list: list[int] = []
    probe = x
    while isinstance(probe, (list, tuple)):
        shape_list.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    shape = tuple(shape_list)
    if ndims is not None and len(shape) not in ndims:
        want = layout or " or ".join(f"{d}-d" for d in ndims)
        raise fail(piece, f"{name} must have shape {want}, got shape {shape_text(shape)}")
    stack: list[tuple[Any, tuple[int, ...]]] = [(x, ())]
    while stack:
        node, index = stack.pop()
        depth = len(index)
        if depth < len(shape):
            if not isinstance(node, (list, tuple)) or len(node) != shape[depth]:
                got = f"length {len(node)}" if isinstance(node, (list, tuple)) else type(node).__name__
                raise fail(piece, f"{name} is ragged: expected shape {shape_text(shape)}, but entry {index} has {got}")
            stack.extend((child, index + (i,)) for i, child in enumerate(node))
            continue
        number = _leaf_number(node)
        if number is None:
            raise fail(piece, f"{name} must hold numbers or Values, got {type(node).__name__} at index {index}")
        if not math.isfinite(number):
            raise fail(piece, f"{name} has non-finite values ({number} at index {index})")
    return x, shape



def named_array_problems(expected: dict[str, np.ndarray], given: dict[str, Any]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Compare named arrays (a state dict, optimizer buffers) with the expected ones.

    Returns (problems, converted): every missing name, every unexpected name and every array
    of the wrong shape or of a non-real dtype, each named, so that one error can list them
    all; and float64 copies of the arrays that fit, for the caller to apply only when there
    are no problems.
    """
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    misshaped = []
    converted: dict[str, np.ndarray] = {}
    for n, want in expected.items():
        if n not in given:
            continue
        a = np.asarray(given[n])
        if a.shape != want.shape:
            misshaped.append(f"{n} (expected {want.shape}, got {a.shape})")
        elif not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            misshaped.append(f"{n} (expected a real array, got dtype {a.dtype})")
        else:
            converted[n] = a.astype(np.float64)
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    if misshaped:
        problems.append(f"wrong shape or type: {misshaped}")
    return problems, converted
