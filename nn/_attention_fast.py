"""Scaled dot-product attention, the cache-tuned kernel: the same math as `nn.attention`.

    attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

`nn.attention` holds the reference manual pair, written as its derivation reads. This file
holds the kernel that multi-head attention (`nn.mha`) and `benchmarks/attention.py` run:
the same forward and backward, rearranged for speed (layout note below). It has no loops
form of its own: its registry piece "attention_fast" (`nn._attention_pieces`) uses
`attention_loops` and the reference's cases, so the registry checks it three ways, and
tests/nn/test_attention_fast.py compares it with the reference pair over many shapes,
masks and both float dtypes.

* `attention_fast_forward` / `attention_fast_backward`: validated entry points (the
  reference's checks and messages).
* `attend` / `attend_backward`: the unchecked kernel, writing into caller-given buffers
  (`nn.mha` passes views of its concatenated-heads arrays).
"""

# Shape legend
#     Tq   query positions;  Tk key/value positions
#     d    query/key width (d_k);  dv value width
#     ...  leading batch axes: none, (B,), (B, H), ...
#     qs = q / sqrt(d) (..., Tq, d)   k (..., Tk, d)   v (..., Tk, dv)
#     St, Pt = S^T, P^T (..., Tk, Tq)   out (..., Tq, dv)
#
# Layout note. The kernel keeps the scores *transposed*, St = S^T of shape (..., Tk, Tq):
# the softmax then reduces over axis -2, which numpy does with contiguous rows (several
# times faster than reducing each short row over the last axis), and the broadcasts of
# the per-query max and sum run along contiguous memory too. `weights` gives P itself as
# a (free) transposed view. The 1/sqrt(d) is folded into q once, (Tq, d), instead of into
# the (Tq, Tk) scores. The leading axis is walked in chunks of about CHUNK_BYTES of scores.

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn._checks import attention_arrays, dout_array

#: The kernel works through the leading axis in chunks whose (Tk, Tq) score blocks total
#: about this many bytes, so that the softmax's passes over a block find it still in the
#: core's L2 cache and the backward's scratch block is allocated once. (About 1.4x faster
#: than whole-batch passes at B=16, H=4, T=64; see benchmarks/attention.py.)
CHUNK_BYTES = 1 << 18


# ============================================================================ kernel helpers
def _sum_rows_t(Et: np.ndarray) -> np.ndarray:
    """Column sums of each (Tk, Tq) slice, (..., 1, Tq), as a ones-vector product (BLAS)."""
    ones = np.ones((1, Et.shape[-2]), dtype=Et.dtype)
    return np.matmul(ones, Et)  # (..., 1, Tq)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_c a[..., i, c] b[..., i, c] as (..., 1, Tq), via a ones-vector product (BLAS)."""
    prod = a * b  # (..., Tq, c)
    ones = np.ones(prod.shape[-1], dtype=prod.dtype)
    return (prod.reshape(-1, prod.shape[-1]) @ ones).reshape(prod.shape[:-2] + (1, prod.shape[-2]))


def _shift_free_limit(dtype: np.dtype) -> float:
    """Scores within +-L need no max-subtraction: with L = ln(max float) / 2, exp(L) times
    any feasible Tk stays finite and exp(-L) is still a normal number (full precision).
    float32: L = 44.4, float64: L = 354.9."""
    return 0.5 * math.log(float(np.finfo(dtype).max))


def _mask_t(mask: np.ndarray, dtype: Any = None) -> np.ndarray:
    """The mask transposed to the scores' (..., Tk, Tq) layout, C-contiguous (a transposed
    view would make the broadcast ops over the scores about twice as slow)."""
    mt = np.swapaxes(mask, -1, -2)
    return np.ascontiguousarray(mt) if dtype is None else mt.astype(dtype, order="C")


def _chunks(shape: tuple[int, ...], item_bytes: int) -> list[Any]:
    """Index expressions that split the leading axis of a (..., Tk, Tq) array into chunks."""
    if len(shape) == 2:
        return [Ellipsis]
    per_item = item_bytes * math.prod(shape[1:])
    n = max(1, min(shape[0], CHUNK_BYTES // max(per_item, 1)))
    return [slice(i, min(i + n, shape[0])) for i in range(0, shape[0], n)]


def _chunk_of(mt: np.ndarray | None, c: Any, ndim: int) -> np.ndarray | None:
    """The part of a (broadcasting) transposed mask that goes with chunk `c` of the scores."""
    if mt is None or c is Ellipsis or mt.ndim < ndim or mt.shape[0] == 1:
        return mt
    return mt[c]


# ============================================================================ kernel
def attend(
    qs: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(out, P^T) from the pre-scaled queries qs = q / sqrt(d); no validation; in place where it can.

    `out`, if given, is written into (any strided (..., Tq, dv) view: MHA passes a view of
    its concatenated-heads buffer, which saves a copy).
    """
    Tq, Tk = qs.shape[-2], k.shape[-2]
    dt = np.result_type(qs, k, v)
    lead = qs.shape[:-2]
    Pt = np.empty(lead + (Tk, Tq), dtype=dt)  # S^T, then P^T
    if out is None:
        out = np.empty(lead + (Tq, v.shape[-1]), dtype=dt)
    limit = _shift_free_limit(dt)
    mt_float = None if mask is None else _mask_t(mask, dt)  # 1.0 where allowed
    mt_bool = None
    for c in _chunks(Pt.shape, dt.itemsize):
        P = Pt[c]  # (chunk, ..., Tk, Tq)
        np.matmul(k[c], np.swapaxes(qs[c], -1, -2), out=P)
        if -limit <= P.min() and P.max() <= limit:
            # The usual case. softmax(S) = softmax(S - c) for any per-row c; here c = 0 is
            # already safe, which saves a (slow) reduction and a pass over the scores.
            np.exp(P, out=P)
            if mt_float is not None:
                P *= _chunk_of(mt_float, c, P.ndim)  # exclusion: masked weights become exactly 0
        else:
            # Large scores: subtract each query's maximum over its *allowed* keys. Masked
            # scores become -inf first, so they neither set the shift nor survive exp
            # (exp(-inf) == 0.0 exactly). Every query keeps one finite score (checked).
            if mask is not None:
                mt_bool = ~_mask_t(mask) if mt_bool is None else mt_bool
                np.copyto(P, -np.inf, where=_chunk_of(mt_bool, c, P.ndim))
            P -= P.max(axis=-2, keepdims=True)
            np.exp(P, out=P)
        P *= 1.0 / _sum_rows_t(P)  # sums over allowed keys only (masked entries are 0); (..., 1, Tq)
        np.matmul(np.swapaxes(P, -1, -2), v[c], out=out[c])  # (chunk, ..., Tq, dv)
    return out, Pt


def attend_backward(
    dout: np.ndarray,
    qs: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    Pt: np.ndarray,
    out: np.ndarray,
    scale: float,
    dq: np.ndarray | None = None,
    dk: np.ndarray | None = None,
    dv: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv) of `attend`, unchecked; each written into the given array if any.

    The reference's backward (`nn.attention.attention_backward`) on the transposes, with one
    saving: rowsum(dP * P)_i = sum_k P_ik (dO_i . V_k) = dO_i . O_i, a (Tq, dv) product
    instead of a (Tq, Tk) one. dk = dS^T (s q) = dS^T qs reuses the pre-scaled queries.
    """
    dt = Pt.dtype
    dq = np.empty(qs.shape, dtype=dt) if dq is None else dq
    dk = np.empty(k.shape, dtype=dt) if dk is None else dk
    dv = np.empty(v.shape, dtype=dt) if dv is None else dv
    chunks = _chunks(Pt.shape, dt.itemsize)
    scratch = np.empty(Pt[chunks[0]].shape, dtype=dt)  # dS^T of one chunk, reused
    for c in chunks:
        P = Pt[c]
        dO = dout[c]
        dSt = scratch[: P.shape[0]] if c is not Ellipsis else scratch
        np.matmul(P, dO, out=dv[c])  # P^T dO, (chunk, ..., Tk, dv)
        np.matmul(v[c], np.swapaxes(dO, -1, -2), out=dSt)  # dP^T = V dO^T, (chunk, ..., Tk, Tq)
        dSt -= _rowdot(dO, out[c])  # dP_ij - dO_i . O_i
        dSt *= P  # dS^T; exactly 0 where P is (masked positions)
        dq_c = np.matmul(np.swapaxes(dSt, -1, -2), k[c], out=dq[c])  # dS K, (chunk, ..., Tq, d)
        dq_c *= dt.type(scale)
        np.matmul(dSt, qs[c], out=dk[c])  # dS^T (s Q), (chunk, ..., Tk, d)
    return dq, dk, dv


# ============================================================================ manual pair (fast)
@dataclass(frozen=True)
class FastAttentionCache:
    """What `attention_fast_forward` keeps for `attention_fast_backward` (k, v and out are not copied)."""

    qs: np.ndarray  # q / sqrt(d), (..., Tq, d)
    k: np.ndarray  # (..., Tk, d)
    v: np.ndarray  # (..., Tk, dv)
    Pt: np.ndarray  # P^T, (..., Tk, Tq); exactly 0 where masked
    out: np.ndarray  # (..., Tq, dv)
    scale: float  # 1 / sqrt(d)

    @property
    def weights(self) -> np.ndarray:
        """The attention weights P (..., Tq, Tk): a view, rows sum to 1."""
        return np.swapaxes(self.Pt, -1, -2)


def attention_fast_forward(q: Any, k: Any, v: Any, mask: Any = None) -> tuple[np.ndarray, FastAttentionCache]:
    """`nn.attention.attention_forward` by the fast kernel: the same inputs, checks and output.

    The softmax skips its max-subtraction when every score of a chunk is within
    +-ln(max float)/2 (exp cannot overflow there), and subtracts each row's maximum
    otherwise.
    """
    q, k, v, mask = attention_arrays("attention_fast", q, k, v, mask)
    scale = 1.0 / math.sqrt(q.shape[-1])
    qs = q * q.dtype.type(scale)  # (..., Tq, d)
    out, Pt = attend(qs, k, v, mask)
    return out, FastAttentionCache(qs=qs, k=k, v=v, Pt=Pt, out=out, scale=scale)


def attention_fast_backward(dout: Any, cache: FastAttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv): `nn.attention.attention_backward`'s derivation, computed by `attend_backward`."""
    dout = dout_array("attention_fast", dout, cache.out.shape, dtype=cache.out.dtype)
    return attend_backward(dout, cache.qs, cache.k, cache.v, cache.Pt, cache.out, cache.scale)
