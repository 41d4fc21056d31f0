"""The fixed list of mistake kinds, and how a wrong array is told apart from the right one.

A diagnosis never reads the learner's code: it compares their result `y` with the reference
`r` (twograd's own function on the same input) and with the reference's known variants:

    zeros          y = 0 where r is not
    overflow       y has inf / nan where r is finite (e^1000 without the max shift, ...)
    shape          y has another shape than r (and is not one of the cases below)
    transposed     y^T = r
    axis           y summed (or normalised) over the wrong axis, or not summed over a broadcast axis:
                   sum_batch(y) = r, or y = one of the exercise's axis variants
    sign           y = -r
    missing_term   y = r - t for one named term t of the derivation (the exercise lists its terms,
                   computed from the reference's cache: layer norm's mean path, softmax's -p_i p_j, ...)
    factor         y = c r for a constant c != 1 (x2, x1/2, x1/B, ...), named when c is a known one
    scale          y = c r with c a power of sqrt(d) (attention's 1/sqrt(d)), or the no-scale variant
    mask_order     y = the variant that masks after the softmax
    overwrite      y = the variant with `=` where `+=` belongs (a node or a row used twice)
    dtype          float32 in gave float64 out (or the other way), or not an array of numbers
    mutated_input  the function changed an array it was given
    not_implemented, error, timeout    it raised NotImplementedError / something else / ran out of time
    other          wrong, in none of the ways above

The kinds are checked in a fixed order, most specific first (a named variant before a bare
factor), so one wrong array gets exactly one kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS: tuple[str, ...] = (
    "factor",
    "sign",
    "transposed",
    "axis",
    "missing_term",
    "zeros",
    "overwrite",
    "overflow",
    "mask_order",
    "scale",
    "shape",
    "dtype",
    "mutated_input",
    "not_implemented",
    "error",
    "timeout",
    "other",
)


#: where to look first, per kind (`learn hint` after a failing check): what to look at, never the code; {what} is the
#: wrong thing as the diagnosis named it ("dW", "softmax_forward output")
LOOK_AT: dict[str, str] = {
    "factor": "your {what} is right up to a constant factor: look for a mean's 1/B or 1/N, a 2 from a square, a "
    "temperature or beta, each where the forward has it",
    "sign": "your {what} has the wrong sign: follow each minus of the forward into its derivative",
    "transposed": "your {what} is transposed: a gradient has the shape of its input; look at the order of the two "
    "factors of the product that gives it, and which one is transposed",
    "axis": "your {what} is summed over the wrong axes: an input broadcast over rows (a bias, a gain) gets one "
    "contribution per row, so its gradient sums over every axis it was broadcast along (the batch, and T "
    "for a (B, T, ...) input) and keeps its own",
    "missing_term": "your {what} misses one term of the derivation (the check named it): list every path by which "
    "the input reaches the output; each path is one term",
    "zeros": "your {what} is all zeros: is it computed and returned (not a fresh np.zeros), and updated in place "
    "where the caller keeps the array?",
    "overwrite": "your {what} keeps one contribution where there are several: a node or a row used twice gets the "
    "sum of both uses (accumulate, do not replace)",
    "overflow": "your {what} overflows on large inputs (the +-1000 case): an exp of a large number is inf; shift "
    "first (a softmax does not change when you subtract the row max)",
    "mask_order": "your {what} masks after the softmax: the mask goes on the scores, before it, so masked keys get "
    "weight exactly 0 and the rest still sum to 1",
    "scale": "your {what} has a wrong scale of the scores: 1/sqrt(d), with d the width of one head",
    "shape": "your {what} has the wrong type or shape: the message says what was expected (a forward returns "
    "(out, cache); a backward a tuple of gradients, one per input, each its input's shape)",
    "dtype": "your {what} changes the dtype: float32 in gives float32 out (make buffers like the input: "
    "np.zeros_like, dtype=x.dtype)",
    "mutated_input": "your {what} changes an array it was given: the caller still needs it; work on a copy",
    "not_implemented": "{what} is not written yet",
    "other": "your {what} is wrong in none of the known ways: compare yours with the expected number at the worst "
    "index the check printed, on the smallest case",
}


@dataclass(frozen=True)
class Tol:
    """An element agrees when |y - r| <= atol + rtol |r|."""

    atol: float
    rtol: float
    why: str


#: their forward against ours in float64: different but correct formulas (logsumexp, E[x^2] - E[x]^2)
#: round differently, by ~1e-15 relative; a real mistake is off by far more than 1e-7.
FORWARD_TOL = Tol(1e-9, 1e-7, "float64, another correct formula rounds differently by ~1e-15")
#: their backward against ours: the same, one chain rule deeper.
BACKWARD_TOL = Tol(1e-8, 1e-6, "float64 gradients of another correct formula differ by ~1e-13")
#: float32 input: single precision carries ~7 digits, a few roundings lose one or two.
FLOAT32_TOL = Tol(1e-5, 1e-4, "float32 arithmetic: about 6 good digits after a few roundings")
#: a float64 result that went through a float32 array: each rounding is ~6e-8 relative, a few of them stay under
#: 2e-6; a real mistake this small (eps outside a square root: ~5e-6) is bigger.
FLOAT32_ROUNDING = Tol(1e-6, 2e-6, "float64 values rounded through float32 (~6e-8 relative each)")
#: central differences with eps=1e-6 against the exact gradient (as engine.NUMERIC).
NUMERIC_TOL = Tol(1e-6, 1e-5, "central differences, eps=1e-6: error ~1e-10 |f| / eps^2 terms")


@dataclass
class Finding:
    """One thing wrong: its kind, where (`input`: function and argument, `case`), and a reviewer's sentence."""

    kind: str
    input: str
    message: str
    case: str = ""
    index: list[int] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    #: for a wrong gradient of an nn piece: what `learn check --html` needs to draw it (draw.Failure); not in JSON
    drawable: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown mistake kind {self.kind!r}; the kinds are {', '.join(KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input": self.input,
            "case": self.case,
            "message": self.message,
            "index": self.index,
            "values": self.values,
        }


def close(y: np.ndarray, r: np.ndarray, tol: Tol) -> bool:
    """Elementwise agreement within `tol`; non-finite entries agree only with the same non-finite entry."""
    if y.shape != r.shape:
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.allclose(y, r, rtol=tol.rtol, atol=tol.atol, equal_nan=True))


def worst_index(y: np.ndarray, r: np.ndarray, tol: Tol) -> tuple[int, ...]:
    """Where y is furthest from r, measured in allowed errors (non-finite first)."""
    if y.size == 0:
        return ()
    with np.errstate(invalid="ignore", over="ignore"):
        excess = np.abs(y - r) / (tol.atol + tol.rtol * np.abs(r))
    excess = np.where(np.isfinite(excess), excess, np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), y.shape))


def fmt(x: float) -> str:
    return f"{x:.6g}"


def _factor_name(c: float, factors: Mapping[str, tuple[float, str]]) -> tuple[str, str, bool]:
    """(kind, name, known) of a constant factor: one of the exercise's named factors (kind factor or scale),
    a small power of 2, else just its value (known False)."""
    for name, (value, kind) in factors.items():
        if math.isclose(c, value, rel_tol=1e-6):
            return kind, name, True
    for name, value in (("2", 2.0), ("1/2", 0.5), ("4", 4.0), ("1/4", 0.25)):
        if math.isclose(c, value, rel_tol=1e-6):
            return "factor", name, True
    return "factor", fmt(c), False


def classify(
    y: np.ndarray,
    r: np.ndarray,
    *,
    tol: Tol,
    terms: Mapping[str, np.ndarray] | None = None,
    variants: Mapping[str, tuple[str, np.ndarray]] | None = None,
    factors: Mapping[str, tuple[float, str]] | None = None,
) -> tuple[str, str]:
    """(kind, what) for a y that does not match r; `what` finishes the sentence "yours ...".

    `terms`: name -> the term's contribution (r's shape); `variants`: name -> (kind, the
    reference computed with that mistake); `factors`: name -> (value, kind) of the constants
    this exercise's mistakes are known to multiply by (1/B, T^2, sqrt(d), ...).
    """
    terms, variants, factors = terms or {}, variants or {}, factors or {}
    if y.shape != r.shape:
        if y.ndim == 2 and y.T.shape == r.shape and close(y.T, r, tol):
            return "transposed", "is the transpose of the right answer"
        for name, (kind, v) in variants.items():  # a named mistake says more than a bare axis
            if v.shape == y.shape and close(y, v, tol):
                return kind, f"matches the mistake '{name}'"
        for axis in range(y.ndim):
            if np.delete(np.array(y.shape), axis).tolist() == list(r.shape) and close(y.sum(axis=axis), r, tol):
                return "axis", (
                    f"has shape {tuple(y.shape)}, expected {tuple(r.shape)}: it keeps an axis of length "
                    f"{y.shape[axis]} (your axis {axis}) that the right answer sums over; summed over it, "
                    f"it would be right"
                )
        return "shape", f"has shape {tuple(y.shape)}, expected {tuple(r.shape)}"
    finite_r = np.isfinite(r)
    if not np.isfinite(y[finite_r]).all():
        return "overflow", "has inf or nan where the right answer is finite (an exp or a square that overflowed?)"
    if not np.any(y) and np.any(r):
        return "zeros", "is all zeros"
    for name, (kind, v) in variants.items():
        if v.shape == y.shape and close(y, v, tol):
            return kind, f"matches the mistake '{name}'"
    if np.any(r) and close(y, -r, tol):
        return "sign", "has the wrong sign everywhere (it is minus the right answer)"
    for name, t in terms.items():
        if np.any(t) and close(y, r - t, tol):
            return "missing_term", f"is missing the term '{name}' (it equals the right answer minus that term)"
    if y.ndim == 2 and y.shape[0] == y.shape[1] and not close(r, r.T, tol) and close(y.T, r, tol):
        return "transposed", "is the transpose of the right answer"
    rr = float(np.sum(r * r))
    if rr > 0:
        c = float(np.sum(y * r)) / rr
        if abs(c - 1.0) > 1e-6 and c != 0 and close(y, c * r, tol):
            kind, name, known = _factor_name(c, factors)
            if r.size > 1 or known:  # one number is always a multiple of another: only a known factor says something
                return kind, f"is off by a constant factor: x{name} (yours / right = {fmt(c)} everywhere)"
    for name, t in terms.items():  # a term with the wrong sign or counted twice
        if np.any(t) and (close(y, r + t, tol)):
            return (
                "missing_term",
                f"has the term '{name}' with the wrong sign (it equals the right answer plus that term)",
            )
    return "other", "is wrong, in none of the known ways"
