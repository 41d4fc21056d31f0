"""Fused ops over one row of scalars: softmax, RMSNorm and cross-entropy.

Built from binary nodes, a softmax of n entries is 4n + 1 nodes (scale, shift, exp, the sum,
the divisions), an RMSNorm of C entries 2C + 5 and a cross-entropy over V classes 2V + 3.
Here each op computes its outputs *and* their local partials when it runs, from the row's
numbers, and stores them as a few fused nodes (`engine.value.fused`), each holding its
parents and its partials as two tuples:

    op             nodes                                   parents              partials
    softmax        L = logsumexp(c x)                      x_1 .. x_n           c s_j
                   s_i = e^(c x_i - L), i = 1..n           x_i, L               c s_i, -s_i
    rms_norm       r = 1 / sqrt(mean(x^2) + eps)           x_1 .. x_C           -x_j r^3 / C
                   y_i = gamma_i x_i r, i = 1..C           x_i, gamma_i, r      gamma_i r, x_i r, gamma_i x_i
    cross_entropy  L = log sum_k e^(z_k) - z_t             z_1 .. z_V           p_j - delta_jt

`backward()` needs nothing new: a fused node's step is  parent.grad += partial * out.grad.

Why a shared node (L, r) and not one node per output over the whole row: every softmax
output depends on every input, so a node per output would hold n parents, n^2 edges a row
(C(C + 1) for RMSNorm); routing the row through one shared node keeps it at 3n (4C) edges,
fewer than the binary form's ~7n, and measured faster than both on the micro GPT's rows
(benchmarks/README.md). The docstrings derive the full Jacobian and show that the chain
through the shared node gives it back.

Each op also has its *reference form*, the same math written with binary nodes
(`_softmax_binary` ...), which is what it builds inside `engine.unfused()`. It follows the
derivation one operation at a time and is the form the fused one is checked against; the
two compute every number in the same order, so their outputs are equal to the last bit and
their gradients agree to rounding. As everywhere in the engine, an entry that is a plain
number is a constant (no edge), and on plain numbers only the results are plain floats.
"""

# Shape legend: n entries of a softmax row, C features of an RMSNorm row, V classes (logits).

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, cast

from engine import value as _value
from engine.functions import data_of, exp, log, sqrt
from engine.value import Value, _binary_sum, _row, fused

Scalar = Value | int | float

_exp = math.exp
_log = math.log
_sqrt = math.sqrt


def _numbers(xs: Sequence[Any], op: str, what: str) -> tuple[list[float], bool]:
    """(the numbers behind `xs`, whether every entry is a Value); TypeError naming a bad entry.

    `xs` is unchecked (Any): this is where its entries are checked."""
    try:  # the common case, a row of Values: one comprehension
        data = [x.data for x in xs]
        if set(map(type, data)) <= {float}:
            return data, True
    except AttributeError:
        pass
    data = []
    for i, x in enumerate(xs):
        if isinstance(x, Value):
            data.append(x.data)
        elif isinstance(x, Real) and not isinstance(x, bool):
            data.append(float(x))
        else:
            raise TypeError(
                f"engine.{op}: {what}[{i}] must be a number or an engine.Value, not {type(x).__name__}: {x!r}"
            )
    return data, False


def _node(data: float, op: str, inputs: Sequence[Scalar], partials: Sequence[float], all_values: bool) -> Scalar:
    """One fused node over the Values among `inputs` (numbers are constants: no edge), or the
    float `data` when there are none."""
    if all_values:
        return fused(data, op, cast("tuple[Value, ...]", tuple(inputs)), tuple(partials))
    kept = [(x, d) for x, d in zip(inputs, partials) if isinstance(x, Value)]
    if not kept:
        return data
    return fused(data, op, tuple(x for x, _ in kept), tuple(d for _, d in kept))


def _nonempty(xs: Sequence[Scalar], op: str, what: str) -> None:
    if len(xs) == 0:
        raise ValueError(f"engine.{op}: {what} needs at least one entry")


# --------------------------------------------------------------------------- softmax
def softmax(xs: Sequence[Scalar], scale: float = 1.0) -> list[Scalar]:
    """s_i = e^(c x_i - m) / sum_k e^(c x_k - m) for one row, c = `scale`, m = max_k c x_k.

    m is a constant (a float: no gradient flows through it); the result does not depend on
    it, it only keeps every exponent <= 0. The scale folds the attention's 1/sqrt(d) into
    the op. Jacobian, with z = c x and log s_i = z_i - log sum_k e^(z_k):

        d log s_i / dx_j = c (delta_ij - e^(z_j) / sum_k e^(z_k)) = c (delta_ij - s_j)
        ds_i / dx_j      = s_i d log s_i / dx_j = c s_i (delta_ij - s_j)

    As nodes: L = logsumexp(z) = m + log sum_k e^(z_k - m), with dL/dx_j = c s_j, and
    s_i = e^(z_i - L), with ds_i/dx_i = c s_i (direct) and ds_i/dL = -s_i. The chain rule
    through L gives back the Jacobian: ds_i/dx_j = c s_i delta_ij + (-s_i)(c s_j).
    """
    xs = _row(xs, "softmax", "xs")
    _nonempty(xs, "softmax", "xs")
    if not isinstance(scale, Real) or isinstance(scale, bool) or not math.isfinite(scale):
        raise TypeError(f"engine.softmax: scale must be a finite number, got {scale!r}")
    if not _value._fuse_ops:
        return _softmax_binary(xs, float(scale))
    data, all_values = _numbers(xs, "softmax", "xs")
    z = data if scale == 1.0 else [d * scale for d in data]  # as x * c would compute it
    if not all(map(math.isfinite, z)):  # an infinite score would make e^(z - m) = e^(inf - inf) = NaN
        bad = next(i for i, v in enumerate(z) if not math.isfinite(v))
        raise ValueError(f"engine.softmax: xs[{bad}] is not finite ({data[bad]!r}, scaled by {scale!r})")
    m = max(z)
    e = [_exp(v - m) for v in z]
    total = _binary_sum(e)  # left to right, as the reference form adds
    inv = 1.0 / total
    s = [v * inv for v in e]  # e / Z computed as e * (1 / Z), as `/` does
    if not all_values and not any(isinstance(x, Value) for x in xs):
        return s
    lse = _node(m + _log(total), "logsumexp", xs, [scale * s_j for s_j in s], all_values)
    if all_values:
        return [fused(s_i, "softmax", (x, lse), (scale * s_i, -s_i)) for x, s_i in zip(xs, s)]
    return [_node(s_i, "softmax", (x, lse), (scale * s_i, -s_i), False) for x, s_i in zip(xs, s)]


def _softmax_binary(xs: Sequence[Scalar], scale: float) -> list[Scalar]:
    """The reference form: scale, shift by the (constant) max, exp, sum, divide, one binary op each."""
    z = list(xs) if scale == 1.0 else [x * scale for x in xs]
    m = max(data_of(v) for v in z)
    exps = [exp(v - m) for v in z]
    total = _binary_sum(exps)
    return [e / total for e in exps]


# --------------------------------------------------------------------------- RMSNorm
def rms_norm(xs: Sequence[Scalar], gammas: Sequence[Scalar], eps: float) -> list[Scalar]:
    """y_i = gamma_i x_i r for one row of C entries, r = 1 / sqrt(ms + eps), ms = (1/C) sum_j x_j^2.

    Jacobian: dr/dx_j = -(1/2) (ms + eps)^(-3/2) (2 x_j / C) = -x_j r^3 / C, so with xh = x r

        dy_i / dx_j     = gamma_i (delta_ij r + x_i dr/dx_j) = gamma_i r (delta_ij - xh_i xh_j / C)
        dy_i / dgamma_i = x_i r = xh_i        (and 0 for every other gamma)

    As nodes: r over the row (partials -x_j r^3 / C), then y_i over (x_i, gamma_i, r) with
    partials (gamma_i r, x_i r, gamma_i x_i); the chain through r gives back the Jacobian,
    dy_i/dx_j = gamma_i r delta_ij + gamma_i x_i (-x_j r^3 / C). eps > 0 is required (no
    default here: every epsilon is the caller's named choice; nn's RMSNorm passes its own).
    """
    xs, gammas = _row(xs, "rms_norm", "xs"), _row(gammas, "rms_norm", "gammas")
    _nonempty(xs, "rms_norm", "xs")
    C = len(xs)
    if len(gammas) != C:
        raise ValueError(f"engine.rms_norm: xs and gammas must have the same length, got {C} and {len(gammas)}")
    if not isinstance(eps, Real) or isinstance(eps, bool) or not eps > 0.0:
        raise ValueError(f"engine.rms_norm: eps must be a positive number, got {eps!r}")
    if not _value._fuse_ops:
        return _rms_norm_binary(xs, gammas, float(eps))
    x, x_values = _numbers(xs, "rms_norm", "xs")
    g, g_values = _numbers(gammas, "rms_norm", "gammas")
    ms = _binary_sum([v * v for v in x]) * (1.0 / C)  # as dot(x, x) / C computes it
    r = 1.0 / _sqrt(ms + eps)
    y = [g_i * (x_i * r) for g_i, x_i in zip(g, x)]
    if not (x_values and g_values) and not any(isinstance(v, Value) for v in (*xs, *gammas)):
        return y
    slope = -r * r * r / C
    r_node = _node(r, "rrms", xs, [slope * x_j for x_j in x], x_values)
    if x_values and g_values:
        return [
            fused(y_i, "rms_norm", (x_node, g_node, r_node), (g_i * r, x_i * r, g_i * x_i))
            for x_node, g_node, y_i, x_i, g_i in zip(xs, gammas, y, x, g)
        ]
    return [
        _node(y_i, "rms_norm", (x_node, g_node, r_node), (g_i * r, x_i * r, g_i * x_i), False)
        for x_node, g_node, y_i, x_i, g_i in zip(xs, gammas, y, x, g)
    ]


def _rms_norm_binary(xs: Sequence[Scalar], gammas: Sequence[Scalar], eps: float) -> list[Scalar]:
    """The reference form: mean of squares, + eps, sqrt, reciprocal, then gamma_i (x_i r), one binary op each."""
    C = len(xs)
    mean_square = _binary_sum([v * v for v in xs]) / C
    r = 1.0 / sqrt(mean_square + eps)
    return [gammas[i] * (xs[i] * r) for i in range(C)]


# --------------------------------------------------------------------------- cross-entropy
def cross_entropy(logits: Sequence[Scalar], target: int) -> Scalar:
    """L = -log softmax(z)[t] = log sum_k e^(z_k - m) - (z_t - m) for one row, m = max_k z_k (a constant).

    Jacobian (one output, so one row): with p = softmax(z),

        dL/dz_j = e^(z_j - m) / sum_k e^(z_k - m) - delta_jt = p_j - delta_jt

    One node over the row's Values, straight from the logits to the loss.
    """
    logits = _row(logits, "cross_entropy", "logits")
    _nonempty(logits, "cross_entropy", "logits")
    V = len(logits)
    if not isinstance(target, Integral) or isinstance(target, bool) or not 0 <= target < V:
        raise ValueError(f"engine.cross_entropy: target must be a class index in [0, {V}), got {target!r}")
    target = int(target)
    if not _value._fuse_ops:
        return _cross_entropy_binary(logits, target)
    z, all_values = _numbers(logits, "cross_entropy", "logits")
    m = max(z)
    shifted = [v - m for v in z]
    e = [_exp(v) for v in shifted]
    total = _binary_sum(e)
    loss = _log(total) - shifted[target]
    if not all_values and not any(isinstance(v, Value) for v in logits):
        return loss
    inv = 1.0 / total
    partials = [v * inv for v in e]  # p_j
    partials[target] -= 1.0  # - delta_jt
    return _node(loss, "cross_entropy", logits, partials, all_values)


def _cross_entropy_binary(logits: Sequence[Scalar], target: int) -> Scalar:
    """The reference form: shift by the (constant) max, exp, sum, log, minus the target's shifted logit."""
    m = max(data_of(v) for v in logits)
    shifted = [v - m for v in logits]
    total = _binary_sum([exp(v) for v in shifted])
    return log(total) - shifted[target]
