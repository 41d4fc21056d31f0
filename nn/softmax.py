"""Softmax and log-softmax over the last axis, numerically stable, each written two ways.

Both subtract the row maximum m first. The result does not depend on that shift,

    softmax(x)_j = e^(x_j) / sum_k e^(x_k) = e^(x_j - m) / sum_k e^(x_k - m),

so m can be any constant: in the loops form it is taken as a plain float
(`engine.data_of`), i.e. no gradient flows through it, and the gradients are still exact.
After the shift every exponent is <= 0 (no overflow) and the largest term is e^0 = 1, so
the sum is >= 1 (its log never sees 0): logits of +-1e4 give exact, finite results.
"""

# Shape legend: "..." any leading axes, C the last axis (classes / positions) reduced over.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import data_of, exp, log, total
from engine import softmax as softmax_row
from nn._checks import array_input, dout_array, fail, nested_input, nonempty_last_axis, shape_text
from nn._nested import map_rows
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register


def _shifted_exps(row: list) -> tuple[list, list, Any]:
    """(x_j - m, e^(x_j - m), sum_k e^(x_k - m)) for one row of scalars, m = max_j x_j as a float."""
    m = data_of(row[0])
    for v in row[1:]:
        d = data_of(v)
        if d > m:
            m = d
    shifted = [v - m for v in row]
    exps = [exp(z) for z in shifted]
    return shifted, exps, total(exps)  # one fused node on Values


def _check_loops(piece: str, x: Any) -> list:
    x, shape = nested_input(piece, "x", x)
    if len(shape) < 1 or shape[-1] == 0:
        raise fail(piece, f"x needs at least one entry along its last axis (C), got shape {shape_text(shape)}")
    return x


# ------------------------------------------------------------------------------ softmax
def softmax_loops(x: Any) -> list:
    """softmax over the last axis of nested lists: y_j = e^(x_j - m) / sum_k e^(x_k - m).

    m is the row's largest entry as a plain float (no gradient flows through it; see the module's docstring).
    twograd's own version hands each row to `engine.softmax` (one fused node per output on Values).
    """
    x = _check_loops("softmax", x)
    return map_rows(softmax_row, x)


class SoftmaxCache(NamedTuple):
    y: np.ndarray  # (..., C) the returned output itself (not a copy): the Jacobian is written in y alone


def softmax_forward(x: Any) -> tuple[np.ndarray, SoftmaxCache]:
    """y = softmax(x) over the last axis, with the row max subtracted first."""
    x = array_input("softmax", "x", x)
    nonempty_last_axis("softmax", "x", x, "C")
    y = x - x.max(axis=-1, keepdims=True)  # (..., C), every entry <= 0
    np.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)  # (..., C) / (..., 1)
    return y, SoftmaxCache(y)


def softmax_backward(dout: Any, cache: SoftmaxCache) -> tuple[np.ndarray]:
    """y_j = e^(x_j) / S, S = sum_k e^(x_k):  dy_j/dx_i = y_j (delta_ij - y_i).  With dy = dL/dy:

        dL/dx_i = sum_j dy_j y_j (delta_ij - y_i) = y_i (dy_i - sum_j dy_j y_j)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    y = cache.y
    dy = dout_array("softmax", dout, y.shape)
    dx = dy * y  # (..., C)
    dx = dy - dx.sum(axis=-1, keepdims=True)  # dy_i - <dy, y>, (..., C)
    dx *= y
    return (dx,)


# ------------------------------------------------------------------------------ log_softmax
def log_softmax_loops(x: Any) -> list:
    """log softmax over the last axis of nested lists: y_j = (x_j - m) - log sum_k e^(x_k - m)."""
    x = _check_loops("log_softmax", x)

    def row_log_softmax(row: list) -> list:
        shifted, _, total = _shifted_exps(row)
        log_total = log(total)
        return [z - log_total for z in shifted]

    return map_rows(row_log_softmax, x)


class LogSoftmaxCache(NamedTuple):
    exps: np.ndarray  # (..., C) e^(x - m)
    total: np.ndarray  # (..., 1) sum of exps over the last axis; softmax = exps / total


def log_softmax_forward(x: Any) -> tuple[np.ndarray, LogSoftmaxCache]:
    """y = x - m - log sum_k e^(x_k - m), over the last axis (m the row max)."""
    x = array_input("log_softmax", "x", x)
    nonempty_last_axis("log_softmax", "x", x, "C")
    y = x - x.max(axis=-1, keepdims=True)  # (..., C), every entry <= 0
    exps = np.exp(y)
    total = exps.sum(axis=-1, keepdims=True)  # (..., 1), >= 1
    y -= np.log(total)
    return y, LogSoftmaxCache(exps, total)


def log_softmax_backward(dout: Any, cache: LogSoftmaxCache) -> tuple[np.ndarray]:
    """y_j = x_j - log S:  dy_j/dx_i = delta_ij - e^(x_i)/S = delta_ij - p_i  (p = softmax(x)).
    With dy = dL/dy:

        dL/dx_i = sum_j dy_j (delta_ij - p_i) = dy_i - p_i sum_j dy_j
    """
    exps, total = cache
    dy = dout_array("log_softmax", dout, exps.shape)
    dx = exps * (dy.sum(axis=-1, keepdims=True) / total)  # p_i sum_j dy_j, (..., C)
    np.subtract(dy, dx, out=dx)
    return (dx,)


# ------------------------------------------------------------------------------ registry
def _logit_case(shape: tuple[int, ...], scale: float = 2.0) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"x": scale * rng.standard_normal(shape)}, {}

    return make


def _softmax_torch(torch: Any, x: Any) -> Any:
    """The torch referee (see `Piece`): F.softmax over the last axis."""
    return torch.nn.functional.softmax(x, dim=-1)


def _log_softmax_torch(torch: Any, x: Any) -> Any:
    """The torch referee (see `Piece`): F.log_softmax over the last axis."""
    return torch.nn.functional.log_softmax(x, dim=-1)


def _cases() -> tuple[Case, ...]:
    return (
        Case("batch 1: (1, 4)", _logit_case((1, 4))),
        Case("odd: (3, 5)", _logit_case((3, 5))),
        Case("3-d: (2, 3, 7)", _logit_case((2, 3, 7))),
        Case("single class: (2, 1)", _logit_case((2, 1))),
        Case("1-d: (5,)", _logit_case((5,))),
        Case("large logits: (2, 4) x 30", _logit_case((2, 4), scale=30.0)),
    )


register(
    Piece(
        name="softmax",
        loops=softmax_loops,
        forward=softmax_forward,
        backward=softmax_backward,
        cases=_cases(),
        description="softmax over the last axis, max-shifted",
        torch=_softmax_torch,
        tags=("activation",),
    )
)

register(
    Piece(
        name="log_softmax",
        loops=log_softmax_loops,
        forward=log_softmax_forward,
        backward=log_softmax_backward,
        cases=_cases(),
        description="log softmax over the last axis, max-shifted",
        torch=_log_softmax_torch,
        tags=("activation",),
    )
)
