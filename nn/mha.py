"""Multi-head attention (Vaswani et al. 2017, section 3.2.2), written two ways, and its class.

    Q = xq Wq + bq,   K = xkv Wk + bk,   V = xkv Wv + bv
    O = concat_h attention(Q_h, K_h, V_h, mask),   out = O Wo + bo

* `mha_loops`, `mha_nobias_loops`, `self_attention_loops`: loops over scalars (floats or
  `engine.Value`s), built from `nn.linear`'s loops and `nn.attention.attention_loops`.
* `mha_forward` / `mha_backward`, `mha_nobias_*`, `self_attention_*`: numpy, float64 by
  default, float32 in gives float32 out; the attention core is the fast kernel of
  `nn._attention_fast` (itself checked against the reference pair in `nn.attention`).
* numeric: through `nn.registry` (pieces "mha", "mha_nobias", "self_attention", registered
  with their cases and torch forms in `nn._attention_pieces`).
* `MultiHeadAttention`: the Module that owns Wq, Wk, Wv, Wo and the biases.
"""

# Shape legend
#     B    batch;  H heads
#     Tq   query positions;  Tk key/value positions (T for self-attention)
#     C    model width d_model;  D = C / H, the width of one head
#     xq (B, Tq, C)   xkv (B, Tk, C)   W* (C, C)   b* (C,)   heads (B, H, T, D)
#     weights (B, H, Tq, Tk)   out (B, Tq, C)

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from nn._attention_fast import FastAttentionCache, attend, attend_backward
from nn._checks import check_finite, check_mask, dout_array, fail, float_dtype, nested_input, positive_int, real_array
from nn.attention import AttentionCache, attention_loops
from nn.linear import linear_loops, matmul_loops
from nn.module import Module

Array = np.ndarray
Nested = Any  # nested lists of floats or engine.Values

WEIGHT_NAMES = ("Wq", "Wk", "Wv", "Wo")
BIAS_NAMES = ("bq", "bk", "bv", "bo")
PARAM_NAMES = WEIGHT_NAMES + BIAS_NAMES
#: mha_backward's (dxq, dxkv, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo): only an absent bias gives None
MHAGrads = tuple[Array, Array, Array, Array, Array, Array, Array | None, Array | None, Array | None, Array | None]
#: self_attention_backward's (dx, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo)
SelfAttentionGrads = tuple[Array, Array, Array, Array, Array, Array | None, Array | None, Array | None, Array | None]


# ============================================================================ parameters and checks
def init_mha_params(
    d_model: int, n_heads: int, rng: np.random.Generator, bias: bool = True, dtype: Any = np.float64
) -> dict[str, Array]:
    """Parameters of multi-head attention: Wq, Wk, Wv, Wo (C, C) and, with `bias`, bq, bk, bv, bo (C,).

    Weights ~ N(0, 1/C): with unit-variance inputs each projection's outputs have unit
    variance. Biases start at zero.
    """
    _check_heads("init_mha_params", d_model, n_heads)
    std = 1.0 / math.sqrt(d_model)
    params = {n: (rng.standard_normal((d_model, d_model)) * std).astype(dtype) for n in WEIGHT_NAMES}
    if bias:
        params.update({n: np.zeros(d_model, dtype=dtype) for n in BIAS_NAMES})
    return params


def _check_heads(piece: str, d_model: int, n_heads: Any) -> int:
    n_heads = positive_int(piece, "n_heads", n_heads)
    if d_model % n_heads:
        raise fail(piece, f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return n_heads


def _check_mha_shapes(
    piece: str,
    xq_shape: tuple,
    xkv_shape: tuple,
    W_shapes: Sequence[tuple],
    b_shapes: Sequence[tuple | None],
    n_heads: Any,
) -> int:
    """The shape rules both forms share; returns H."""
    if len(xq_shape) != 3:
        raise fail(piece, f"xq must have shape (B, Tq, C), got {xq_shape}")
    if len(xkv_shape) != 3:
        raise fail(piece, f"xkv must have shape (B, Tk, C), got {xkv_shape}")
    if 0 in xq_shape or 0 in xkv_shape:
        raise fail(piece, f"empty axis in xq {xq_shape} or xkv {xkv_shape}")
    if xq_shape[0] != xkv_shape[0] or xq_shape[2] != xkv_shape[2]:
        raise fail(piece, f"xq has shape {xq_shape} and xkv has shape {xkv_shape}: B and C must agree")
    C = xq_shape[2]
    for name, s in zip(WEIGHT_NAMES, W_shapes):
        if s != (C, C):
            raise fail(piece, f"{name} must have shape (C, C) = {(C, C)} for inputs of width C={C}, got {s}")
    for name, b_shape in zip(BIAS_NAMES, b_shapes):
        if b_shape is not None and b_shape != (C,):
            raise fail(piece, f"{name} must have shape (C,) = {(C,)}, got {b_shape}")
    return _check_heads(piece, C, n_heads)


# ============================================================================ loops
def _project_loops(x: Nested, W: Nested, b: Nested | None) -> list:
    """x (B, T, C) @ W (+ b) -> (B, T, C) on nested lists, by `nn.linear`'s loops forms."""
    if b is None:
        return [matmul_loops(xb, W) for xb in x]
    return linear_loops(x, W, b)


def _split_heads_loops(Y: list, H: int) -> list:
    """(B, T, C) -> (B, H, T, D): head h owns columns h*D .. (h+1)*D - 1."""
    D = len(Y[0][0]) // H
    return [[[row[h * D : (h + 1) * D] for row in Yb] for h in range(H)] for Yb in Y]


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
    (Wq, Wk, Wv, Wo), W_shapes = zip(*(nested_input(piece, n, W) for W, n in zip((Wq, Wk, Wv, Wo), WEIGHT_NAMES)))
    checked_b = [None if b is None else nested_input(piece, n, b) for b, n in zip((bq, bk, bv, bo), BIAS_NAMES)]
    bq, bk, bv, bo = (None if c is None else c[0] for c in checked_b)
    b_shapes = [None if c is None else c[1] for c in checked_b]
    H = _check_mha_shapes(piece, sq, skv, W_shapes, b_shapes, n_heads)
    B, Tq, _ = sq
    m = check_mask(piece, mask, (B, H, Tq, skv[1]))
    Q = _project_loops(xq, Wq, bq)  # (B, Tq, C)
    K = _project_loops(xkv, Wk, bk)  # (B, Tk, C)
    V = _project_loops(xkv, Wv, bv)  # (B, Tk, C)
    Oh, weights = attention_loops(
        _split_heads_loops(Q, H), _split_heads_loops(K, H), _split_heads_loops(V, H), mask=m, return_weights=True
    )  # (B, H, Tq, D), (B, H, Tq, Tk)
    O = [
        [[x for h in range(H) for x in Oh[b][h][t]] for t in range(Tq)] for b in range(B)
    ]  # heads side by side, (B, Tq, C)
    out = _project_loops(O, Wo, bo)  # (B, Tq, C)
    return (out, weights) if return_weights else out


def mha_nobias_loops(
    xq: Nested, xkv: Nested, Wq: Nested, Wk: Nested, Wv: Nested, Wo: Nested, *, n_heads: int, mask: Any = None
) -> Any:
    """`mha_loops` without biases (the registry's "mha_nobias")."""
    return mha_loops(xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def self_attention_loops(
    x: Nested,
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
) -> Any:
    """`mha_loops` with queries, keys and values all from x (B, T, C)."""
    return mha_loops(x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


# ============================================================================ manual pair
@dataclass(frozen=True)
class MHACache:
    """What `mha_forward` keeps for `mha_backward`.

    The projections that share an input are done as one product with their weights side
    by side: self-attention x [Wq | Wk | Wv], cross-attention xq Wq and xkv [Wk | Wv].
    `groups` lists them as (x2 (B*T, C), W_cat (C, nC), which of q/k/v (0, 1, 2)).
    """

    groups: tuple[tuple[Array, Array, tuple[int, ...]], ...]
    has_bias: tuple[bool, ...]  # (4,) bq, bk, bv, bo given
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


def attention_weights(cache: AttentionCache | FastAttentionCache | MHACache) -> Array:
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
    xq_a, xkv_a = real_array(piece, "xq", xq), real_array(piece, "xkv", xkv)
    Ws = [real_array(piece, n, W) for n, W in zip(WEIGHT_NAMES, (Wq, Wk, Wv, Wo))]
    bs = [None if b is None else real_array(piece, n, b) for n, b in zip(BIAS_NAMES, (bq, bk, bv, bo))]
    dt = float_dtype(xq_a, xkv_a, *Ws, *(b for b in bs if b is not None))
    same = xkv is xq
    xq_a = np.asarray(xq_a, dtype=dt)
    xkv_a = xq_a if same else np.asarray(xkv_a, dtype=dt)
    Ws = [np.asarray(W, dtype=dt) for W in Ws]
    bs = [None if b is None else np.asarray(b, dtype=dt) for b in bs]
    H = _check_mha_shapes(
        piece, xq_a.shape, xkv_a.shape, [W.shape for W in Ws], [None if b is None else b.shape for b in bs], n_heads
    )
    named = [("xq", xq_a)] + ([] if same else [("xkv", xkv_a)]) + list(zip(WEIGHT_NAMES, Ws))
    for name, a in named + [(n, b) for n, b in zip(BIAS_NAMES, bs) if b is not None]:
        check_finite(piece, name, a)
    B, Tq, C = xq_a.shape
    Tk = xkv_a.shape[1]
    m = check_mask(piece, mask, (B, H, Tq, Tk))
    scale = 1.0 / math.sqrt(C // H)

    # (B*T, C): one product per input instead of B small ones
    xq2, xkv2 = xq_a.reshape(B * Tq, C), xkv_a.reshape(B * Tk, C)
    plan = [(xq2, Tq, (0, 1, 2))] if same else [(xq2, Tq, (0,)), (xkv2, Tk, (1, 2))]
    groups: list[tuple[Array, Array, tuple[int, ...]]] = []
    heads: list[Array] = []
    for x2, T, which in plan:
        W_cat = Ws[which[0]] if len(which) == 1 else np.concatenate([Ws[i] for i in which], axis=1)  # (C, n*C)
        has_b = any(bs[i] is not None for i in which)
        b_cat = np.concatenate([bs[i] if bs[i] is not None else np.zeros(C, dt) for i in which]) if has_b else None
        heads.extend(_project_heads(x2, W_cat, b_cat, B, T, H))  # n x (B, H, T, D)
        groups.append((x2, W_cat, which))
    Qs, Kh, Vh = heads
    Qs *= dt.type(scale)  # fold 1/sqrt(D) into the queries (in place, (B, H, Tq, D))
    O = np.empty((B, Tq, H, C // H), dtype=dt)  # heads side by side: concat(Oh) is a reshape
    Oh, Pt = attend(Qs, Kh, Vh, m, out=O.transpose(0, 2, 1, 3))  # (B, H, Tq, D) view, (B, H, Tk, Tq)
    O = O.reshape(B * Tq, C)
    out = O @ Ws[3]  # (B*Tq, C)
    if bs[3] is not None:
        out += bs[3]
    cache = MHACache(
        groups=tuple(groups),
        has_bias=tuple(b is not None for b in bs),
        B=B,
        Tq=Tq,
        Tk=Tk,
        Wo=Ws[3],
        Qs=Qs,
        Kh=Kh,
        Vh=Vh,
        Oh=Oh,
        O=O,
        Pt=Pt,
        scale=scale,
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
    dout = dout_array(piece, dout, (B, Tq, C), dtype=dt)
    dout2 = dout.reshape(B * Tq, C)
    dWo = cache.O.T @ dout2  # (C, C)
    dbo = np.ones(B * Tq, dt) @ dout2 if cache.has_bias[3] else None  # column sums, (C,)
    dOh = np.ascontiguousarray((dout2 @ Wo.T).reshape(B, Tq, H, -1).transpose(0, 2, 1, 3))  # (B, H, Tq, D)
    # The gradients of each group's projections, heads side by side, as the projection's
    # product made them: (B, T, n, H, D). The attention backward writes into head views.
    dYs = [np.empty((B, Tq if which[0] == 0 else Tk, len(which), H, C // H), dtype=dt) for _, _, which in cache.groups]
    dviews = [
        dY[:, :, j].transpose(0, 2, 1, 3) for dY, (_, _, which) in zip(dYs, cache.groups) for j in range(len(which))
    ]
    attend_backward(dOh, cache.Qs, cache.Kh, cache.Vh, cache.Pt, cache.Oh, cache.scale, *dviews)  # (B, H, T, D) each
    dW: list[Array | None] = [None, None, None]
    db: list[Array | None] = [None, None, None]
    dxs = []
    for dY, (x2, W_cat, which) in zip(dYs, cache.groups):
        dY = dY.reshape(x2.shape[0], -1)  # (B*T, n*C)
        dW_cat = x2.T @ dY  # (C, n*C)
        has_b = [cache.has_bias[i] for i in which]
        db_cat = np.ones(x2.shape[0], dt) @ dY if any(has_b) else None  # column sums, (n*C,)
        for j, i in enumerate(which):
            dW[i] = np.ascontiguousarray(dW_cat[:, j * C : (j + 1) * C])
            if has_b[j]:  # a bias absent in forward stays None
                db[i] = db_cat[j * C : (j + 1) * C].copy()  # type: ignore[index]
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


def mha_backward(dout: Array, cache: MHACache) -> MHAGrads:
    """(dxq, dxkv, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo); a bias absent in forward gets None.

    With 2-D views X2 = X reshaped to (B*T, C) and dX meaning dL/dX:

        out = O Wo + bo        =>  dWo = O^T dout,   dbo = sum_rows dout,   dO = dout Wo^T
        O = concat(Oh)         =>  dOh = split(dO)
        Oh = attention(...)    =>  dQh, dKh, dVh as in `nn.attention.attention_backward`
        Q = xq Wq + bq         =>  dWq = xq^T dQ,    dbq = sum_rows dQ,     dxq = dQ Wq^T
        K = xkv Wk + bk        =>  dWk = xkv^T dK,   dbk = sum_rows dK
        V = xkv Wv + bv        =>  dWv = xkv^T dV,   dbv = sum_rows dV
                                   dxkv = dK Wk^T + dV Wv^T   (two paths: summed)

    Projections that forward fused are differentiated fused too: [dK | dV] and
    [Wk | Wv] side by side make dxkv one product, whose inner sum adds the two paths.
    Column sums (the bias gradients) are ones-vector products.
    """
    return cast(MHAGrads, _mha_backward(dout, cache, fuse_x=False))


def mha_nobias_forward(
    xq: Array, xkv: Array, Wq: Array, Wk: Array, Wv: Array, Wo: Array, *, n_heads: int, mask: Array | None = None
) -> tuple[Array, MHACache]:
    """`mha_forward` without biases."""
    return mha_forward(xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def mha_nobias_backward(dout: Array, cache: MHACache) -> tuple[Array, ...]:
    """(dxq, dxkv, dWq, dWk, dWv, dWo): `mha_backward` without the (absent) bias gradients."""
    return cast("tuple[Array, ...]", _mha_backward(dout, cache, fuse_x=False, piece="mha_nobias")[:6])


def self_attention_forward(
    x: Array,
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
    """Self-attention: `mha_forward` with xq = xkv = x (B, T, C). Usually with `causal_mask(T)`."""
    x = real_array("self_attention", "x", x)
    return mha_forward(x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


def self_attention_backward(dout: Array, cache: MHACache) -> SelfAttentionGrads:
    """(dx, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo).

    x feeds the queries, the keys and the values, so by the multivariable chain rule its
    gradient is the sum of the three paths, dx = dQ Wq^T + dK Wk^T + dV Wv^T = dxq + dxkv,
    computed as one product `[dQ | dK | dV] [Wq | Wk | Wv]^T`.
    """
    if len(cache.groups) != 1:
        raise fail("self_attention_backward", "the cache comes from a cross-attention forward (xq is not xkv)")
    return cast(SelfAttentionGrads, _mha_backward(dout, cache, fuse_x=True, piece="self_attention"))


# ============================================================================ class
class MultiHeadAttention(Module):
    """Multi-head attention owning Wq, Wk, Wv, Wo (C, C) and, with `bias`, bq, bk, bv, bo (C,).

    `forward(xq, xkv=None, mask=None)` is self-attention when `xkv` is None, cross-attention
    otherwise; it caches for `backward(dout)`, which adds the parameter gradients into
    `self.grads` and returns the gradient of the input (the Module contract):

    * self-attention: dx, the sum of x's query, key and value paths (one fused product);
      `self.dxkv` is None.
    * cross-attention: dxq, the gradient of the queries' input; the gradient of the
      keys'/values' input is kept on the instance as `self.dxkv` (B, Tk, C), for the
      caller to pass on to whatever produced xkv (an encoder).

    `weights` holds the last forward's attention weights (B, H, Tq, Tk).
    """

    def __init__(self, d_model: int, n_heads: int, rng: np.random.Generator | None = None, bias: bool = True) -> None:
        super().__init__()
        self.n_heads = _check_heads("MultiHeadAttention", d_model, n_heads)
        self.d_model = int(d_model)
        self.bias = bool(bias)
        params = init_mha_params(
            self.d_model, self.n_heads, rng if rng is not None else np.random.default_rng(), bias=self.bias
        )
        for name in PARAM_NAMES:
            if name in params:
                self.add_param(name, params[name])
        self._cache: MHACache | None = None
        self._self_attention = False
        #: the gradient of the keys'/values' input after a cross-attention backward, else None
        self.dxkv: Array | None = None

    def forward(self, xq: Array, xkv: Array | None = None, mask: Array | None = None) -> Array:
        self._self_attention = xkv is None
        Wq, Wk, Wv, Wo = (self.params[n] for n in WEIGHT_NAMES)
        biases = [self.params.get(n) for n in BIAS_NAMES]  # None where built without biases
        out, self._cache = mha_forward(
            xq, xq if xkv is None else xkv, Wq, Wk, Wv, Wo, *biases, n_heads=self.n_heads, mask=mask
        )
        return out

    @property
    def weights(self) -> Array:
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.weights read before forward")
        return self._cache.weights

    def backward(self, dout: Array) -> Array:
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.backward called before forward")
        grads = _mha_backward(dout, self._cache, fuse_x=self._self_attention, piece="MultiHeadAttention")
        n_dx = 1 if self._self_attention else 2
        for name, g in zip(PARAM_NAMES, grads[n_dx:]):
            if g is not None:
                self.grads[name] += g
        self.dxkv = None if self._self_attention else grads[1]
        return grads[0]  # type: ignore[return-value]
