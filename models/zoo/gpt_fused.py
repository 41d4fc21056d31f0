"""The GPT's training step fused: one forward and one backward over preallocated buffers.

`models.zoo.gpt.gpt_forward` / `gpt_backward` compose the nn pieces' manual pairs: each piece
checks its inputs, allocates its outputs and caches, and hands back gradients that the GPT
then adds into its flat buffer. This file computes the same loss and the same gradients in
one lean pass each way (tests/models/test_gpt_fast.py checks it against the composed pair
over a grid of configurations, in float64 and float32):

    x_0      = s E[idx] + P[:T]              s = sqrt(C) with scale_embedding, else 1
    block l  (pre-norm, causal, GPT-2's):
        n1   = Norm1(x)                      q, k, v = n1 [Wq | Wk | Wv] + [bq | bk | bv]
        O    = concat_h softmax(q_h k_h^T / sqrt(D) + causal) v_h
        h    = x + O Wo + bo                 n2 = Norm2(h)
        z    = n2 W1 + b1                    a = act(z)
        x'   = h + a W2 + b2
    hf       = Norm_f(x_L)                   logits = hf W_head   (W_head = E^T when tied)
    loss     = (1/K) sum over the K positions with a target of -log softmax(logits)[target]

* `FusedGPT(model)`: the step (`loss_and_grad`, what `GPT.loss_and_grad` runs) and the forward
  (`logits`) of one `models.zoo.gpt.GPT`, on buffers it keeps between calls.
* `norm_*`, `act_*`, `causal_attention_*`: its unchecked in-place kernels, forward next to backward.
* `models.zoo.gpt.gpt_fused_forward` / `gpt_fused_backward` (in gpt.py, which imports this
  file, never the other way): the step on explicit arrays, registered as the piece "gpt_fused"
  (the gpt piece's loops form, cases and torch referee), so the registry checks the fused step
  three ways too, and with it the kernels (`covers`).

Every GPT-2-style configuration `GPTConfig` allows is fused (activation relu / gelu /
gelu_tanh, layer or RMS norm, with or without biases, learned or sinusoidal positions, tied or
untied head, scaled embedding, ignored targets, any T <= context). The one-file scalar GPT's
norm options (`norm_gain` False, `embed_norm`, `final_norm` False: the micro preset, a model of
4,000 parameters) are not: `GPT.loss_and_grad` runs the composed pieces for them. The one
internal fallback: the embedding's scatter-add is a product with a one-hot matrix while that
matrix is small (`ONEHOT_MAX` entries, as `nn.embedding`), and `np.add.at` beyond it.

Where the speed comes from (each is marked where it is used):

* validation once, at the top (the composed pieces check every input of every piece);
* buffers allocated once per (B, T, dtype) and written in place (`out=`), no temporaries;
* sums over rows or columns as products with a ones vector (BLAS), not `.sum(axis=...)`;
* the attention scores kept transposed, S^T (Tk, Tq), so the softmax reduces along
  contiguous memory (the idea of `nn._attention_fast`), walked in cache-sized chunks;
* the logits kept transposed too, (V, B*T), for the same reason;
* constants folded into small matrices instead of big arrays: 1/sqrt(D) into Wq and bq,
  GELU-tanh's 0.5 into W2;
* GELU-tanh from z*z and products (never `z**3`, a slow `pow`), its derivative from
  what the forward kept: (1 + tanh u) and z^2.
"""

# Shape legend: B batch, T positions (<= context), N = B*T rows, C d_model, H heads, D = C/H,
# F d_ff, V vocabulary, L blocks. Row-major "rows" arrays are (N, C) / (N, F); heads (B, H, T, D);
# transposed scores St (B, H, Tk, Tq); transposed logits (V, N).

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.errors import InputError
from nn._attention_fast import _chunks, _shift_free_limit
from nn._checks import kept_rows
from nn.activations import GELU_TANH_CUBIC, erf_array
from nn.embedding import ONEHOT_MAX
from nn.losses import IGNORE_INDEX
from nn.positions import positional_encoding
from nn.transformer_block import block_param_names

_K = math.sqrt(2.0 / math.pi)  # GELU-tanh: u = K (z + c z^3)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# ============================================================================ norms
def norm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray | None,
    eps: float,
    rms: bool,
    xhat: np.ndarray,
    rstd: np.ndarray,
    out: np.ndarray,
    inv_c: np.ndarray,
    stat: np.ndarray,
) -> None:
    """out = gamma * xhat + beta, rows of x (N, C); xhat (N, C) and rstd (N,) kept for backward.

        layer: mean = x 1/C,  xhat = (x - mean) rstd,  rstd = 1 / sqrt(((x - mean)^2) 1/C + eps)
        rms:   xhat = x rstd,  rstd = 1 / sqrt((x^2) 1/C + eps)

    `inv_c` is the (C,) vector of 1/C: a row mean is a matrix-vector product (BLAS), several
    times faster than `mean(axis=-1)` over rows this short. `stat` (N,) is scratch.
    """
    if rms:
        np.multiply(x, x, out=xhat)  # x^2, scratch until xhat is written
        np.matmul(xhat, inv_c, out=rstd)  # mean square (N,)
    else:
        np.matmul(x, inv_c, out=stat)  # mean (N,)
        np.subtract(x, stat[:, None], out=xhat)  # centred
        np.multiply(xhat, xhat, out=out)  # squares, scratch until out is written
        np.matmul(out, inv_c, out=rstd)  # variance (biased, as the composed piece)
    rstd += eps
    np.sqrt(rstd, out=rstd)
    np.divide(1.0, rstd, out=rstd)
    if rms:
        np.multiply(x, rstd[:, None], out=xhat)
    else:
        xhat *= rstd[:, None]
    np.multiply(xhat, gamma, out=out)
    if beta is not None:
        out += beta


def norm_backward(
    dy: np.ndarray,
    xhat: np.ndarray,
    rstd: np.ndarray,
    gamma: np.ndarray,
    rms: bool,
    dgamma: np.ndarray,
    dbeta: np.ndarray | None,
    dx: np.ndarray,
    accumulate: bool,
    ones_n: np.ndarray,
    inv_c: np.ndarray,
    t1: np.ndarray,
    t2: np.ndarray,
    m1: np.ndarray,
    m2: np.ndarray,
) -> None:
    """The norm's backward from dy (N, C): dgamma, dbeta ADDED into; dx written (or added with `accumulate`).

    With g = dy * gamma (per row, r = rstd), as `nn.normalization` derives:

        dgamma = sum_rows dy xhat,   dbeta = sum_rows dy
        layer: dx = r (g - mean_j(g_j) - xhat mean_j(g_j xhat_j))
        rms:   dx = r (g - xhat mean_j(g_j xhat_j))

    Both row means come from products with gamma/C, without forming g first:
    mean_j(g_j) = dy (gamma/C) and mean_j(g_j xhat_j) = (dy xhat)(gamma/C).
    t1, t2 (N, C) and m1, m2 (N,) are scratch.
    """
    gamma_c = gamma * inv_c  # (C,) gamma / C
    np.multiply(dy, xhat, out=t1)  # dy xhat
    dgamma += ones_n @ t1  # column sums as a ones-vector product
    if dbeta is not None:
        dbeta += ones_n @ dy
    np.matmul(t1, gamma_c, out=m2)  # mean_j(g_j xhat_j) (N,)
    np.multiply(dy, gamma, out=t2)  # g
    if not rms:
        np.matmul(dy, gamma_c, out=m1)  # mean_j(g_j) (N,)
        t2 -= m1[:, None]  # the mean's path
    np.multiply(xhat, m2[:, None], out=t1)
    t2 -= t1  # the variance's (rms: the mean square's) path
    if accumulate:
        t2 *= rstd[:, None]
        dx += t2
    else:
        np.multiply(t2, rstd[:, None], out=dx)


# ============================================================================ activations
def act_forward(name: str, z: np.ndarray, a: np.ndarray, keep1: np.ndarray | None, keep2: np.ndarray | None) -> None:
    """a = act(z) (N, F), writing what the backward needs into keep1, keep2.

        relu:       a = max(z, 0)                                    keeps nothing
        gelu:       a = z Phi(z),  Phi = (1 + erf(z / sqrt 2)) / 2    keep1 = Phi
        gelu_tanh:  a = 2 GELU(z) = z (1 + t),  t = tanh(u),  u = K z (1 + c z^2)
                    keep1 = 1 + t, keep2 = z^2

    For gelu_tanh the 0.5 of GELU is NOT applied here: the caller multiplies it into W2
    (a (F, C) matrix, 4x smaller than a), exactly, since halving is exact in floating point.
    The workspace holds None for a keep its activation does not use.
    """
    if name == "relu":
        np.maximum(z, 0.0, out=a)
    elif name == "gelu":
        assert keep1 is not None
        np.multiply(z, _INV_SQRT2, out=a)
        np.copyto(keep1, erf_array(a))  # erf_array allocates; exact GELU is not the benchmark's
        keep1 += 1.0
        keep1 *= 0.5
        np.multiply(z, keep1, out=a)
    else:
        assert keep1 is not None and keep2 is not None
        np.multiply(z, z, out=keep2)  # z^2, not z**3 (pow is several times slower)
        np.multiply(keep2, _K * GELU_TANH_CUBIC, out=keep1)
        keep1 += _K
        keep1 *= z  # u = K z + K c z^3
        np.tanh(keep1, out=keep1)
        keep1 += 1.0  # 1 + t
        np.multiply(z, keep1, out=a)  # z (1 + t) = 2 GELU(z)


def act_backward(
    name: str, da: np.ndarray, z: np.ndarray, keep1: np.ndarray | None, keep2: np.ndarray | None, scratch: np.ndarray
) -> None:
    """da (N, F) becomes dz = da * act'(z), in place.

        relu:       act' = [z > 0]
        gelu:       act' = Phi(z) + z phi(z),  phi(z) = e^(-z^2/2) / sqrt(2 pi)
        gelu_tanh:  GELU = z p / 2 with p = 1 + t, t = tanh(u), u = K (z + c z^3):
                    GELU' = p/2 + (z/2)(1 - t^2) u',  u' = K (1 + 3 c z^2).
                    With v = z u' = K z (1 + 3 c z^2) and 1 - t^2 = p (2 - p):
                    GELU' = (p/2) (1 + (2 - p) v).
                    The caller passes da = dL/da of a = 2 GELU, i.e. G (W2/2)^T, so the
                    1/2 is already in: dz = da p (1 + (2 - p) v).
    keep2 (z^2) is consumed (it becomes v).
    """
    if name == "relu":
        np.multiply(da, z > 0.0, out=da)
    elif name == "gelu":
        assert keep1 is not None
        np.multiply(z, z, out=scratch)
        scratch *= -0.5
        np.exp(scratch, out=scratch)
        scratch *= z
        scratch *= _INV_SQRT_2PI  # z phi(z)
        scratch += keep1  # + Phi(z)
        da *= scratch
    else:
        assert keep1 is not None and keep2 is not None
        keep2 *= 3.0 * _K * GELU_TANH_CUBIC
        keep2 += _K
        keep2 *= z  # v = K z (1 + 3 c z^2)
        np.subtract(2.0, keep1, out=scratch)  # 2 - p = 1 - t
        scratch *= keep2
        scratch += 1.0
        scratch *= keep1  # p (1 + (2 - p) v)
        da *= scratch


# ============================================================================ attention
def causal_attention_forward(
    heads: np.ndarray, Pt: np.ndarray, Oh: np.ndarray, mask_t: np.ndarray, ones_t: np.ndarray, colsum: np.ndarray
) -> None:
    """Oh = softmax(qs k^T + causal) v per (batch, head), with P^T kept in Pt (B, H, Tk, Tq).

    heads (3, B, H, T, D) holds qs = q / sqrt(D) (the scale is already in Wq, bq), k, v.
    The scores are computed transposed, St = k qs^T, so the softmax's sum over keys runs
    down contiguous rows (`ones_t @ P`, a BLAS product); mask_t (Tk, Tq) is 1 where key <= query.

    softmax(S) = softmax(S - m) for any per-query m; when every score of a chunk is
    within +-ln(max float)/2, exp cannot overflow and m = 0 (saves a max-reduction and a
    pass); otherwise each query's maximum over its allowed keys is subtracted, masked
    scores set to -inf first so they neither set the shift nor survive exp.
    """
    qs, k, v = heads[0], heads[1], heads[2]
    limit = _shift_free_limit(Pt.dtype)
    for c in _chunks(Pt.shape, Pt.dtype.itemsize):  # chunks of the batch whose scores stay in L2
        P = Pt[c]
        np.matmul(k[c], np.swapaxes(qs[c], -1, -2), out=P)  # St (chunk, H, Tk, Tq)
        if -limit <= P.min() and P.max() <= limit:
            np.exp(P, out=P)
            P *= mask_t  # masked weights exactly 0
        else:
            np.copyto(P, -np.inf, where=mask_t == 0.0)
            P -= P.max(axis=-2, keepdims=True)
            np.exp(P, out=P)
        cs = colsum[c]
        np.matmul(ones_t, P, out=cs)  # sum over keys (chunk, H, 1, Tq)
        np.divide(1.0, cs, out=cs)
        P *= cs
        np.matmul(np.swapaxes(P, -1, -2), v[c], out=Oh[c])  # P v (chunk, H, Tq, D)


def causal_attention_backward(
    dOh: np.ndarray,
    heads: np.ndarray,
    Pt: np.ndarray,
    Oh: np.ndarray,
    dheads: tuple[np.ndarray, np.ndarray, np.ndarray],
    rowdot: np.ndarray,
    prod: np.ndarray,
    ones_d: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """d qs, d k, d v written into dheads from dOh (B, H, Tq, D), as `nn._attention_fast.attend_backward`:

        dv  = P^T dO                        dP = dO v^T
        dS  = P * (dP - rowsum(dP * P))     rowsum(dP * P)_i = sum_j P_ij dO_i . v_j = dO_i . O_i
        dqs = dS k                          dk = dS^T qs

    (the gradient with respect to the pre-scaled queries qs: the caller's folded Wq turns it
    into dWq and dn1). rowdot (B, H, 1, Tq), prod (B, H, T, D) and scratch (one chunk of
    scores) are scratch; ones_d is (D,).
    """
    qs, k, v = heads[0], heads[1], heads[2]
    dqs, dk, dv = dheads
    B, H, T, D = dOh.shape
    np.multiply(dOh, Oh, out=prod)
    np.matmul(prod.reshape(-1, D), ones_d, out=rowdot.reshape(-1))  # dO_i . O_i for every (b, h, i)
    for c in _chunks(Pt.shape, Pt.dtype.itemsize):
        P = Pt[c]
        dO = dOh[c]
        dSt = scratch[: P.shape[0]]
        np.matmul(P, dO, out=dv[c])  # P^T dO (chunk, H, Tk, D)
        np.matmul(v[c], np.swapaxes(dO, -1, -2), out=dSt)  # dP^T (chunk, H, Tk, Tq)
        dSt -= rowdot[c]
        dSt *= P  # dS^T; exactly 0 where masked
        np.matmul(np.swapaxes(dSt, -1, -2), k[c], out=dqs[c])  # dS k
        np.matmul(dSt, qs[c], out=dk[c])  # dS^T qs


# ============================================================================ the workspace
class _Workspace:
    """Every array one (B, T, dtype) step reads or writes, allocated once.

    Forward arrays are per block (the backward reads them); backward scratch is shared by
    the blocks. Nothing carries over from one call to the next: each buffer is written in
    full before it is read (tests/models/test_gpt_fast.py checks that two calls with
    different inputs give what fresh models give).
    """

    def __init__(
        self, B: int, T: int, C: int, H: int, F: int, V: int, L: int, dt: np.dtype, positions: str, activation: str
    ) -> None:
        N, D = B * T, C // H

        def e(*shape: int) -> np.ndarray:
            return np.empty(shape, dtype=dt)

        self.key = (B, T, dt)
        self.x = [e(N, C) for _ in range(L + 1)]  # the residual stream at each block's input; x[L] the last output
        self.h = [e(N, C) for _ in range(L)]  # x + attention
        self.xhat1, self.xhat2 = [e(N, C) for _ in range(L)], [e(N, C) for _ in range(L)]
        self.rstd1, self.rstd2 = [e(N) for _ in range(L)], [e(N) for _ in range(L)]
        self.n1, self.n2 = [e(N, C) for _ in range(L)], [e(N, C) for _ in range(L)]
        self.heads = [e(3, B, H, T, D) for _ in range(L)]  # qs, k, v, head-major
        self.Pt = [e(B, H, T, T) for _ in range(L)]  # P^T
        self.O = [e(B, T, H, D) for _ in range(L)]  # heads side by side: concat is a reshape
        self.z = [e(N, F) for _ in range(L)]
        self.a = [e(N, F) for _ in range(L)]
        self.keep1 = [e(N, F) for _ in range(L)] if activation != "relu" else [None] * L
        self.keep2 = [e(N, F) for _ in range(L)] if activation == "gelu_tanh" else [None] * L
        self.Wcat = [e(C, 3 * C) for _ in range(L)]  # [Wq / sqrt(D) | Wk | Wv]
        self.bcat = [e(3 * C) for _ in range(L)]
        self.xhatf, self.rstdf, self.hf = e(N, C), e(N), e(N, C)
        self.logits_t = e(V, N)  # logits transposed; becomes dlogits^T in place
        # scratch
        self.qkv = e(N, 3 * C)
        self.colsum = e(B, H, 1, T)
        self.stat, self.m1, self.m2 = e(N), e(N), e(N)
        self.t1, self.t2 = e(N, C), e(N, C)
        self.dres, self.dn = e(N, C), e(N, C)
        self.dOh = e(B, H, T, D)
        self.prod = e(B, H, T, D)
        self.rowdot = e(B, H, 1, T)
        self.dY = e(B, T, 3, H, D)  # [dqs | dk | dv] as the projection's rows: (N, 3C) by reshape
        first = _chunks((B, H, T, T), dt.itemsize)[0]  # a slice of the batch axis
        self.dSt = e(first.stop - first.start, H, T, T)  # dS^T of one chunk, reused
        self.da, self.actscratch = e(N, F), e(N, F)
        self.g_c3c, self.g_cc, self.g_cf, self.g_fc = e(C, 3 * C), e(C, C), e(C, F), e(F, C)
        self.g_vc = e(V, C)
        self.W2h = [e(F, C) for _ in range(L)] if activation == "gelu_tanh" else [None] * L
        # constants of the shape
        self.ones_n, self.ones_b = np.ones(N, dt), np.ones(B, dt)
        self.ones_v, self.ones_t, self.ones_d = np.ones(V, dt), np.ones((1, T), dt), np.ones(D, dt)
        self.inv_c = np.full(C, 1.0 / C, dtype=dt)
        self.mask_t = np.triu(np.ones((T, T), dtype=dt))  # (Tk, Tq): 1 where key <= query
        self.pe = positional_encoding(T, C).astype(dt) if positions == "sinusoidal" else None
        self.cols = np.arange(N)
        self.onehot_t = e(V, N) if N * V <= ONEHOT_MAX else None


# ============================================================================ the fused step
class FusedGPT:
    """The fused training step (and forward) of one `models.zoo.gpt.GPT`, reading its parameter views.

        step = FusedGPT(model)
        loss = step.loss_and_grad(idx, targets)   # gradients ADDED into model.grads

    `GPT.loss_and_grad` owns one and calls it. Buffers are kept for the last (B, T, dtype)
    seen and rebuilt when that changes; the parameter views are looked up again whenever
    the model's flat buffer is a different array (after `set_dtype`).
    """

    def __init__(self, model: Any) -> None:
        if model.one_file_norms:
            raise InputError(
                "FusedGPT: the one-file GPT's norm options are not fused; use GPT.loss_and_grad (composed for them)"
            )
        self.model = model
        cfg = model.config
        self.cfg = cfg
        self.L, self.C, self.H, self.V, self.F = cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.vocab_size, cfg.ffn_width
        self.rms = cfg.norm == "rms"
        self.block_names = block_param_names(cfg.norm, cfg.bias)
        self._ws: _Workspace | None = None
        self._flat: np.ndarray | None = None

    # ------------------------------------------------------------------ parameters
    def _arrays(self) -> None:
        """Look the parameter and gradient views up by name (again only after the buffer moved)."""
        flat = self.model.flat_params
        if self._flat is flat:
            return
        named = self.model.named_parameters_and_grads()
        self.p = {n: p for n, p, _ in named}
        self.g = {n: g for n, _, g in named}
        self._flat = flat

    def _workspace(self, B: int, T: int) -> _Workspace:
        dt = self.model.flat_params.dtype
        if self._ws is None or self._ws.key != (B, T, dt):
            self._ws = _Workspace(
                B, T, self.C, self.H, self.F, self.V, self.L, dt, self.cfg.positions, self.cfg.activation
            )
        return self._ws

    # ------------------------------------------------------------------ validation (once)
    def check_idx(self, idx: Any) -> np.ndarray:
        """idx (B, T) as int64, or InputError with the embedding's messages."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu" or 0 in idx.shape:
            raise InputError(f"gpt: idx must be a (B, T) array of integer token ids, got {idx.dtype} {idx.shape}")
        if idx.shape[1] > self.cfg.context:
            raise InputError(f"gpt: {idx.shape[1]} positions, more than the model's context of {self.cfg.context}")
        bad = (idx < 0) | (idx >= self.V)
        if bad.any():
            raise InputError(
                f"embedding: ids out of range [0, {self.V}): {idx[bad][:5].tolist()} at {np.argwhere(bad)[:5].tolist()}"
            )
        return idx.astype(np.int64, copy=False)

    def check(self, idx: Any, targets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(idx (B, T) int64, keep (N,) bool, kept targets (K,)) or InputError, with the messages
        of the composed pieces (the embedding's for ids, the sequence cross-entropy's for targets,
        None among them: the loss needs targets)."""
        idx = self.check_idx(idx)
        keep, kept = kept_rows("sequence_cross_entropy", idx.shape + (self.V,), targets, IGNORE_INDEX)
        return idx, keep, kept

    # ------------------------------------------------------------------ forward
    def _forward(self, idx: np.ndarray) -> _Workspace:
        """Every block's activations into the workspace, up to hf = Norm_f(x_L) and the transposed logits."""
        self._arrays()
        B, T = idx.shape
        ws = self._workspace(B, T)
        p, cfg, C, H = self.p, self.cfg, self.C, self.H
        D = C // H
        N = B * T
        # x_0 = s E[idx] + P[:T]
        x = ws.x[0]
        # ids were range-checked once in `check`; mode="clip" lets take write into `out`
        # directly (the default mode="raise" buffers the output to stay safe on a bad id)
        np.take(p["wte"], idx.reshape(-1), axis=0, out=x, mode="clip")
        if cfg.scale_embedding:
            x *= math.sqrt(C)
        pos = p["wpe"][:T] if cfg.positions == "learned" else ws.pe
        x3 = x.reshape(B, T, C)  # a view
        x3 += pos
        scale = 1.0 / math.sqrt(D)
        for l in range(self.L):
            pre = f"h{l}."
            x, h = ws.x[l], ws.h[l]
            norm_forward(
                x,
                p[pre + "gamma1"],
                p.get(pre + "beta1"),
                cfg.eps,
                self.rms,
                ws.xhat1[l],
                ws.rstd1[l],
                ws.n1[l],
                ws.inv_c,
                ws.stat,
            )
            # one product for q, k, v; 1/sqrt(D) folded into the (C, C) block of Wq (and bq),
            # not applied to the (B, H, T, D) queries or the (B, H, T, T) scores
            Wcat = ws.Wcat[l]
            np.multiply(p[pre + "Wq"], scale, out=Wcat[:, :C])
            Wcat[:, C : 2 * C] = p[pre + "Wk"]
            Wcat[:, 2 * C :] = p[pre + "Wv"]
            np.matmul(ws.n1[l], Wcat, out=ws.qkv)  # (N, 3C)
            if cfg.bias:
                bcat = ws.bcat[l]
                np.multiply(p[pre + "bq"], scale, out=bcat[:C])
                bcat[C : 2 * C] = p[pre + "bk"]
                bcat[2 * C :] = p[pre + "bv"]
                ws.qkv += bcat
            # head-major copy: the per-head products run about twice as fast on contiguous heads
            np.copyto(ws.heads[l], ws.qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4))
            O = ws.O[l]
            causal_attention_forward(ws.heads[l], ws.Pt[l], O.transpose(0, 2, 1, 3), ws.mask_t, ws.ones_t, ws.colsum)
            np.matmul(O.reshape(N, C), p[pre + "Wo"], out=h)
            if cfg.bias:
                h += p[pre + "bo"]
            h += x  # the first residual
            norm_forward(
                h,
                p[pre + "gamma2"],
                p.get(pre + "beta2"),
                cfg.eps,
                self.rms,
                ws.xhat2[l],
                ws.rstd2[l],
                ws.n2[l],
                ws.inv_c,
                ws.stat,
            )
            z = ws.z[l]
            np.matmul(ws.n2[l], p[pre + "W1"], out=z)
            if cfg.bias:
                z += p[pre + "b1"]
            act_forward(cfg.activation, z, ws.a[l], ws.keep1[l], ws.keep2[l])
            W2 = p[pre + "W2"]
            if cfg.activation == "gelu_tanh":
                W2 = np.multiply(W2, 0.5, out=ws.W2h[l])  # a holds 2 GELU(z): the 0.5 goes here
            y = ws.x[l + 1]
            np.matmul(ws.a[l], W2, out=y)
            if cfg.bias:
                y += p[pre + "b2"]
            y += h  # the second residual
        norm_forward(
            ws.x[self.L],
            p["norm_f.gamma"],
            p.get("norm_f.beta"),
            cfg.eps,
            self.rms,
            ws.xhatf,
            ws.rstdf,
            ws.hf,
            ws.inv_c,
            ws.stat,
        )
        # logits^T = W_head^T hf^T (V, N): the softmax then reduces over contiguous rows
        np.matmul(p["wte"] if cfg.tied else p["head"].T, ws.hf.T, out=ws.logits_t)
        return ws

    def logits(self, idx: Any) -> np.ndarray:
        """Logits (B, T, V) for idx (B, T): the fused forward (a new array)."""
        idx = self.check_idx(idx)
        ws = self._forward(idx)
        return np.ascontiguousarray(ws.logits_t.T).reshape(idx.shape + (self.V,))  # a new array

    # ------------------------------------------------------------------ loss + backward
    def loss_and_grad(self, idx: Any, targets: Any) -> float:
        """The mean cross-entropy over the positions with a target; every gradient ADDED into the model's grads.

        Backward, in the order it runs (G_x = dL/dx; each line is the matching composed piece's rule):

            cross-entropy   dlogits = (softmax(logits) - onehot(target)) / K on kept positions, 0 elsewhere
            head            dhf = dlogits W_head^T;  dW_head = hf^T dlogits  (tied: dE += dlogits^T hf)
            Norm_f          G_{x_L} = Norm_f'(dhf)   (and dgamma_f, dbeta_f)
            block l = L-1 .. 0, from G = G_{x_{l+1}}:
              FFN           dW2 = a^T G,  db2 = sum_rows G,  da = G W2^T,  dz = da act'(z),
                            dW1 = n2^T dz,  db1 = sum_rows dz,  dn2 = dz W1^T
              residual 2    G_h = G + Norm2'(dn2)            (the skip path plus the branch)
              attention     dWo = O^T G_h,  dbo = sum_rows G_h,  dO = G_h Wo^T,  then the
                            attention core's dqs, dk, dv; [dWq/sqrt(D)... | dWk | dWv] = n1^T [dqs | dk | dv]
                            (the q block times 1/sqrt(D)), dn1 = [dqs | dk | dv] [Wq/sqrt(D) | Wk | Wv]^T
              residual 1    G_x = G_h + Norm1'(dn1)
            positions       dP[t] += sum_b G_{x_0}[b, t]  (learned)
            embedding       dE += s onehot(idx)^T G_{x_0}   (the scatter-add as a product)
        """
        idx, keep, kept = self.check(idx, targets)
        ws = self._forward(idx)
        B, T = idx.shape
        N, C, H = B * T, self.C, self.H
        D = C // H
        p, g, cfg = self.p, self.g, self.cfg
        K = kept.shape[0]
        # ---- cross-entropy on the transposed logits (V, N)
        Lt = ws.logits_t
        Lt -= Lt.max(axis=0)  # every exponent <= 0 (the max over axis 0 runs over contiguous rows)
        cols = ws.cols[keep]
        picked = float(Lt[kept, cols].sum())
        np.exp(Lt, out=Lt)
        total = ws.ones_v @ Lt  # (N,) sums over the vocabulary, >= 1
        loss = (float(np.log(total[keep]).sum()) - picked) / K
        coef = np.divide(1.0, total * K)  # 1/(K S)
        coef *= keep  # 0 on ignored positions: their logits do not enter the loss
        Lt *= coef  # softmax / K
        Lt[kept, cols] -= Lt.dtype.type(1.0 / K)  # minus onehot / K: dlogits^T
        # ---- head
        dhf = ws.dn
        if cfg.tied:
            np.matmul(Lt.T, p["wte"], out=dhf)  # dlogits E
            np.matmul(Lt, ws.hf, out=ws.g_vc)  # (dW_head)^T = dlogits^T hf, added into dE below with the lookup's
            g["wte"] += ws.g_vc
        else:
            np.matmul(Lt.T, p["head"].T, out=dhf)
            g["head"] += (Lt @ ws.hf).T  # hf^T dlogits (C, V)
        dres = ws.dres
        norm_backward(
            dhf,
            ws.xhatf,
            ws.rstdf,
            p["norm_f.gamma"],
            self.rms,
            g["norm_f.gamma"],
            g.get("norm_f.beta"),
            dres,
            False,
            ws.ones_n,
            ws.inv_c,
            ws.t1,
            ws.t2,
            ws.m1,
            ws.m2,
        )
        scale = 1.0 / math.sqrt(D)
        dY2 = ws.dY.reshape(N, 3 * C)
        dheads = tuple(ws.dY.transpose(2, 0, 3, 1, 4))  # views (B, H, T, D) of dY's q, k, v blocks
        for l in range(self.L - 1, -1, -1):
            pre = f"h{l}."
            # ---- feed-forward, from G = dres
            a = ws.a[l]
            np.matmul(a.T, dres, out=ws.g_fc)  # a^T G
            if cfg.activation == "gelu_tanh":
                ws.g_fc *= 0.5  # a = 2 GELU(z)
            g[pre + "W2"] += ws.g_fc
            if cfg.bias:
                g[pre + "b2"] += ws.ones_n @ dres
            W2h = ws.W2h[l]  # W2 / 2, kept for gelu_tanh only (None otherwise)
            W2 = W2h if W2h is not None else p[pre + "W2"]
            da = ws.da
            np.matmul(dres, W2.T, out=da)  # dL/da (for gelu_tanh, of a = 2 GELU: W2 / 2)
            act_backward(cfg.activation, da, ws.z[l], ws.keep1[l], ws.keep2[l], ws.actscratch)  # dz
            np.matmul(ws.n2[l].T, da, out=ws.g_cf)
            g[pre + "W1"] += ws.g_cf
            if cfg.bias:
                g[pre + "b1"] += ws.ones_n @ da
            np.matmul(da, p[pre + "W1"].T, out=ws.dn)  # dn2
            norm_backward(
                ws.dn,
                ws.xhat2[l],
                ws.rstd2[l],
                p[pre + "gamma2"],
                self.rms,
                g[pre + "gamma2"],
                g.get(pre + "beta2"),
                dres,
                True,
                ws.ones_n,
                ws.inv_c,
                ws.t1,
                ws.t2,
                ws.m1,
                ws.m2,
            )
            # ---- attention, from G_h = dres
            O2 = ws.O[l].reshape(N, C)
            np.matmul(O2.T, dres, out=ws.g_cc)
            g[pre + "Wo"] += ws.g_cc
            if cfg.bias:
                g[pre + "bo"] += ws.ones_n @ dres
            np.matmul(dres, p[pre + "Wo"].T, out=ws.t1)  # dO (N, C), heads side by side
            np.copyto(ws.dOh, ws.t1.reshape(B, T, H, D).transpose(0, 2, 1, 3))
            causal_attention_backward(
                ws.dOh,
                ws.heads[l],
                ws.Pt[l],
                ws.O[l].transpose(0, 2, 1, 3),
                dheads,
                ws.rowdot,
                ws.prod,
                ws.ones_d,
                ws.dSt,
            )
            np.matmul(ws.n1[l].T, dY2, out=ws.g_c3c)  # n1^T [dqs | dk | dv]
            ws.g_c3c[:, :C] *= scale  # qs = n1 (Wq s) + bq s: dWq = s n1^T dqs
            g[pre + "Wq"] += ws.g_c3c[:, :C]
            g[pre + "Wk"] += ws.g_c3c[:, C : 2 * C]
            g[pre + "Wv"] += ws.g_c3c[:, 2 * C :]
            if cfg.bias:
                db = ws.ones_n @ dY2  # (3C,)
                g[pre + "bq"] += db[:C] * scale
                g[pre + "bk"] += db[C : 2 * C]
                g[pre + "bv"] += db[2 * C :]
            np.matmul(dY2, ws.Wcat[l].T, out=ws.dn)  # dn1: the three paths into n1 summed by one product
            norm_backward(
                ws.dn,
                ws.xhat1[l],
                ws.rstd1[l],
                p[pre + "gamma1"],
                self.rms,
                g[pre + "gamma1"],
                g.get(pre + "beta1"),
                dres,
                True,
                ws.ones_n,
                ws.inv_c,
                ws.t1,
                ws.t2,
                ws.m1,
                ws.m2,
            )
        # ---- positions and the embedding lookup, from G_{x_0} = dres
        if cfg.positions == "learned":
            g["wpe"][:T] += (ws.ones_b @ dres.reshape(B, T * C)).reshape(T, C)
        s = math.sqrt(C) if cfg.scale_embedding else 1.0
        flat_ids = idx.reshape(-1)
        if ws.onehot_t is not None:
            oh = ws.onehot_t
            oh.fill(0.0)
            oh[flat_ids, ws.cols] = 1.0
            np.matmul(oh, dres, out=ws.g_vc)  # sum of G over the positions reading each row
            if s != 1.0:
                ws.g_vc *= s
            g["wte"] += ws.g_vc
        else:
            if s != 1.0:
                dres *= s
            np.add.at(g["wte"], flat_ids, dres)
        return loss
