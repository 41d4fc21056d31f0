"""Input validation shared by the nn pieces, so every bad-input message reads the same way.

Every message starts with the piece's name and names the argument, e.g.

    linear: x has 5 features but W expects 4: x (3, 5), W (4, 2)
    softmax: x has non-finite values (nan at index (0, 2))

The numpy checks are O(1) shape tests plus one `np.isfinite(a).all()` pass per input;
only when that pass fails is the offending index looked up. The loops-form checks do the
same for nested lists: a bulk pass (one level of lists at a time, then the leaves of all
rows at once, with C-level `map`/`set`/`sum`) that can only say "all fine", and only when
it cannot say so the leaf-by-leaf walk that finds and names a bad entry. So a bad
input gets exactly the walk's message, and a good one costs a few C loops instead of a
Python step per scalar (a scalar GPT step validates about 14,000 leaves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from engine import InputError, Value
from nn._nested import shape_of


def shape_text(shape: Sequence[int]) -> str:
    """A shape as PyTorch and numpy print it: (3, 5), (4,), ()."""
    shape = tuple(int(n) for n in shape)
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def fail(piece: str, message: str) -> InputError:
    """The error every check raises: "<piece>: <message>" (an InputError, so also a ValueError)."""
    return InputError(f"{piece}: {message}")


# ------------------------------------------------------------------------------ numpy inputs
def as_float_array(piece: str, name: str, a: Any) -> np.ndarray:
    """`a` as a float64 array (no copy if it already is one, and a float32 array stays float32:
    one code path runs both, float64 for checking and float32 for speed); ValueError if it is
    not numeric."""
    if type(a) is np.ndarray and (a.dtype == np.float64 or a.dtype == np.float32):
        return a
    try:
        out = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise fail(piece, f"{name} must be an array of real numbers, got {type(a).__name__}: {err}") from None
    return out


def real_array(piece: str, name: str, a: Any) -> np.ndarray:
    """`a` as an array of real numbers with its own dtype kept (float32 stays float32, unlike
    `as_float_array`); ValueError naming the argument for ragged lists or non-numbers
    (strings, Values)."""
    try:
        arr = np.asarray(a)
    except ValueError as err:  # ragged nested lists
        raise fail(piece, f"{name} must be an array of real numbers, got {type(a).__name__}: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise fail(piece, f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The common floating dtype of the arrays: float32 stays float32, integers become float64."""
    dt = np.result_type(*arrays)
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


def positive_int(piece: str, name: str, n: Any) -> int:
    """`n` as an int; ValueError unless it is a positive integer (bools are refused)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)) or n < 1:
        raise fail(piece, f"{name} must be a positive integer, got {n!r}")
    return int(n)


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
        raise fail(
            piece, f"{name} needs at least one entry along its last axis ({axis_name}), got shape {shape_text(a.shape)}"
        )


def dout_array(piece: str, dout: Any, shape: Sequence[int], dtype: np.dtype | None = None) -> np.ndarray:
    """The upstream gradient given to a backward: real numbers, the output's shape, all finite.

    A NaN or inf in dout would spread silently into every gradient it reaches, so it is
    refused here (one isfinite pass, as for the inputs), naming the piece and "dout".
    With `dtype` (a piece that keeps float32 as float32), dout is cast to it.
    """
    if dtype is not None:
        dout = real_array(piece, "dout", dout).astype(dtype, copy=False)
    elif type(dout) is not np.ndarray or dout.dtype.kind not in "fiu":
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


def kept_rows(
    piece: str, logits_shape: Sequence[int], targets: Any, ignore_index: int, layouts: Sequence[int] = (3,)
) -> tuple[np.ndarray, np.ndarray]:
    """(keep, kept): which rows of logits (..., C) take a loss, and their class indices.

    `logits_shape` has as many axes as one of `layouts` ((B, C) is 2, (B, T, V) is 3), none
    empty; `targets` are integers of shape logits_shape[:-1], each a class in [0, C) or
    `ignore_index` (padding, prompts). keep is (R,) over the R = prod(shape[:-1]) rows;
    kept (K,) the targets of the K kept rows. At least one row must be kept.
    """
    shape = tuple(logits_shape)
    if len(shape) not in tuple(layouts) or 0 in shape:
        want = " or ".join({2: "(B, C)", 3: "(B, T, V)"}.get(n, f"{n}-d") for n in layouts)
        raise fail(piece, f"logits must have shape {want} with no empty axis, got {shape_text(shape)}")
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise fail(piece, f"targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != shape[:-1]:
        raise fail(
            piece,
            f"targets must have shape {shape_text(shape[:-1])} to match logits {shape_text(shape)}, "
            f"got {shape_text(t.shape)}",
        )
    flat = t.reshape(-1)
    keep = flat != ignore_index
    if not keep.any():
        raise fail(piece, f"every target is the ignore index {ignore_index}: there is no position to take a loss at")
    return keep, class_targets(piece, flat[keep], int(keep.sum()), shape[-1], (int(keep.sum()), shape[-1]))


# ------------------------------------------------------------------------------ attention inputs
def check_qkv(piece: str, q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> None:
    """Shapes of attention's q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv): same leading axes,
    q and k of one width d, k and v of one length Tk, no empty axis."""
    q_shape, k_shape, v_shape = tuple(q_shape), tuple(k_shape), tuple(v_shape)
    for name, s in (("q", q_shape), ("k", k_shape), ("v", v_shape)):
        if len(s) < 2:
            raise fail(piece, f"{name} must have shape (..., T, d) with at least 2 axes, got {s}")
        if 0 in s:
            raise fail(piece, f"{name} has an empty axis, shape {s}")
    if q_shape[:-2] != k_shape[:-2] or k_shape[:-2] != v_shape[:-2]:
        raise fail(piece, f"q, k, v must share their leading axes, got q {q_shape}, k {k_shape}, v {v_shape}")
    if q_shape[-1] != k_shape[-1]:
        raise fail(piece, f"q has shape {q_shape} and k has shape {k_shape}: their last axes (d) must agree")
    if k_shape[-2] != v_shape[-2]:
        raise fail(piece, f"k has shape {k_shape} and v has shape {v_shape}: their key axes (Tk) must agree")


def check_mask(piece: str, mask: Any, scores_shape: Sequence[int]) -> np.ndarray | None:
    """Validate a boolean attention mask against the scores' shape (..., Tq, Tk); return it as an array.

    True means "may attend". The mask must broadcast to the scores without enlarging them,
    and every query row must keep at least one key (a softmax over no keys is undefined).
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise fail(
            piece,
            f"mask must be boolean (True = may attend), got dtype {m.dtype}; "
            f"additive float masks are not used here, masking is by exclusion",
        )
    try:
        ok = np.broadcast_shapes(m.shape, tuple(scores_shape)) == tuple(scores_shape)
    except ValueError:
        ok = False
    if not ok:
        raise fail(
            piece,
            f"mask has shape {m.shape}, which does not broadcast to the scores' shape {tuple(scores_shape)} "
            f"(..., Tq, Tk); for single-head (B, Tq, Tk) scores use padding_mask(..., heads=False)",
        )
    rows = m.any(axis=-1)  # a fully masked row of the broadcast mask is one of `m`
    if not rows.all():
        bad = tuple(int(i) for i in np.argwhere(~np.asarray(rows))[0]) if rows.ndim else ()
        raise fail(
            piece,
            f"the mask leaves query row {list(bad)} (mask index, leading axes then query position) "
            f"with no key it may attend to; a softmax over no keys is undefined",
        )
    return m


def attention_arrays(
    piece: str, q: Any, k: Any, v: Any, mask: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """q, k, v as arrays of their common float dtype (float32 stays float32), shapes and
    finiteness checked, and the mask checked against the scores (..., Tq, Tk)."""
    q, k, v = (real_array(piece, n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    dt = float_dtype(q, k, v)
    q, k, v = (np.asarray(a, dtype=dt) for a in (q, k, v))
    check_qkv(piece, q.shape, k.shape, v.shape)
    for name, a in (("q", q), ("k", k), ("v", v)):
        check_finite(piece, name, a)
    return q, k, v, check_mask(piece, mask, q.shape[:-1] + (k.shape[-2],))


# ------------------------------------------------------------------------------ loops inputs
def _leaf_number(x: Any) -> float | None:
    """The number behind a leaf (Value, int, float, numpy scalar), or None if it is not one."""
    if type(x) is Value:
        return x.data
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        return float(x)
    return None


#: what the bulk pass accepts without a second look: lists of these, leaves of these types.
_SEQUENCES = frozenset((list, tuple))
_PLAIN_NUMBERS = frozenset((float, int))
_VALUE_ONLY = frozenset((Value,))
_data = attrgetter("data")


def _surely_valid(x: Any, shape: tuple[int, ...]) -> bool:
    """True only if `x` is rectangular of `shape` with finite leaves, all floats/ints or all Values.

    False means "not sure", not "bad": mixed rows, numpy scalars, or finite numbers whose sum
    overflows fall through to the exact walk, which then accepts them or names the problem.
    Finiteness of all leaves at once: a sum of finite numbers is finite unless it overflows,
    and any inf or nan among them makes the sum inf or nan.
    """
    level = [x]
    try:
        for n in shape:  # one level of lists at a time: all sequences, all of length n
            if not set(map(type, level)) <= _SEQUENCES or set(map(len, level)) - {n}:
                return False
            level = list(chain.from_iterable(level))
        types = set(map(type, level))  # the leaves
        if types <= _PLAIN_NUMBERS:
            return math.isfinite(sum(level))
        if types == _VALUE_ONLY:
            return math.isfinite(sum(map(_data, level)))
    except (TypeError, OverflowError):  # e.g. a Value whose .data is not a number, a huge int
        return False
    return False


def nested_input(
    piece: str, name: str, x: Any, ndims: Sequence[int] | None = None, layout: str = ""
) -> tuple[Any, tuple[int, ...]]:
    """Validate a loops-form input: rectangular nested lists of finite numbers or Values.

    A numpy array is accepted and turned into nested lists. Returns (x, shape).
    """
    if isinstance(x, np.ndarray):
        x = x.tolist()
    shape = shape_of(x)  # read along the first entries; every list is checked against it below
    if ndims is not None and len(shape) not in ndims:
        want = layout or " or ".join(f"{d}-d" for d in ndims)
        raise fail(piece, f"{name} must have shape {want}, got shape {shape_text(shape)}")
    if not _surely_valid(x, shape):
        _walk_leaves(piece, name, x, shape)
    return x, shape


def _walk_leaves(piece: str, name: str, x: Any, shape: tuple[int, ...]) -> None:
    """The exact check, entry by entry: raise naming a ragged list, a non-number or a non-finite leaf and its index."""
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


def named_array_problems(
    expected: dict[str, np.ndarray], given: dict[str, Any]
) -> tuple[list[str], dict[str, np.ndarray]]:
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
