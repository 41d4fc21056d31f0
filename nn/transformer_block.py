"""The Transformer block (Vaswani et al. 2017, section 3.1), written two ways, and its class.

Two residual sub-layers, self-attention then the feed-forward network, each with a norm:

    post-norm (the paper):     h = Norm1(x + MHA(x))          y = Norm2(h + FFN(h))
    pre-norm (GPT-2):          h = x + MHA(Norm1(x))          y = h + FFN(Norm2(h))

Norm is layer norm (gamma, beta) or RMSNorm (gamma); MHA is multi-head self-attention with an
optional causal and/or padding mask; FFN(z) = act(z W1 + b1) W2 + b2. With `bias=False`
every bias is gone: bq, bk, bv, bo, b1, b2 and layer norm's beta (as torch's `bias=False`).

* `transformer_block_loops`: the pieces' loops forms (floats or `engine.Value`s).
* `transformer_block_forward` / `transformer_block_backward`: the chain of the pieces' manual
  pairs (`nn.mha`, `nn.feedforward`, `nn.normalization`, `nn.residual`); float64 by default,
  float32 in gives float32 out.
* `TransformerBlock`: the Module that owns the parameters; a GPT stacks N of them with
  `norm_first=True, causal=True`.

The parameters are explicit arrays in the order of `block_param_names(norm, bias)`:

    Wq Wk Wv Wo (C, C)  W1 (C, F)  W2 (F, C)  gamma1 gamma2 (C,)         always
    bq bk bv bo (C,)  b1 (F,)  b2 (C,)                                    with biases
    beta1 beta2 (C,)                                                      layer norm with biases
"""

# Shape legend
#     B batch;  T positions;  C model width d_model;  H heads, D = C / H;  F FFN width d_ff
#     x, h, y (B, T, C)   mask broadcasts to (B, H, T, T)   W* as in the docstring above

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from nn._attention_pieces import _mha_torch
from nn._checks import (
    check_finite,
    check_mask,
    dout_array,
    fail,
    float_dtype,
    nested_input,
    positive_int,
    real_array,
    shape_text,
)
from nn.feedforward import FFNCache, check_activation, ffn_backward, ffn_forward, ffn_loops, ffn_torch, init_ffn_params
from nn.masks import causal_mask, padding_mask
from nn.mha import MHACache, init_mha_params, self_attention_backward, self_attention_forward, self_attention_loops
from nn.module import Module
from nn.normalization import (
    DEFAULT_EPS,
    LayerNormCache,
    RMSNormCache,
    layer_norm_backward,
    layer_norm_forward,
    layer_norm_loops,
    rms_norm_backward,
    rms_norm_forward,
    rms_norm_loops,
)
from nn.registry import Case, Piece, register
from nn.residual import residual_backward, residual_forward, residual_loops

PIECE = "transformer_block"
Array = np.ndarray

WEIGHT_NAMES = ("Wq", "Wk", "Wv", "Wo", "W1", "W2")
GAIN_NAMES = ("gamma1", "gamma2")
BIAS_NAMES = ("bq", "bk", "bv", "bo", "b1", "b2")
SHIFT_NAMES = ("beta1", "beta2")
PARAM_NAMES = WEIGHT_NAMES + GAIN_NAMES + BIAS_NAMES + SHIFT_NAMES
NORMS = ("layer", "rms")


def block_param_names(norm: str = "layer", bias: bool = True) -> tuple[str, ...]:
    """The block's parameter names in argument order (the order of the gradients too)."""
    _check_norm(PIECE, norm)
    if not bias:
        return WEIGHT_NAMES + GAIN_NAMES
    return WEIGHT_NAMES + GAIN_NAMES + BIAS_NAMES + (SHIFT_NAMES if norm == "layer" else ())


# ============================================================================ checks
def _check_norm(piece: str, norm: Any) -> str:
    if norm not in NORMS:
        raise fail(piece, f"norm must be one of {list(NORMS)}, got {norm!r}")
    return norm


def _check_config(norm: Any, activation: Any, norm_first: Any, causal: Any) -> None:
    _check_norm(PIECE, norm)
    check_activation(PIECE, activation)
    for name, flag in (("norm_first", norm_first), ("causal", causal)):
        if not isinstance(flag, (bool, np.bool_)):
            raise fail(PIECE, f"{name} must be a bool, got {flag!r}")


def _check_shapes(shapes: dict[str, tuple[int, ...]], norm: str, n_heads: Any) -> int:
    """The shape rules both forms share, over the given arrays (name -> shape); returns H.

    Biases come all together or not at all; beta1, beta2 only with layer norm and biases.
    """
    missing = [n for n in WEIGHT_NAMES + GAIN_NAMES if n not in shapes]
    if missing:
        raise fail(PIECE, f"the parameters {missing} are required, got None")
    x = shapes["x"]
    if len(x) != 3 or 0 in x:
        raise fail(PIECE, f"x must have shape (B, T, C) with no empty axis, got {shape_text(x)}")
    C = x[2]
    W1 = tuple(shapes["W1"])
    if len(W1) != 2 or W1[0] != C or W1[1] < 1:
        raise fail(
            PIECE, f"W1 must have shape (C, F) = ({C}, F) with F >= 1 for x {shape_text(x)}, got {shape_text(W1)}"
        )
    F = W1[1]
    for name, shape in shapes.items():
        want, layout = {"W1": ((C, F), "(C, F)"), "W2": ((F, C), "(F, C)"), "b1": ((F,), "(F,)")}.get(
            name, ((C, C), "(C, C)") if name.startswith("W") else ((C,), "(C,)")
        )
        if name != "x" and tuple(shape) != want:
            raise fail(
                PIECE,
                f"{name} must have shape {layout} = {shape_text(want)} for x {shape_text(x)}, got {shape_text(shape)}",
            )
    biases = [n for n in BIAS_NAMES if n in shapes]
    if biases and len(biases) != len(BIAS_NAMES):
        raise fail(PIECE, f"give all the biases {list(BIAS_NAMES)} or none, got only {biases}")
    shifts = [n for n in SHIFT_NAMES if n in shapes]
    if shifts and (norm != "layer" or not biases or len(shifts) != 2):
        raise fail(PIECE, f"beta1 and beta2 go together, with layer norm and biases only (norm={norm!r}), got {shifts}")
    if norm == "layer" and biases and not shifts:
        raise fail(PIECE, "layer norm with biases needs beta1 and beta2 (bias=False drops all of them)")
    H = positive_int(PIECE, "n_heads", n_heads)
    if C % H:
        raise fail(PIECE, f"d_model C={C} is not divisible by n_heads={H}")
    return H


def _block_mask(B: int, T: int, H: int, causal: bool, mask: Any) -> Array | None:
    """The attention mask of the block: causal_mask(T) and the given mask, combined with &."""
    m = causal_mask(T) if causal else None
    if mask is not None:
        given = check_mask(PIECE, mask, (B, H, T, T))
        m = given if m is None else given & m  # (B, 1, T, T) for a padding mask
    return m


# ============================================================================ loops
def _norm_loops(norm: str, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
    if norm == "rms":
        return rms_norm_loops(x, gamma, eps=eps)
    return layer_norm_loops(x, gamma, [0.0] * len(gamma) if beta is None else beta, eps=eps)


def transformer_block_loops(
    x: Any, Wq: Any, Wk: Any, Wv: Any, Wo: Any, W1: Any, W2: Any, gamma1: Any, gamma2: Any,
    bq: Any = None, bk: Any = None, bv: Any = None, bo: Any = None, b1: Any = None, b2: Any = None,
    beta1: Any = None, beta2: Any = None,
    *, n_heads: int, activation: str = "relu", norm: str = "layer", norm_first: bool = False,
    causal: bool = False, mask: Any = None, eps: float = DEFAULT_EPS, trace: dict[str, Any] | None = None,
) -> Any:  # fmt: skip  # keeps the parameters grouped: weights and gains, biases, shifts, options
    """The block on nested lists (B, T, C) of floats or Values, built from the pieces' loops forms.

    `trace`, if given, receives each sub-layer's output in order, so a drawing can box them:
    post-norm "attention", "add & norm 1", "feed-forward", "add & norm 2"; pre-norm "norm 1",
    "attention", "add 1", "norm 2", "feed-forward", "add 2".
    """
    _check_config(norm, activation, norm_first, causal)
    given = {
        n: a
        for n, a in zip(
            ("x",) + PARAM_NAMES, (x, Wq, Wk, Wv, Wo, W1, W2, gamma1, gamma2, bq, bk, bv, bo, b1, b2, beta1, beta2)
        )
        if a is not None
    }
    checked = {n: nested_input(PIECE, n, a) for n, a in given.items()}
    H = _check_shapes({n: s for n, (_, s) in checked.items()}, norm, n_heads)
    p = {n: a for n, (a, _) in checked.items()}
    x = p["x"]
    B, T, _ = checked["x"][1]
    m = _block_mask(B, T, H, causal, mask)
    attn = [p.get(n) for n in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")]

    def mha(z: Any) -> Any:
        return self_attention_loops(z, *attn, n_heads=H, mask=m)

    def ffn(z: Any) -> Any:
        return ffn_loops(z, p["W1"], p["W2"], p.get("b1"), p.get("b2"), activation=activation)

    def norm1(z: Any) -> Any:
        return _norm_loops(norm, z, p["gamma1"], p.get("beta1"), eps)

    def norm2(z: Any) -> Any:
        return _norm_loops(norm, z, p["gamma2"], p.get("beta2"), eps)

    seen = trace if trace is not None else {}

    def step(name: str, value: Any) -> Any:
        seen[name] = value
        return value

    if norm_first:
        n1 = step("norm 1", norm1(x))
        h = step("add 1", residual_loops(x, step("attention", mha(n1))))
        n2 = step("norm 2", norm2(h))
        return step("add 2", residual_loops(h, step("feed-forward", ffn(n2))))
    h = step("add & norm 1", norm1(residual_loops(x, step("attention", mha(x)))))
    return step("add & norm 2", norm2(residual_loops(h, step("feed-forward", ffn(h)))))


# ============================================================================ manual pair
class BlockCache(NamedTuple):
    """What backward needs: each piece's cache, and the block's configuration."""

    norm1: LayerNormCache | RMSNormCache  # Norm1, on x (pre-norm) or on x + MHA(x) (post-norm)
    attn: MHACache  # self-attention
    norm2: LayerNormCache | RMSNormCache  # Norm2, on h (pre-norm) or on h + FFN(h) (post-norm)
    ffn: FFNCache  # the feed-forward network
    norm: str  # "layer" or "rms"
    norm_first: bool
    names: tuple[str, ...]  # the parameters given, in argument order
    x_shape: tuple[int, ...]  # (B, T, C)
    dtype: np.dtype


def _norm_forward(
    norm: str, x: Array, gamma: Array, beta: Array | None, eps: float
) -> tuple[Array, LayerNormCache | RMSNormCache]:
    if norm == "rms":
        return rms_norm_forward(x, gamma, eps=eps)
    return layer_norm_forward(x, gamma, np.zeros_like(gamma) if beta is None else beta, eps=eps)


def _norm_backward(dout: Array, cache: LayerNormCache | RMSNormCache) -> tuple[Array, Array, Array | None]:
    """(dx, dgamma, dbeta) of either norm; dbeta is None for RMSNorm."""
    if isinstance(cache, RMSNormCache):
        return (*rms_norm_backward(dout, cache), None)
    return layer_norm_backward(dout, cache)


def _residual(x: Array, f: Array, dt: np.dtype) -> Array:
    """x + f by `nn.residual` (which computes in float64), in the block's dtype."""
    return residual_forward(x, f)[0].astype(dt, copy=False)


def transformer_block_forward(
    x: Array, Wq: Array, Wk: Array, Wv: Array, Wo: Array, W1: Array, W2: Array, gamma1: Array, gamma2: Array,
    bq: Array | None = None, bk: Array | None = None, bv: Array | None = None, bo: Array | None = None,
    b1: Array | None = None, b2: Array | None = None, beta1: Array | None = None, beta2: Array | None = None,
    *, n_heads: int, activation: str = "relu", norm: str = "layer", norm_first: bool = False,
    causal: bool = False, mask: Array | None = None, eps: float = DEFAULT_EPS,
) -> tuple[Array, BlockCache]:  # fmt: skip  # keeps the parameters grouped: weights and gains, biases, shifts, options
    """One Transformer block, x (B, T, C) -> y (B, T, C); returns (y, cache).

        post-norm:  a = MHA(x)         u1 = x + a      h = Norm1(u1)
                    f = FFN(h)         u2 = h + f      y = Norm2(u2)
        pre-norm:   n1 = Norm1(x)      a = MHA(n1)     h = x + a
                    n2 = Norm2(h)      f = FFN(n2)     y = h + f

    `causal` masks the future (query t sees keys <= t); `mask` (boolean, True = may attend,
    e.g. `padding_mask(lengths)` (B, 1, 1, T)) is combined with it by &. The arrays' common
    float dtype is kept through every piece: float32 in, float32 out.
    """
    _check_config(norm, activation, norm_first, causal)
    values = (x, Wq, Wk, Wv, Wo, W1, W2, gamma1, gamma2, bq, bk, bv, bo, b1, b2, beta1, beta2)
    given = {n: real_array(PIECE, n, a) for n, a in zip(("x",) + PARAM_NAMES, values) if a is not None}
    dt = float_dtype(*given.values())
    arrays = {n: np.asarray(a, dtype=dt) for n, a in given.items()}
    H = _check_shapes({n: a.shape for n, a in arrays.items()}, norm, n_heads)
    for name, a in arrays.items():
        check_finite(PIECE, name, a)
    p = arrays
    x = p["x"]
    B, T, _ = x.shape
    m = _block_mask(B, T, H, causal, mask)
    attn_params = (p["Wq"], p["Wk"], p["Wv"], p["Wo"], p.get("bq"), p.get("bk"), p.get("bv"), p.get("bo"))
    ffn_params = (p["W1"], p["W2"], p.get("b1"), p.get("b2"))

    if norm_first:
        n1, norm1_cache = _norm_forward(norm, x, p["gamma1"], p.get("beta1"), eps)  # (B, T, C)
        a, attn_cache = self_attention_forward(n1, *attn_params, n_heads=H, mask=m)  # (B, T, C)
        h = _residual(x, a, dt)  # the first skip: h = x + MHA(Norm1(x))
        n2, norm2_cache = _norm_forward(norm, h, p["gamma2"], p.get("beta2"), eps)
        f, ffn_cache = ffn_forward(n2, *ffn_params, activation=activation)
        y = _residual(h, f, dt)  # the second skip: y = h + FFN(Norm2(h))
    else:
        a, attn_cache = self_attention_forward(x, *attn_params, n_heads=H, mask=m)
        h, norm1_cache = _norm_forward(norm, _residual(x, a, dt), p["gamma1"], p.get("beta1"), eps)  # Norm1(x + MHA(x))
        f, ffn_cache = ffn_forward(h, *ffn_params, activation=activation)
        y, norm2_cache = _norm_forward(norm, _residual(h, f, dt), p["gamma2"], p.get("beta2"), eps)  # Norm2(h + FFN(h))
    names = tuple(n for n in PARAM_NAMES if n in p)
    cache = BlockCache(norm1_cache, attn_cache, norm2_cache, ffn_cache, norm, bool(norm_first), names, x.shape, dt)
    return y, cache


def transformer_block_backward(dout: Array, cache: BlockCache) -> tuple[Array, ...]:
    """(dx, then one gradient per parameter given, in `block_param_names` order).

    Each residual u = z + g(z) has two paths from z to the loss, so by the multivariable
    chain rule dz is the sum of the skip path (du itself: du/dz through the identity is I)
    and the branch path (g's backward of du). The block has two residuals, so twice:

    post-norm, from dy:
        du2 = Norm2'(dy)                       (and dgamma2, dbeta2)
        dh  = du2 [skip] + FFN'(du2) [branch]  (and dW1, dW2, db1, db2)
        du1 = Norm1'(dh)                       (and dgamma1, dbeta1)
        dx  = du1 [skip] + MHA'(du1) [branch]  (and dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo)

    pre-norm, from dy:
        dh  = dy [skip] + Norm2'(FFN'(dy)) [branch]
        dx  = dh [skip] + Norm1'(MHA'(dh)) [branch]

    X' is piece X's manual backward. MHA' of self-attention already sums x's three paths
    (query, key, value), see `nn.mha.self_attention_backward`. In pre-norm the skip path
    carries dy to every earlier block unchanged, which is why deep pre-norm stacks train well.
    """
    dt = cache.dtype
    dy = dout_array(PIECE, dout, cache.x_shape, dtype=dt)
    if cache.norm_first:
        dh_skip, df = residual_backward(dy, cache.x_shape)  # y = h + f: both paths get dy
        dn2, *d_ffn = ffn_backward(df, cache.ffn)
        dh_branch, *d_norm2 = _norm_backward(dn2, cache.norm2)
        dh = dh_skip + dh_branch  # the second residual's two paths, summed
        dx_skip, da = residual_backward(dh, cache.x_shape)  # h = x + a
        dn1, *d_attn = self_attention_backward(da, cache.attn)
        dx_branch, *d_norm1 = _norm_backward(dn1, cache.norm1)
        dx = dx_skip + dx_branch  # the first residual's two paths, summed
    else:
        du2, *d_norm2 = _norm_backward(dy, cache.norm2)
        dh_skip, df = residual_backward(du2, cache.x_shape)  # u2 = h + f
        dh_branch, *d_ffn = ffn_backward(df, cache.ffn)
        dh = dh_skip + dh_branch  # the second residual's two paths, summed
        du1, *d_norm1 = _norm_backward(dh, cache.norm1)
        dx_skip, da = residual_backward(du1, cache.x_shape)  # u1 = x + a
        dx_branch, *d_attn = self_attention_backward(da, cache.attn)
        dx = dx_skip + dx_branch  # the first residual's two paths, summed
    grads = block_grads_by_name(d_attn, d_ffn, d_norm1, d_norm2)
    return (dx.astype(dt, copy=False),) + tuple(np.asarray(grads[n], dtype=dt) for n in cache.names)


def block_grads_by_name(
    attn: Sequence[Array | None],
    ffn: Sequence[Array | None],
    norm1: Sequence[Array | None],
    norm2: Sequence[Array | None],
) -> dict[str, Array | None]:
    """The block's gradients by parameter name, from its sub-layers' backward results as they return them:
    attn (dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo), ffn (dW1, dW2[, db1, db2]), norm1/norm2 (dgamma, dbeta).
    One place that knows which gradient is which name (`block_param_names` picks the ones a block has)."""
    dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo = attn
    dW1, dW2, *db_ffn = ffn
    db1, db2 = db_ffn if db_ffn else (None, None)
    return {
        "Wq": dWq,
        "Wk": dWk,
        "Wv": dWv,
        "Wo": dWo,
        "W1": dW1,
        "W2": dW2,
        "gamma1": norm1[0],
        "gamma2": norm2[0],
        "bq": dbq,
        "bk": dbk,
        "bv": dbv,
        "bo": dbo,
        "b1": db1,
        "b2": db2,
        "beta1": norm1[1],
        "beta2": norm2[1],
    }


# ============================================================================ class
def init_block_params(
    d_model: int, n_heads: int, d_ff: int, rng: np.random.Generator, norm: str = "layer", bias: bool = True
) -> dict[str, Array]:
    """The block's parameters by name (`block_param_names` order): weights as in `init_mha_params`
    and `init_ffn_params`, gains 1, biases and shifts 0."""
    params = {**init_mha_params(d_model, n_heads, rng, bias=bias), **init_ffn_params(d_model, d_ff, rng, bias=bias)}
    params.update({n: np.ones(d_model) for n in GAIN_NAMES})
    params.update({n: np.zeros(d_model) for n in SHIFT_NAMES})
    return {n: params[n] for n in block_param_names(norm, bias)}


class TransformerBlock(Module):
    """One Transformer block owning its parameters (names: `block_param_names(norm, bias)`).

    `TransformerBlock(d_model, n_heads)` is the paper's encoder layer (post-norm, ReLU, layer
    norm, d_ff = 4 d_model); `TransformerBlock(d_model, n_heads, activation="gelu_tanh",
    norm_first=True, causal=True)` is GPT-2's. `forward(x, mask=None)` maps (B, T, C) to
    (B, T, C) (a padding `mask` combines with `causal`); `backward(dout)` adds (+=) every
    parameter's gradient into `self.grads` and returns dx, so blocks stack as a
    `Sequential` or in a loop: x = block.forward(x) up, dx = block.backward(dx) down.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int | None = None,
        activation: str = "relu",
        norm: str = "layer",
        norm_first: bool = False,
        bias: bool = True,
        causal: bool = False,
        eps: float = DEFAULT_EPS,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_config(norm, activation, norm_first, causal)
        self.d_model = positive_int("TransformerBlock", "d_model", d_model)
        self.d_ff = 4 * self.d_model if d_ff is None else positive_int("TransformerBlock", "d_ff", d_ff)
        self.n_heads = positive_int("TransformerBlock", "n_heads", n_heads)
        if self.d_model % self.n_heads:
            raise fail("TransformerBlock", f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        self.activation, self.norm, self.norm_first = activation, norm, bool(norm_first)
        self.bias, self.causal, self.eps = bool(bias), bool(causal), float(eps)
        rng = rng if rng is not None else np.random.default_rng()
        for name, p in init_block_params(self.d_model, self.n_heads, self.d_ff, rng, norm, self.bias).items():
            self.add_param(name, p)
        self._cache: BlockCache | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this block (for `save(path, block.config)`)."""
        return {
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "d_ff": self.d_ff,
            "activation": self.activation,
            "norm": self.norm,
            "norm_first": self.norm_first,
            "bias": self.bias,
            "causal": self.causal,
            "eps": self.eps,
        }

    def forward(self, x: Array, mask: Array | None = None) -> Array:
        """y (B, T, C) from x (B, T, C), in the common dtype of x and the parameters: after
        `set_dtype(np.float32)` a float32 x runs the block in float32."""
        params = [self.params[n] for n in block_param_names(self.norm, self.bias)]
        out, self._cache = transformer_block_forward(
            x,
            *params,
            n_heads=self.n_heads,
            activation=self.activation,
            norm=self.norm,
            norm_first=self.norm_first,
            causal=self.causal,
            mask=mask,
            eps=self.eps,
        )
        return out

    def backward(self, dout: Array) -> Array:
        if self._cache is None:
            raise RuntimeError("TransformerBlock.backward called before forward")
        dx, *grads = transformer_block_backward(dout, self._cache)
        for name, g in zip(self._cache.names, grads):
            self.grads[name] += g
        return dx


# ============================================================================ registry
def _case(
    B: int, T: int, C: int, H: int, F: int, *, norm_first: bool, norm: str, activation: str, bias: bool, mask: str = ""
) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        inputs: dict[str, Array] = {"x": rng.standard_normal((B, T, C))}
        for name in block_param_names(norm, bias):
            shape = {"W1": (C, F), "W2": (F, C), "b1": (F,)}.get(name, (C, C) if name.startswith("W") else (C,))
            if name.startswith("W"):
                inputs[name] = rng.standard_normal(shape) / math.sqrt(shape[0])
            elif name.startswith("gamma"):
                inputs[name] = 1.0 + 0.3 * rng.standard_normal(shape)
            else:
                inputs[name] = 0.3 * rng.standard_normal(shape)
        static: dict[str, Any] = {
            "n_heads": H,
            "activation": activation,
            "norm": norm,
            "norm_first": norm_first,
            "causal": mask == "causal",
            "eps": DEFAULT_EPS,
        }
        if mask == "padding":
            static["mask"] = padding_mask(np.maximum(T - np.arange(B), 1), T)  # lengths T, T-1, ...
        return inputs, static

    return make


def _block_torch(
    torch: Any,
    x: Any,
    *params: Any,
    n_heads: int,
    activation: str = "relu",
    norm: str = "layer",
    norm_first: bool = False,
    causal: bool = False,
    mask: Any = None,
    eps: float = DEFAULT_EPS,
) -> Any:
    """The torch referee (see `Piece`): the same chain, from the pieces' torch forms and F's norms."""
    p = dict(zip(block_param_names(norm, len(params) > len(WEIGHT_NAMES + GAIN_NAMES)), params))
    T = x.shape[1]
    m = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
    if mask is not None:
        m = mask if m is None else mask & m

    def norm_of(z: Any, i: int) -> Any:
        gamma, beta = p[f"gamma{i}"], p.get(f"beta{i}")
        if norm == "rms":
            return torch.nn.functional.rms_norm(z, (z.shape[-1],), gamma, eps=eps)
        return torch.nn.functional.layer_norm(z, (z.shape[-1],), gamma, beta, eps=eps)

    def mha(z: Any) -> Any:
        return _mha_torch(
            torch, z, z, *(p.get(n) for n in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")), n_heads=n_heads, mask=m
        )

    def ffn(z: Any) -> Any:
        return ffn_torch(torch, z, p["W1"], p["W2"], p.get("b1"), p.get("b2"), activation=activation)

    if norm_first:
        h = x + mha(norm_of(x, 1))
        return h + ffn(norm_of(h, 2))
    h = norm_of(x + mha(x), 1)
    return norm_of(h + ffn(h), 2)


register(
    Piece(
        name=PIECE,
        loops=transformer_block_loops,
        forward=transformer_block_forward,
        backward=transformer_block_backward,
        cases=(
            Case(
                "post_layer_relu_bias",
                _case(2, 3, 4, 2, 8, norm_first=False, norm="layer", activation="relu", bias=True),
            ),
            Case(
                "post_layer_gelu_bias_causal",
                _case(2, 3, 4, 2, 6, norm_first=False, norm="layer", activation="gelu", bias=True, mask="causal"),
            ),
            Case(
                "pre_layer_gelu_tanh_bias_causal",
                _case(2, 4, 4, 2, 8, norm_first=True, norm="layer", activation="gelu_tanh", bias=True, mask="causal"),
            ),
            Case(
                "pre_rms_relu_nobias_padding",
                _case(2, 3, 4, 1, 5, norm_first=True, norm="rms", activation="relu", bias=False, mask="padding"),
            ),
            Case(
                "post_rms_gelu_bias_padding",
                _case(2, 3, 6, 3, 4, norm_first=False, norm="rms", activation="gelu", bias=True, mask="padding"),
            ),
            Case(
                "pre_layer_relu_nobias",
                _case(1, 3, 4, 2, 8, norm_first=True, norm="layer", activation="relu", bias=False),
            ),
            Case(
                "post_layer_nobias_causal_T1",
                _case(1, 1, 2, 1, 3, norm_first=False, norm="layer", activation="gelu", bias=False, mask="causal"),
            ),
        ),
        description="a Transformer block: post-norm (the paper) or pre-norm (GPT-2), layer norm or RMSNorm, "
        "self-attention with causal/padding masks, FFN relu/gelu, biases optional",
        torch=_block_torch,
        tags=("layer",),
        covers=((_norm_forward, _norm_backward),),  # the switch between layer norm and RMSNorm
    )
)
