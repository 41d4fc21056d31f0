"""Scaled dot-product attention, written two ways: the reference forms.

    attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Masks (`nn.masks`) are boolean, True where a query may attend to a key, and broadcast
against the scores (..., Tq, Tk). They act by *exclusion*: a masked position takes no part
in the softmax, so its weight is exactly 0.0 and no gradient flows through it (exactly 0.0
as well). A query row with no allowed key has no softmax at all; it raises ValueError
naming the row instead of quietly producing NaN.

* `attention_loops`: explicit loops over scalars, on floats and on `engine.Value`s.
* `attention_forward` / `attention_backward`: the REFERENCE manual pair, plain numpy that
  reads line for line like its derivation; float64 by default, float32 in gives float32 out.
* numeric: finite differences through `nn.registry` (piece "attention", registered with its
  cases and torch form in `nn._attention_pieces`).

`nn._attention_fast` holds the cache-tuned kernel that multi-head attention (`nn.mha`) runs
on; it is registered as its own piece and tested against this reference.
"""

# Shape legend
#     Tq   query positions;  Tk key/value positions
#     d    query/key width (d_k);  dv value width
#     ...  leading batch axes: none, (B,), (B, H), ...
#     q (..., Tq, d)   k (..., Tk, d)   v (..., Tk, dv)   S, P (..., Tq, Tk)   out (..., Tq, dv)

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import data_of, dot, exp, total
from engine import softmax as softmax_row
from nn._checks import attention_arrays, check_mask, check_qkv, dout_array, fail, nested_input
from nn._nested import map_blocks

Nested = Any  # nested lists of floats or engine.Values


# ============================================================================ loops
def _attend_loops_2d(
    q: Nested,
    k: Nested,
    v: Nested,
    allowed: list[list[bool]] | None,
    scale: float,
    lead: tuple[int, ...] = (),
    trace: dict[str, list] | None = None,
) -> tuple[list, list]:
    """One (Tq, d) x (Tk, d) x (Tk, dv) attention, every dot product a loop over scalars.

    Returns (out (Tq, dv), weights (Tq, Tk)); `allowed` is the (Tq, Tk) mask as nested
    lists (None: every key), `lead` the block's leading index for error messages.
    """
    Tq, Tk, dv = len(q), len(k), len(v[0])
    out, weights = [], []
    for i in range(Tq):
        # scores of the allowed keys only: masked keys are excluded, not penalised
        kept = [j for j in range(Tk) if allowed is None or allowed[i][j]]
        if not kept:
            raise fail("attention", f"query row {list(lead) + [i]} has no key it may attend to")
        dots = [dot(q[i], k[j]) for j in kept]  # q_i . k_j, one fused node each on Values
        if trace is None:
            kept_w = softmax_row(dots, scale)  # softmax(scale * dots): one fused node per weight
        else:  # for drawing: the scores, exps and sum as nodes of their own, as the reference form builds them
            scores = [s * scale for s in dots]
            # the shift is a constant (data only): softmax does not depend on it, it only
            # keeps exp from overflowing
            shift = max(data_of(s) for s in scores)
            exps = [exp(s - shift) for s in scores]
            z = total(exps)
            kept_w = [e / z for e in exps]
        row_w: list[Any] = [0.0] * Tk
        for j, w in zip(kept, kept_w):
            row_w[j] = w
        out_row = []
        for c in range(dv):
            out_row.append(dot(kept_w, [v[j][c] for j in kept]))  # sum_j w_ij v_jc over the allowed keys
        out.append(out_row)
        weights.append(row_w)
        if trace is not None:
            row_s: list[Any] = [None] * Tk
            row_e: list[Any] = [None] * Tk
            for j, s_ij, e_ij in zip(kept, scores, exps):
                row_s[j], row_e[j] = s_ij, e_ij
            trace.setdefault("scores", []).append(row_s)
            trace.setdefault("exps", []).append(row_e)
            trace.setdefault("sums", []).append(z)
    return out, weights


def attention_loops(
    q: Nested,
    k: Nested,
    v: Nested,
    mask: Any = None,
    return_weights: bool = False,
    trace: dict[str, list] | None = None,
) -> Any:
    """Attention on nested lists of floats or `engine.Value`s, loops all the way down.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) as nested lists; any number of
    leading axes (none, (B,), (B, H), ...) is walked block by block. `mask` as in
    `attention_forward` (a boolean array or nested lists). Masked keys are skipped:
    their weight is the float 0.0 and no graph edge reaches them. Returns the output
    (..., Tq, dv), or (output, weights (..., Tq, Tk)) with `return_weights`.

    `trace`, for drawing and teaching, 2-D inputs only: a dict filled with the
    intermediate scalars, "scores" (the scaled S_ij, Tq x Tk, None where masked), "exps"
    (exp(S_ij - shift), same layout) and "sums" (the softmax denominators, one per query).
    """
    (q, qs), (k, ks), (v, vs) = (nested_input("attention", n, x) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    check_qkv("attention", qs, ks, vs)
    if trace is not None and len(qs) != 2:
        raise fail("attention", f"trace needs 2-D (T, d) inputs, q has shape {qs}")
    scores_shape = qs[:-1] + (ks[-2],)
    m = check_mask("attention", mask, scores_shape)
    allowed = None if m is None else np.broadcast_to(m, scores_shape).tolist()
    scale = 1.0 / math.sqrt(qs[-1])

    def block(qb: Nested, kb: Nested, vb: Nested, ab: Any, lead: tuple[int, ...]) -> tuple[list, list]:
        return _attend_loops_2d(qb, kb, vb, ab, scale, lead, trace)

    depth = len(qs) - 2
    pairs = map_blocks(block, depth, q, k, v, allowed, with_index=True)  # (...) of (out, weights)
    out = map_blocks(lambda p: p[0], depth, pairs)  # (..., Tq, dv)
    if not return_weights:
        return out
    return out, map_blocks(lambda p: p[1], depth, pairs)  # (..., Tq, Tk)


# ============================================================================ manual pair (reference)
@dataclass(frozen=True)
class AttentionCache:
    """What `attention_forward` keeps for `attention_backward` (inputs by reference, not copied)."""

    q: np.ndarray  # (..., Tq, d)
    k: np.ndarray  # (..., Tk, d)
    v: np.ndarray  # (..., Tk, dv)
    P: np.ndarray  # (..., Tq, Tk) the attention weights; exactly 0 where masked
    scale: float  # 1 / sqrt(d)

    @property
    def weights(self) -> np.ndarray:
        """The attention weights P (..., Tq, Tk), rows summing to 1."""
        return self.P


def attention_forward(q: Any, k: Any, v: Any, mask: Any = None) -> tuple[np.ndarray, AttentionCache]:
    """out = softmax(q k^T / sqrt(d) restricted to the mask) v, and the cache for backward.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> out (..., Tq, dv). `mask` is boolean,
    True where attention is allowed, broadcastable against (..., Tq, Tk). Step by step:

        S    = q k^T * s,          s = 1 / sqrt(d)                        scores (..., Tq, Tk)
        S_ij = -inf where the mask excludes key j from query i            (exclusion)
        m_i  = max_j S_ij                                                 (finite: every row keeps a key)
        E    = exp(S - m)                                                 exactly 0 where masked
        P    = E / sum_j E_ij                                             weights, rows sum to 1
        out  = P v

    Subtracting m_i changes nothing mathematically (softmax(S) = softmax(S - c) for any
    per-row c) and keeps exp from overflowing. The dtype is the inputs' common floating
    dtype (float32 stays float32).
    """
    q, k, v, mask = attention_arrays("attention", q, k, v, mask)
    scale = 1.0 / math.sqrt(q.shape[-1])
    S = (q @ np.swapaxes(k, -1, -2)) * scale  # (..., Tq, Tk)
    if mask is not None:
        S = np.where(mask, S, -np.inf)  # masked scores: exp(-inf) = 0.0 exactly
    S_max = S.max(axis=-1, keepdims=True)  # (..., Tq, 1)
    E = np.exp(S - S_max)  # (..., Tq, Tk), every entry in [0, 1]
    P = E / E.sum(axis=-1, keepdims=True)  # (..., Tq, Tk)
    out = P @ v  # (..., Tq, dv)
    return out, AttentionCache(q=q, k=k, v=v, P=P, scale=scale)


def attention_backward(dout: Any, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv) of attention from dout = dL/dout (..., Tq, dv).

    Forward: S = s q k^T (s = 1/sqrt(d)),  P = softmax(S) row by row over allowed keys,
    out = P v. Backward, with dX meaning dL/dX:

        out = P v            =>  dv = P^T dout,          dP = dout v^T
        P_ik = e^{S_ik}/Z_i  =>  dP_ik/dS_ij = P_ik (delta_kj - P_ij)
                             =>  dS_ij = sum_k dP_ik P_ik (delta_kj - P_ij)
                                       = P_ij (dP_ij - sum_k P_ik dP_ik)
                             i.e. dS = P * (dP - rowsum(dP * P))
        S = s q k^T          =>  dq = s dS k,            dk = s dS^T q

    A masked entry has P_ij = 0, hence dS_ij = 0 exactly: nothing flows to the excluded
    key through that position.
    """
    q, k, v, P, scale = cache.q, cache.k, cache.v, cache.P, cache.scale
    dout = dout_array("attention", dout, q.shape[:-1] + (v.shape[-1],), dtype=P.dtype)
    dv = np.swapaxes(P, -1, -2) @ dout  # (..., Tk, dv)
    dP = dout @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (..., Tq, Tk)
    dq = (dS @ k) * scale  # (..., Tq, d)
    dk = (np.swapaxes(dS, -1, -2) @ q) * scale  # (..., Tk, d)
    return dq, dk, dv
