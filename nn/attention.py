"""Scaled dot-product attention and multi-head attention, written two ways.

    attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Shape legend
    B    batch
    H    heads
    Tq   query positions;  Tk key/value positions (T when the two are equal)
    d    query/key width of single-head attention (d_k);  dv its value width
    C    model width d_model of multi-head attention;  D = C / H, the width of one head
    ...  leading batch axes of single-head attention: none, (B,), (B, H), ...

Masks are boolean, True where a query may attend to a key, and broadcast against the
scores (..., Tq, Tk). They act by *exclusion*, not by adding a large negative number: a
masked position takes no part in the softmax, so its weight is exactly 0.0 and no gradient
flows through it (exactly 0.0 as well). A query row with no allowed key has no softmax at
all; it raises ValueError naming the row instead of quietly producing NaN.

Three ways, as everywhere in `nn` (see DESIGN.md):

* `attention_loops`, `mha_loops`, `self_attention_loops`: explicit loops over scalars; they
  run on floats and on `engine.Value`s.
* `attention_forward/attention_backward`, `mha_forward/mha_backward`,
  `self_attention_forward/self_attention_backward`: numpy, float64 by default; float32 in
  gives float32 out (nothing is upcast), which is what `benchmarks/attention.py` times.
* numeric: finite differences, through `nn.registry` (pieces "attention", "mha",
  "mha_nobias", "self_attention" registered at import).

Both forms check their inputs the same way (shapes; numbers and finiteness with nn._checks'
messages), and every backward refuses a dout of the wrong shape or with a non-finite entry. Each piece's registry entry also
carries a torch form (F.scaled_dot_product_attention plus matmuls) for the referee test.

This file is self-contained: its masked, stable softmax is written inline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from engine import data_of, exp
from nn._checks import check_finite, fail, nested_input, shape_text
from nn.module import Module
from nn.registry import Case, Piece, register

Array = np.ndarray
Nested = Any  # nested lists of floats or engine.Values


# ============================================================================ masks
def causal_mask(Tq: int, Tk: int | None = None, *, offset: int = 0) -> Array:
    """Boolean (Tq, Tk) mask, True where key j may be seen by query i: j <= i + offset.

    `offset=0` (default) aligns the first query with the first key, as
    `torch.nn.functional.scaled_dot_product_attention(is_causal=True)` does. When the
    queries are the *last* Tq of Tk positions (decoding with cached keys), pass
    `offset=Tk - Tq`. A query row left with no key raises ValueError when used.
    """
    Tk = Tq if Tk is None else Tk
    for name, n in (("Tq", Tq), ("Tk", Tk)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"causal_mask: {name} must be a positive integer, got {n!r}")
    i = np.arange(Tq)[:, None]  # (Tq, 1)
    j = np.arange(Tk)[None, :]  # (1, Tk)
    return j <= i + offset  # (Tq, Tk)


def padding_mask(lengths_or_valid: Sequence[int] | Array, Tk: int | None = None, *, heads: bool = True) -> Array:
    """Boolean key mask from sequence lengths or from a (B, Tk) boolean "key is real" array.

    Returns (B, 1, 1, Tk) when `heads` (to broadcast against multi-head scores
    (B, H, Tq, Tk)), else (B, 1, Tk) (single-head scores (B, Tq, Tk)). True where the key
    is a real token. Given lengths, `Tk` defaults to max(lengths). Combine with a causal
    mask by `&`: `padding_mask(lengths) & causal_mask(T)` has shape (B, 1, T, T).
    """
    a = np.asarray(lengths_or_valid)
    if a.dtype == np.bool_:
        if a.ndim != 2:
            raise ValueError(f"padding_mask: a boolean key_valid must have shape (B, Tk), got {a.shape}")
        if Tk is not None and Tk != a.shape[1]:
            raise ValueError(f"padding_mask: key_valid has Tk={a.shape[1]} but Tk={Tk} was given")
        valid = a  # (B, Tk)
    else:
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"padding_mask: expected integer lengths of shape (B,) or a boolean (B, Tk) array, "
                f"got dtype {a.dtype} and shape {a.shape}"
            )
        if a.size == 0:
            raise ValueError("padding_mask: lengths is empty (B = 0)")
        Tk = int(a.max()) if Tk is None else Tk
        if (a < 1).any() or (a > Tk).any():
            raise ValueError(f"padding_mask: every length must be in [1, Tk={Tk}], got lengths {a.tolist()}")
        valid = np.arange(Tk)[None, :] < a[:, None]  # (B, Tk)
    B, Tk_ = valid.shape
    return valid.reshape((B, 1, 1, Tk_) if heads else (B, 1, Tk_))


# ============================================================================ validation
def _float_dtype(*arrays: Array) -> np.dtype:
    """The common floating dtype of the inputs (float32 stays float32; ints become float64)."""
    dt = np.result_type(*arrays)
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


def _real_array(piece: str, name: str, a: Any) -> Array:
    """`a` as an array of real numbers, its own float dtype kept (float32 stays float32);
    ValueError naming the argument for ragged lists or non-numbers (strings, Values)."""
    try:
        arr = np.asarray(a)
    except ValueError as err:  # ragged nested lists
        raise fail(piece, f"{name} must be an array of real numbers, got {type(a).__name__}: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise fail(piece, f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def _dout(piece: str, dout: Any, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """The upstream gradient of a backward: the output's shape and dtype, every entry finite."""
    dout = _real_array(piece, "dout", dout).astype(dtype, copy=False)
    if dout.shape != shape:
        raise fail(piece, f"dout has shape {shape_text(dout.shape)} but the output has shape {shape_text(shape)}")
    check_finite(piece, "dout", dout)
    return dout


def _check_mask(piece: str, mask: Any, scores_shape: tuple[int, ...]) -> Array | None:
    """Validate a boolean mask against the scores' shape (..., Tq, Tk); return it as an array.

    The mask must broadcast to the scores without enlarging them, and every query row
    must keep at least one key.
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(
            f"{piece}: mask must be boolean (True = may attend), got dtype {m.dtype}; "
            f"additive float masks are not used here, masking is by exclusion"
        )
    try:
        ok = np.broadcast_shapes(m.shape, scores_shape) == tuple(scores_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{piece}: mask has shape {m.shape}, which does not broadcast to the scores' shape {tuple(scores_shape)} "
            f"(..., Tq, Tk); for single-head (B, Tq, Tk) scores use padding_mask(..., heads=False)"
        )
    rows = m.any(axis=-1)  # a fully masked row of the broadcast mask is one of `m`
    if not rows.all():
        bad = tuple(int(i) for i in np.argwhere(~np.asarray(rows))[0]) if rows.ndim else ()
        raise ValueError(
            f"{piece}: the mask leaves query row {list(bad)} (mask index, leading axes then query position) "
            f"with no key it may attend to; a softmax over no keys is undefined"
        )
    return m


def _check_qkv(piece: str, q: Array, k: Array, v: Array) -> None:
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim < 2:
            raise ValueError(f"{piece}: {name} must have shape (..., T, d) with at least 2 axes, got {a.shape}")
        if 0 in a.shape:
            raise ValueError(f"{piece}: {name} has an empty axis, shape {a.shape}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            f"{piece}: q, k, v must share their leading axes, got q {q.shape}, k {k.shape}, v {v.shape}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{piece}: q has shape {q.shape} and k has shape {k.shape}: their last axes (d) must agree")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{piece}: k has shape {k.shape} and v has shape {v.shape}: their key axes (Tk) must agree")


# ============================================================================ attention, manual
# Layout note. The manual path keeps the scores *transposed*, St = S^T of shape (..., Tk, Tq):
# the softmax then reduces over axis -2, which numpy does with contiguous rows (several
# times faster than reducing each short row over the last axis), and the broadcasts of
# the per-query max and sum run along contiguous memory too. `weights` gives P itself as
# a (free) transposed view. The 1/sqrt(d) is folded into q once, (Tq, d), instead of into
# the (Tq, Tk) scores.


@dataclass(frozen=True)
class AttentionCache:
    """What `attention_forward` keeps for `attention_backward` (k, v and out are not copied)."""

    qs: Array  # q / sqrt(d), (..., Tq, d)
    k: Array  # (..., Tk, d)
    v: Array  # (..., Tk, dv)
    Pt: Array  # P^T, (..., Tk, Tq); exactly 0 where masked
    out: Array  # (..., Tq, dv)
    scale: float  # 1 / sqrt(d)

    @property
    def weights(self) -> Array:
        """The attention weights P (..., Tq, Tk): a view, rows sum to 1."""
        return np.swapaxes(self.Pt, -1, -2)


def _sum_rows_t(Et: Array) -> Array:
    """Column sums of each (Tk, Tq) slice, (..., 1, Tq), as a ones-vector product (BLAS)."""
    ones = np.ones((1, Et.shape[-2]), dtype=Et.dtype)
    return np.matmul(ones, Et)  # (..., 1, Tq)


def _rowdot(a: Array, b: Array) -> Array:
    """sum_c a[..., i, c] b[..., i, c] as (..., 1, Tq), via a ones-vector product (BLAS)."""
    prod = a * b  # (..., Tq, c)
    ones = np.ones(prod.shape[-1], dtype=prod.dtype)
    return (prod.reshape(-1, prod.shape[-1]) @ ones).reshape(prod.shape[:-2] + (1, prod.shape[-2]))


def _shift_free_limit(dtype: np.dtype) -> float:
    """Scores within +-L need no max-subtraction: with L = ln(max float) / 2, exp(L) times
    any feasible Tk stays finite and exp(-L) is still a normal number (full precision).
    float32: L = 44.4, float64: L = 354.9."""
    return 0.5 * math.log(float(np.finfo(dtype).max))


def _mask_t(mask: Array, dtype: Any = None) -> Array:
    """The mask transposed to the scores' (..., Tk, Tq) layout, C-contiguous (a transposed
    view would make the broadcast ops over the scores about twice as slow)."""
    mt = np.swapaxes(mask, -1, -2)
    return np.ascontiguousarray(mt) if dtype is None else mt.astype(dtype, order="C")


#: The manual path works through the leading axis in chunks whose (Tk, Tq) score blocks
#: total about this many bytes, so that the softmax's passes over a block find it still
#: in the core's L2 cache and the backward's scratch block is allocated once. (About 1.4x
#: faster than whole-batch passes at B=16, H=4, T=64; see benchmarks/attention.py.)
CHUNK_BYTES = 1 << 18


def _chunks(shape: tuple[int, ...], item_bytes: int) -> list[Any]:
    """Index expressions that split the leading axis of a (..., Tk, Tq) array into chunks."""
    if len(shape) == 2:
        return [Ellipsis]
    per_item = item_bytes * math.prod(shape[1:])
    n = max(1, min(shape[0], CHUNK_BYTES // max(per_item, 1)))
    return [slice(i, min(i + n, shape[0])) for i in range(0, shape[0], n)]


def _chunk_of(mt: Array | None, c: Any, ndim: int) -> Array | None:
    """The part of a (broadcasting) transposed mask that goes with chunk `c` of the scores."""
    if mt is None or c is Ellipsis or mt.ndim < ndim or mt.shape[0] == 1:
        return mt
    return mt[c]


def _attend(qs: Array, k: Array, v: Array, mask: Array | None, out: Array | None = None) -> tuple[Array, Array]:
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


def attention_forward(q: Array, k: Array, v: Array, mask: Array | None = None) -> tuple[Array, AttentionCache]:
    """out = softmax(q k^T / sqrt(d) restricted to the mask) v, and the cache for backward.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> out (..., Tq, dv). `mask` is boolean,
    True where attention is allowed, broadcastable against (..., Tq, Tk). Row i of the
    weights is

        P_ij = exp(S_ij - m_i) / sum_{l allowed} exp(S_il - m_i)   for allowed j,  0 otherwise,
        S = q k^T / sqrt(d),   m_i = max_{l allowed} S_il

    (subtracting m_i changes nothing mathematically and keeps exp from overflowing; the
    code skips it when every score is already small enough, see `_attend`). The dtype is
    the inputs' common floating dtype (float32 stays float32). The weights are
    `attention_weights(cache)`.
    """
    q, k, v = (_real_array("attention", n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    dt = _float_dtype(q, k, v)
    q, k, v = (np.asarray(a, dtype=dt) for a in (q, k, v))
    _check_qkv("attention", q, k, v)
    for name, a in (("q", q), ("k", k), ("v", v)):
        check_finite("attention", name, a)
    m = _check_mask("attention", mask, q.shape[:-1] + (k.shape[-2],))
    scale = 1.0 / math.sqrt(q.shape[-1])
    qs = q * dt.type(scale)  # (..., Tq, d)
    out, Pt = _attend(qs, k, v, m)
    return out, AttentionCache(qs=qs, k=k, v=v, Pt=Pt, out=out, scale=scale)


def _attend_backward(
    dout: Array, qs: Array, k: Array, v: Array, Pt: Array, out: Array, scale: float,
    dq: Array | None = None, dk: Array | None = None, dv: Array | None = None,
) -> tuple[Array, Array, Array]:
    """(dq, dk, dv); each written into the given array if any (MHA passes views of one buffer)."""
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


def attention_backward(dout: Array, cache: AttentionCache) -> tuple[Array, Array, Array]:
    """(dq, dk, dv) of attention from dout = dL/dout (..., Tq, dv).

    Forward: S = s Q K^T (s = 1/sqrt(d)),  P = softmax(S) row by row over allowed keys,
    O = P V. Backward, with dX meaning dL/dX:

        O = P V              =>  dV = P^T dO,            dP = dO V^T
        P_ik = e^{S_ik}/Z_i  =>  dP_ik/dS_ij = P_ik (delta_kj - P_ij)
                             =>  dS_ij = sum_k dP_ik P_ik (delta_kj - P_ij)
                                       = P_ij (dP_ij - sum_k P_ik dP_ik)
                             i.e. dS = P * (dP - sum(dP * P, axis=-1, keepdims=True))
        S = s Q K^T          =>  dQ = s dS K,            dK = s dS^T Q = dS^T (s Q)

    The row sum needs no (Tq, Tk) product: sum_k P_ik dP_ik = sum_k P_ik (dO_i . V_k)
    = dO_i . O_i. A masked entry has P_ij = 0, hence dS_ij = 0 exactly: nothing flows to
    the excluded keys through that position. Everything comes from the cache (P, O, s Q);
    nothing is recomputed. The code works on the transposes P^T, dS^T (layout note above).
    """
    dout = _dout("attention", dout, cache.out.shape, cache.out.dtype)
    return _attend_backward(dout, cache.qs, cache.k, cache.v, cache.Pt, cache.out, cache.scale)


# ============================================================================ attention, loops
def _attend_loops_2d(
    q: Nested, k: Nested, v: Nested, allowed: list[list[bool]] | None, scale: float, lead: tuple[int, ...],
    trace: dict[str, list] | None = None,
) -> tuple[list, list]:
    """One (Tq, d) x (Tk, d) x (Tk, dv) attention, every dot product a loop over scalars."""
    Tq, Tk, d, dv = len(q), len(k), len(q[0]), len(v[0])
    out, weights = [], []
    for i in range(Tq):
        # scores of the allowed keys only: masked keys are excluded, not penalised
        scores = []  # (j, S_ij)
        for j in range(Tk):
            if allowed is not None and not allowed[i][j]:
                continue
            s = q[i][0] * k[j][0]
            for c in range(1, d):
                s = s + q[i][c] * k[j][c]
            scores.append((j, s * scale))
        if not scores:
            raise ValueError(f"attention: query row {list(lead) + [i]} has no key it may attend to")
        # the shift is a constant (data only): softmax does not depend on it, it only
        # keeps exp from overflowing
        shift = max(data_of(s) for _, s in scores)
        exps = [(j, exp(s - shift)) for j, s in scores]
        z = exps[0][1]
        for _, e in exps[1:]:
            z = z + e
        row_w: list[Any] = [0.0] * Tk
        for j, e in exps:
            row_w[j] = e / z
        out_row = []
        for c in range(dv):
            j0 = exps[0][0]
            acc = row_w[j0] * v[j0][c]
            for j, _ in exps[1:]:
                acc = acc + row_w[j] * v[j][c]
            out_row.append(acc)
        out.append(out_row)
        weights.append(row_w)
        if trace is not None:
            row_s: list[Any] = [None] * Tk
            row_e: list[Any] = [None] * Tk
            for (j, s_ij), (_, e_ij) in zip(scores, exps):
                row_s[j], row_e[j] = s_ij, e_ij
            trace.setdefault("scores", []).append(row_s)
            trace.setdefault("exps", []).append(row_e)
            trace.setdefault("sums", []).append(z)
    return out, weights


def attention_loops(q: Nested, k: Nested, v: Nested, mask: Any = None, return_weights: bool = False, trace: dict[str, list] | None = None) -> Any:
    """Attention on nested lists of floats or `engine.Value`s, loops all the way down.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) as nested lists; any number of
    leading axes (none, (B,), (B, H), ...) is handled by recursing over them. `mask` as
    in `attention_forward` (a boolean array or nested lists). Masked keys are skipped:
    their weight is the float 0.0 and no graph edge reaches them. Returns the output
    (..., Tq, dv), or (output, weights (..., Tq, Tk)) with `return_weights`.

    `trace`, for drawing and teaching, 2-D inputs only: a dict filled with the
    intermediate scalars, "scores" (the scaled S_ij, Tq x Tk, None where masked), "exps"
    (exp(S_ij - shift), same layout) and "sums" (the softmax denominators, one per query).
    """
    (q, qs), (k, ks), (v, vs) = (nested_input("attention", n, x) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    _check_qkv("attention", np.empty(qs, dtype=np.bool_), np.empty(ks, dtype=np.bool_), np.empty(vs, dtype=np.bool_))
    if trace is not None and len(qs) != 2:
        raise ValueError(f"attention: trace needs 2-D (T, d) inputs, q has shape {qs}")
    m = _check_mask("attention", mask, qs[:-1] + (ks[-2],))
    allowed = None if m is None else np.broadcast_to(m, qs[:-1] + (ks[-2],)).tolist()
    scale = 1.0 / math.sqrt(qs[-1])

    def rec(q: Nested, k: Nested, v: Nested, allowed: Any, depth: int, lead: tuple[int, ...]) -> tuple[list, list]:
        if depth == 2:
            return _attend_loops_2d(q, k, v, allowed, scale, lead, trace)
        outs, ws = [], []
        for b in range(len(q)):
            o, w = rec(q[b], k[b], v[b], None if allowed is None else allowed[b], depth - 1, lead + (b,))
            outs.append(o)
            ws.append(w)
        return outs, ws

    out, weights = rec(q, k, v, allowed, len(qs), ())
    return (out, weights) if return_weights else out


# ============================================================================ multi-head attention
def init_mha_params(d_model: int, n_heads: int, rng: np.random.Generator, bias: bool = True, dtype: Any = np.float64) -> dict[str, Array]:
    """Parameters of multi-head attention: Wq, Wk, Wv, Wo (C, C) and, with `bias`, bq, bk, bv, bo (C,).

    Weights ~ N(0, 1/C): with unit-variance inputs each projection's outputs have unit
    variance. Biases start at zero.
    """
    _check_heads("init_mha_params", d_model, n_heads)
    std = 1.0 / math.sqrt(d_model)
    params = {n: (rng.standard_normal((d_model, d_model)) * std).astype(dtype) for n in ("Wq", "Wk", "Wv", "Wo")}
    if bias:
        params.update({n: np.zeros(d_model, dtype=dtype) for n in ("bq", "bk", "bv", "bo")})
    return params


def _check_heads(piece: str, d_model: int, n_heads: Any) -> int:
    if not isinstance(n_heads, (int, np.integer)) or isinstance(n_heads, bool) or n_heads < 1:
        raise ValueError(f"{piece}: n_heads must be a positive integer, got {n_heads!r}")
    if d_model % n_heads:
        raise ValueError(f"{piece}: d_model={d_model} is not divisible by n_heads={n_heads}")
    return int(n_heads)


_W_NAMES = ("Wq", "Wk", "Wv", "Wo")
_B_NAMES = ("bq", "bk", "bv", "bo")


def _check_mha_shapes(piece: str, xq_shape: tuple, xkv_shape: tuple, W_shapes: Sequence[tuple], b_shapes: Sequence[tuple | None], n_heads: Any) -> int:
    if len(xq_shape) != 3:
        raise ValueError(f"{piece}: xq must have shape (B, Tq, C), got {xq_shape}")
    if len(xkv_shape) != 3:
        raise ValueError(f"{piece}: xkv must have shape (B, Tk, C), got {xkv_shape}")
    if 0 in xq_shape or 0 in xkv_shape:
        raise ValueError(f"{piece}: empty axis in xq {xq_shape} or xkv {xkv_shape}")
    if xq_shape[0] != xkv_shape[0] or xq_shape[2] != xkv_shape[2]:
        raise ValueError(f"{piece}: xq has shape {xq_shape} and xkv has shape {xkv_shape}: B and C must agree")
    C = xq_shape[2]
    for name, s in zip(_W_NAMES, W_shapes):
        if s != (C, C):
            raise ValueError(f"{piece}: {name} must have shape (C, C) = {(C, C)} for inputs of width C={C}, got {s}")
    for name, s in zip(_B_NAMES, b_shapes):
        if s is not None and s != (C,):
            raise ValueError(f"{piece}: {name} must have shape (C,) = {(C,)}, got {s}")
    return _check_heads(piece, C, n_heads)


@dataclass(frozen=True)
class MHACache:
    """What `mha_forward` keeps for `mha_backward`.

    The projections that share an input are done as one product with their weights side
    by side: self-attention x [Wq | Wk | Wv], cross-attention xq Wq and xkv [Wk | Wv].
    `groups` lists them as (x2 (B*T, C), W_cat (C, nC), which of q/k/v (0, 1, 2)).
    """

    groups: tuple[tuple[Array, Array, tuple[int, ...]], ...]
    has_bias: tuple[bool, bool, bool, bool]  # bq, bk, bv, bo given
    B: int
    Tq: int
    Tk: int
    Wo: Array  # (C, C)
    Qs: Array  # queries / sqrt(D), heads split, (B, H, Tq, D)
    Kh: Array  # (B, H, Tk, D)
    Vh: Array  # (B, H, Tk, D)
    Oh: Array  # per-head outputs (B, H, Tq, D)
    O: Array  # heads concatenated, the input of the output projection, (B*Tq, C)
    Pt: Array  # P^T, (B, H, Tk, Tq)
    scale: float

    @property
    def weights(self) -> Array:
        """The attention weights P (B, H, Tq, Tk): a view, rows sum to 1."""
        return np.swapaxes(self.Pt, -1, -2)


def attention_weights(cache: AttentionCache | MHACache) -> Array:
    """The attention weights a forward pass used: (..., Tq, Tk), or (B, H, Tq, Tk) for MHA."""
    return cache.weights


def _project_heads(x2: Array, W_cat: Array, b_cat: Array | None, B: int, T: int, H: int) -> Array:
    """x2 (B*T, C) @ W_cat (C, n*C) + b_cat -> n projections split into heads, (n, B, H, T, D).

    One product for all n projections of the same input; the result is copied once into
    head-major contiguous memory, on which the per-head products run about twice as fast
    as on a strided view.
    """
    Y = x2 @ W_cat  # (B*T, n*C)
    if b_cat is not None:
        Y += b_cat
    n = W_cat.shape[1] // x2.shape[1]
    return np.ascontiguousarray(Y.reshape(B, T, n, H, -1).transpose(2, 0, 3, 1, 4))  # (n, B, H, T, D)


def mha_forward(
    xq: Array,
    xkv: Array,
    Wq: Array,
    Wk: Array,
    Wv: Array,
    Wo: Array,
    bq: Array | None = None,
    bk: Array | None = None,
    bv: Array | None = None,
    bo: Array | None = None,
    *,
    n_heads: int,
    mask: Array | None = None,
) -> tuple[Array, MHACache]:
    """Multi-head attention: queries from xq (B, Tq, C), keys and values from xkv (B, Tk, C).

        Q = xq Wq + bq,   K = xkv Wk + bk,   V = xkv Wv + bv            (B, T, C)
        split C into H heads of D = C / H:  Qh, Kh, Vh                   (B, H, T, D)
        Oh = attention(Qh, Kh, Vh, mask)                                 (B, H, Tq, D)
        O  = concat of the heads                                         (B, Tq, C)
        out = O Wo + bo                                                  (B, Tq, C)

    Each bias is optional (None: no bias). `mask` broadcasts against (B, H, Tq, Tk):
    `causal_mask(T)` (Tq, Tk) and `padding_mask(lengths)` (B, 1, 1, Tk) both fit. Passing
    the same array object as xq and xkv is self-attention (one fused projection; see also
    `self_attention_forward`). The weights are in the cache (`attention_weights(cache)`,
    shape (B, H, Tq, Tk)).
    """
    piece = "mha"
    xq_a, xkv_a = _real_array(piece, "xq", xq), _real_array(piece, "xkv", xkv)
    Ws = [_real_array(piece, n, W) for n, W in zip(_W_NAMES, (Wq, Wk, Wv, Wo))]
    bs = [None if b is None else _real_array(piece, n, b) for n, b in zip(_B_NAMES, (bq, bk, bv, bo))]
    dt = _float_dtype(xq_a, xkv_a, *Ws, *(b for b in bs if b is not None))
    same = xkv is xq
    xq_a = np.asarray(xq_a, dtype=dt)
    xkv_a = xq_a if same else np.asarray(xkv_a, dtype=dt)
    Ws = [np.asarray(W, dtype=dt) for W in Ws]
    bs = [None if b is None else np.asarray(b, dtype=dt) for b in bs]
    H = _check_mha_shapes(piece, xq_a.shape, xkv_a.shape, [W.shape for W in Ws], [None if b is None else b.shape for b in bs], n_heads)
    named = [("xq", xq_a)] + ([] if same else [("xkv", xkv_a)]) + list(zip(_W_NAMES, Ws))
    for name, a in named + [(n, b) for n, b in zip(_B_NAMES, bs) if b is not None]:
        check_finite(piece, name, a)
    B, Tq, C = xq_a.shape
    Tk = xkv_a.shape[1]
    m = _check_mask(piece, mask, (B, H, Tq, Tk))
    scale = 1.0 / math.sqrt(C // H)

    # (B*T, C): one product per input instead of B small ones
    xq2, xkv2 = xq_a.reshape(B * Tq, C), xkv_a.reshape(B * Tk, C)
    plan = [(xq2, Tq, (0, 1, 2))] if same else [(xq2, Tq, (0,)), (xkv2, Tk, (1, 2))]
    groups, heads = [], []
    for x2, T, which in plan:
        W_cat = Ws[which[0]] if len(which) == 1 else np.concatenate([Ws[i] for i in which], axis=1)  # (C, n*C)
        has_b = any(bs[i] is not None for i in which)
        b_cat = np.concatenate([bs[i] if bs[i] is not None else np.zeros(C, dt) for i in which]) if has_b else None
        heads.extend(_project_heads(x2, W_cat, b_cat, B, T, H))  # n x (B, H, T, D)
        groups.append((x2, W_cat, which))
    Qs, Kh, Vh = heads
    Qs *= dt.type(scale)  # fold 1/sqrt(D) into the queries (in place, (B, H, Tq, D))
    O = np.empty((B, Tq, H, C // H), dtype=dt)  # heads side by side: concat(Oh) is a reshape
    Oh, Pt = _attend(Qs, Kh, Vh, m, out=O.transpose(0, 2, 1, 3))  # (B, H, Tq, D) view, (B, H, Tk, Tq)
    O = O.reshape(B * Tq, C)
    out = O @ Ws[3]  # (B*Tq, C)
    if bs[3] is not None:
        out += bs[3]
    cache = MHACache(
        groups=tuple(groups), has_bias=tuple(b is not None for b in bs), B=B, Tq=Tq, Tk=Tk, Wo=Ws[3],  # type: ignore[arg-type]
        Qs=Qs, Kh=Kh, Vh=Vh, Oh=Oh, O=O, Pt=Pt, scale=scale,
    )
    return out.reshape(B, Tq, C), cache


def _mha_backward(dout: Array, cache: MHACache, fuse_x: bool, piece: str = "mha") -> tuple[Array | None, ...]:
    """mha_backward's work; with `fuse_x` (self-attention) it returns dx = dxq + dxkv once.
    `piece` names the caller in error messages."""
    B, Tq, Tk = cache.B, cache.Tq, cache.Tk
    Wo = cache.Wo
    C = Wo.shape[0]
    H = cache.Qs.shape[1]
    dt = cache.O.dtype
    dout = _dout(piece, dout, (B, Tq, C), dt)
    dout2 = dout.reshape(B * Tq, C)
    dWo = cache.O.T @ dout2  # (C, C)
    dbo = np.ones(B * Tq, dt) @ dout2 if cache.has_bias[3] else None  # column sums, (C,)
    dOh = np.ascontiguousarray((dout2 @ Wo.T).reshape(B, Tq, H, -1).transpose(0, 2, 1, 3))  # (B, H, Tq, D)
    # The gradients of each group's projections, heads side by side, as the projection's
    # product made them: (B, T, n, H, D). The attention backward writes into head views.
    dYs = [np.empty((B, Tq if which[0] == 0 else Tk, len(which), H, C // H), dtype=dt) for _, _, which in cache.groups]
    dviews = [dY[:, :, j].transpose(0, 2, 1, 3) for dY, (_, _, which) in zip(dYs, cache.groups) for j in range(len(which))]
    _attend_backward(dOh, cache.Qs, cache.Kh, cache.Vh, cache.Pt, cache.Oh, cache.scale, *dviews)  # (B, H, T, D) each
    dW: list[Array | None] = [None, None, None]
    db: list[Array | None] = [None, None, None]
    dxs = []
    for dY, (x2, W_cat, which) in zip(dYs, cache.groups):
        dY = dY.reshape(x2.shape[0], -1)  # (B*T, n*C)
        dW_cat = x2.T @ dY  # (C, n*C)
        has_b = [cache.has_bias[i] for i in which]
        db_cat = np.ones(x2.shape[0], dt) @ dY if any(has_b) else None  # column sums, (n*C,)
        for j, i in enumerate(which):
            dW[i] = np.ascontiguousarray(dW_cat[:, j * C:(j + 1) * C])
            if has_b[j]:  # a bias absent in forward stays None
                db[i] = db_cat[j * C:(j + 1) * C].copy()  # type: ignore[index]
        if fuse_x or len(which) < 3:
            # one product sums the contributions of every projection of this input:
            # dx = sum_i dY_i W_i^T = [dY_1 | dY_2 | ...] [W_1 | W_2 | ...]^T
            dxs.append(dY @ W_cat.T)  # (B*T, C)
        else:
            dxs.append(dY[:, :C] @ W_cat[:, :C].T)  # dxq
            dxs.append(dY[:, C:] @ W_cat[:, C:].T)  # dxkv = dK Wk^T + dV Wv^T
    if fuse_x:
        return (dxs[0].reshape(B, Tq, C), *dW, dWo, *db, dbo)
    dxq, dxkv = dxs
    return (dxq.reshape(B, Tq, C), dxkv.reshape(B, Tk, C), *dW, dWo, *db, dbo)


def mha_backward(dout: Array, cache: MHACache) -> tuple[Array | None, ...]:
    """(dxq, dxkv, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo); a bias absent in forward gets None.

    With 2-D views X2 = X reshaped to (B*T, C) and dX meaning dL/dX:

        out = O Wo + bo        =>  dWo = O^T dout,   dbo = sum_rows dout,   dO = dout Wo^T
        O = concat(Oh)         =>  dOh = split(dO)
        Oh = attention(...)    =>  dQh, dKh, dVh as in `attention_backward` (softmax Jacobian there)
        Q = xq Wq + bq         =>  dWq = xq^T dQ,    dbq = sum_rows dQ,     dxq = dQ Wq^T
        K = xkv Wk + bk        =>  dWk = xkv^T dK,   dbk = sum_rows dK
        V = xkv Wv + bv        =>  dWv = xkv^T dV,   dbv = sum_rows dV
                                   dxkv = dK Wk^T + dV Wv^T   (two paths: summed)

    Projections that forward fused are differentiated fused too: [dK | dV] and
    [Wk | Wv] side by side make dxkv one product, whose inner sum adds the two paths.
    Column sums (the bias gradients) are ones-vector products.
    """
    return _mha_backward(dout, cache, fuse_x=False)


def _linear_loops(x: Nested, W: Nested, b: Nested | None) -> list:
    """(T, C_in) rows times W (C_in, C_out) plus b, one scalar product at a time."""
    n_in, n_out = len(W), len(W[0])
    rows = []
    for xt in x:
        row = []
        for o in range(n_out):
            acc = xt[0] * W[0][o]
            for c in range(1, n_in):
                acc = acc + xt[c] * W[c][o]
            row.append(acc if b is None else acc + b[o])
        rows.append(row)
    return rows


def mha_loops(
    xq: Nested,
    xkv: Nested,
    Wq: Nested,
    Wk: Nested,
    Wv: Nested,
    Wo: Nested,
    bq: Nested | None = None,
    bk: Nested | None = None,
    bv: Nested | None = None,
    bo: Nested | None = None,
    *,
    n_heads: int,
    mask: Any = None,
    return_weights: bool = False,
) -> Any:
    """Multi-head attention on nested lists of floats or Values (same math as `mha_forward`).

    xq (B, Tq, C), xkv (B, Tk, C) -> (B, Tq, C); with `return_weights`, (out, weights
    (B, H, Tq, Tk)). Head h owns columns h*D .. (h+1)*D - 1 of Q, K, V and O.
    """
    piece = "mha"
    (xq, sq), (xkv, skv) = nested_input(piece, "xq", xq), nested_input(piece, "xkv", xkv)
    (Wq, Wk, Wv, Wo), W_shapes = zip(*(nested_input(piece, n, W) for W, n in zip((Wq, Wk, Wv, Wo), _W_NAMES)))
    checked_b = [None if b is None else nested_input(piece, n, b) for b, n in zip((bq, bk, bv, bo), _B_NAMES)]
    bq, bk, bv, bo = (None if c is None else c[0] for c in checked_b)
    b_shapes = [None if c is None else c[1] for c in checked_b]
    H = _check_mha_shapes(piece, sq, skv, W_shapes, b_shapes, n_heads)
    B, Tq, C = sq
    Tk = skv[1]
    D = C // H
    m = _check_mask(piece, mask, (B, H, Tq, Tk))
    allowed = None if m is None else np.broadcast_to(m, (B, H, Tq, Tk)).tolist()
    out, weights = [], []
    for b in range(B):
        Q = _linear_loops(xq[b], Wq, bq)  # (Tq, C)
        K = _linear_loops(xkv[b], Wk, bk)  # (Tk, C)
        V = _linear_loops(xkv[b], Wv, bv)  # (Tk, C)
        O: list[list[Any]] = [[] for _ in range(Tq)]  # (Tq, C), filled head by head
        w_b = []
        for h in range(H):
            cols = slice(h * D, (h + 1) * D)
            Oh, Ph = _attend_loops_2d(
                [r[cols] for r in Q], [r[cols] for r in K], [r[cols] for r in V],
                None if allowed is None else allowed[b][h], 1.0 / math.sqrt(D), (b, h),
            )
            for t in range(Tq):
                O[t].extend(Oh[t])  # concatenate heads
            w_b.append(Ph)
        out.append(_linear_loops(O, Wo, bo))  # (Tq, C)
        weights.append(w_b)
    return (out, weights) if return_weights else out


# ---------------------------------------------------------------------------- no-bias variant
def mha_nobias_loops(xq: Nested, xkv: Nested, Wq: Nested, Wk: Nested, Wv: Nested, Wo: Nested, *, n_heads: int, mask: Any = None) -> Any:
    """`mha_loops` without biases (the registry's "mha_nobias")."""
    return mha_loops(xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def mha_nobias_forward(xq: Array, xkv: Array, Wq: Array, Wk: Array, Wv: Array, Wo: Array, *, n_heads: int, mask: Array | None = None) -> tuple[Array, MHACache]:
    """`mha_forward` without biases."""
    return mha_forward(xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def mha_nobias_backward(dout: Array, cache: MHACache) -> tuple[Array, ...]:
    """(dxq, dxkv, dWq, dWk, dWv, dWo): `mha_backward` without the (absent) bias gradients."""
    return tuple(_mha_backward(dout, cache, fuse_x=False, piece="mha_nobias")[:6])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- self-attention
def self_attention_loops(x: Nested, Wq: Nested, Wk: Nested, Wv: Nested, Wo: Nested, bq: Nested | None = None, bk: Nested | None = None, bv: Nested | None = None, bo: Nested | None = None, *, n_heads: int, mask: Any = None) -> Any:
    """`mha_loops` with queries, keys and values all from x (B, T, C)."""
    return mha_loops(x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


def self_attention_forward(x: Array, Wq: Array, Wk: Array, Wv: Array, Wo: Array, bq: Array | None = None, bk: Array | None = None, bv: Array | None = None, bo: Array | None = None, *, n_heads: int, mask: Array | None = None) -> tuple[Array, MHACache]:
    """Self-attention: `mha_forward` with xq = xkv = x (B, T, C). Usually with `causal_mask(T)`."""
    x = _real_array("self_attention", "x", x)
    return mha_forward(x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


def self_attention_backward(dout: Array, cache: MHACache) -> tuple[Array | None, ...]:
    """(dx, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo).

    x feeds the queries, the keys and the values, so by the multivariable chain rule its
    gradient is the sum of the three paths, dx = dQ Wq^T + dK Wk^T + dV Wv^T = dxq + dxkv,
    computed as one product [dQ | dK | dV] [Wq | Wk | Wv]^T.
    """
    if len(cache.groups) != 1:
        raise ValueError("self_attention_backward: the cache comes from a cross-attention forward (xq is not xkv)")
    return _mha_backward(dout, cache, fuse_x=True, piece="self_attention")


# ============================================================================ registry
def _attention_case(q_shape: tuple, Tk: int, dv: int, mask_fn: Any = None) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        lead, d = q_shape[:-2], q_shape[-1]
        inputs = {
            "q": rng.standard_normal(q_shape),
            "k": rng.standard_normal(lead + (Tk, d)),
            "v": rng.standard_normal(lead + (Tk, dv)),
        }
        return inputs, ({} if mask_fn is None else {"mask": mask_fn()})

    return make


# ---------------------------------------------------------------------------- torch referees
# The same functions in torch ops, for tests/nn/test_torch_referee.py (see `nn.registry.Piece`):
# the caller passes the torch module in (nothing here imports it) and the boolean masks as
# bool tensors. torch's scaled_dot_product_attention takes a boolean attn_mask with our
# meaning (True = may attend) and broadcasts it against the scores (..., Tq, Tk) as we do.
def _attention_torch(torch: Any, q: Any, k: Any, v: Any, mask: Any = None) -> Any:
    """softmax(q k^T / sqrt(d) | mask) v by F.scaled_dot_product_attention."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _mha_torch(
    torch: Any, xq: Any, xkv: Any, Wq: Any, Wk: Any, Wv: Any, Wo: Any,
    bq: Any = None, bk: Any = None, bv: Any = None, bo: Any = None, *, n_heads: int, mask: Any = None,
) -> Any:
    """Multi-head attention from torch matmuls and F.scaled_dot_product_attention, per head."""
    B, Tq, C = xq.shape
    Tk = xkv.shape[1]
    D = C // n_heads

    def heads(x: Any, W: Any, b: Any, T: int) -> Any:
        y = x @ W if b is None else x @ W + b  # (B, T, C)
        return y.reshape(B, T, n_heads, D).transpose(1, 2)  # (B, H, T, D)

    Oh = torch.nn.functional.scaled_dot_product_attention(
        heads(xq, Wq, bq, Tq), heads(xkv, Wk, bk, Tk), heads(xkv, Wv, bv, Tk), attn_mask=mask
    )  # (B, H, Tq, D)
    O = Oh.transpose(1, 2).reshape(B, Tq, C)  # heads side by side
    return O @ Wo if bo is None else O @ Wo + bo  # (B, Tq, C)


def _mha_nobias_torch(torch: Any, xq: Any, xkv: Any, Wq: Any, Wk: Any, Wv: Any, Wo: Any, *, n_heads: int, mask: Any = None) -> Any:
    return _mha_torch(torch, xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def _self_attention_torch(
    torch: Any, x: Any, Wq: Any, Wk: Any, Wv: Any, Wo: Any,
    bq: Any = None, bk: Any = None, bv: Any = None, bo: Any = None, *, n_heads: int, mask: Any = None,
) -> Any:
    # one leaf x feeds all three projections: autograd sums the three paths into x.grad
    return _mha_torch(torch, x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


register(
    Piece(
        name="attention",
        loops=attention_loops,
        forward=attention_forward,
        backward=attention_backward,
        cases=(
            Case("no_mask", _attention_case((2, 3, 4), Tk=5, dv=3)),
            Case("causal", _attention_case((1, 4, 3), Tk=4, dv=3, mask_fn=lambda: causal_mask(4))),
            Case("padding", _attention_case((2, 3, 4), Tk=4, dv=2, mask_fn=lambda: padding_mask([4, 2], heads=False))),
            Case("T1", _attention_case((1, 1, 2), Tk=1, dv=2)),
            Case("odd_2d", _attention_case((3, 5), Tk=7, dv=3)),
            Case("heads_causal_4d", _attention_case((2, 2, 3, 2), Tk=3, dv=2, mask_fn=lambda: causal_mask(3))),
        ),
        description="scaled dot-product attention softmax(q k^T / sqrt(d) | mask) v, masks by exclusion",
        torch=_attention_torch,
        tags=("attention",),
    )
)


def _mha_case(B: int, Tq: int, Tk: int, C: int, H: int, *, self_attn: bool = False, bias: bool = True, mask: str = "") -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        xq = rng.standard_normal((B, Tq, C))
        # self-attention: the same values in two separate inputs, so each gradient is checked
        xkv = xq.copy() if self_attn else rng.standard_normal((B, Tk, C))
        inputs = {"xq": xq, "xkv": xkv}
        inputs.update({n: rng.standard_normal((C, C)) / math.sqrt(C) for n in _W_NAMES})
        if bias:
            inputs.update({n: 0.1 * rng.standard_normal(C) for n in _B_NAMES})
        static: dict[str, Any] = {"n_heads": H}
        if mask == "causal":
            static["mask"] = causal_mask(Tq, Tk)
        elif mask == "padding":
            static["mask"] = padding_mask(np.arange(Tk, Tk - B, -1) if B <= Tk else np.full(B, Tk), Tk)
        return inputs, static

    return make


register(
    Piece(
        name="mha",
        loops=mha_loops,
        forward=mha_forward,
        backward=mha_backward,
        cases=(
            Case("self_causal", _mha_case(2, 4, 4, 4, 2, self_attn=True, mask="causal")),
            Case("cross_padding", _mha_case(2, 2, 5, 6, 3, mask="padding")),
            Case("T1", _mha_case(1, 1, 1, 2, 2)),
            Case("odd", _mha_case(3, 3, 5, 6, 2)),
        ),
        description="multi-head attention with projections Wq Wk Wv Wo and biases (y = x @ W + b)",
        torch=_mha_torch,
        tags=("attention",),
    )
)

register(
    Piece(
        name="mha_nobias",
        loops=mha_nobias_loops,
        forward=mha_nobias_forward,
        backward=mha_nobias_backward,
        cases=(
            Case("self_causal", _mha_case(1, 3, 3, 4, 2, self_attn=True, bias=False, mask="causal")),
            Case("cross", _mha_case(2, 3, 2, 3, 1, bias=False)),
        ),
        description="multi-head attention without biases",
        torch=_mha_nobias_torch,
        tags=("attention",),
    )
)


def _self_attention_case(B: int, T: int, C: int, H: int) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        inputs = {"x": rng.standard_normal((B, T, C))}
        inputs.update({n: rng.standard_normal((C, C)) / math.sqrt(C) for n in _W_NAMES})
        inputs.update({n: 0.1 * rng.standard_normal(C) for n in _B_NAMES})
        return inputs, {"n_heads": H, "mask": causal_mask(T)}

    return make


register(
    Piece(
        name="self_attention",
        loops=self_attention_loops,
        forward=self_attention_forward,
        backward=self_attention_backward,
        cases=(Case("causal", _self_attention_case(2, 3, 4, 2)),),
        description="causal multi-head self-attention, x feeding queries, keys and values (dx = dxq + dxkv)",
        torch=_self_attention_torch,
        tags=("attention",),
    )
)


# ============================================================================ thin class
class MultiHeadAttention(Module):
    """Multi-head attention owning Wq, Wk, Wv, Wo (C, C) and, with `bias`, bq, bk, bv, bo (C,).

    `forward(xq, xkv=None, mask=None)` is self-attention when `xkv` is None, cross-attention
    otherwise; it caches for `backward(dout)`, which adds the parameter gradients into
    `self.grads` and returns (dxq, dxkv) (for self-attention, dx = dxq + dxkv, and dxkv is
    None). `weights` holds the last forward's attention weights (B, H, Tq, Tk).
    """

    def __init__(self, d_model: int, n_heads: int, rng: np.random.Generator | None = None, bias: bool = True) -> None:
        super().__init__()
        self.n_heads = _check_heads("MultiHeadAttention", d_model, n_heads)
        self.d_model = int(d_model)
        self.bias = bool(bias)
        params = init_mha_params(self.d_model, self.n_heads, rng if rng is not None else np.random.default_rng(), bias=self.bias)
        for name in _MHA_PARAM_NAMES:
            if name in params:
                self.add_param(name, params[name])
        self._cache: MHACache | None = None
        self._self_attention = False

    def _args(self) -> list[Array | None]:
        return [self.params.get(n) for n in _MHA_PARAM_NAMES]

    def forward(self, xq: Array, xkv: Array | None = None, mask: Array | None = None) -> Array:
        self._self_attention = xkv is None
        out, self._cache = mha_forward(xq, xq if xkv is None else xkv, *self._args(), n_heads=self.n_heads, mask=mask)
        return out

    @property
    def weights(self) -> Array:
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.weights read before forward")
        return self._cache.weights

    def backward(self, dout: Array) -> tuple[Array, Array | None]:
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.backward called before forward")
        dxq, dxkv, *dparams = mha_backward(dout, self._cache)
        for name, g in zip(_MHA_PARAM_NAMES, dparams):
            if g is not None:
                self.grads[name] += g
        if self._self_attention:
            return dxq + dxkv, None
        return dxq, dxkv


_MHA_PARAM_NAMES = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")
