"""Replaceable kernels: the (forward, backward) pairs a model's composed path calls, by piece name.

The MLP's composed pair (`mlp_forward` / `mlp_backward`) and the GPT's (`gpt_forward` /
`gpt_backward`) call each nn piece through a `Kernels` mapping:

    kernels = {"linear": Kernel(my_linear_forward, my_linear_backward), "mse": Kernel(...)}
    MLP(config, kernels=kernels)          GPT(config, kernels=kernels)

A `Kernel` has nn's signatures: `forward(inputs...) -> (out, cache)` and
`backward(dout, cache) -> tuple of gradients in input order`. A mapping replaces only the pieces
it names; nn's own run everywhere else. `kernels=None` (the default) is the path as it always
was: the same calls to nn, behind one `kernels is None` test per piece (`benchmarks/learner_pieces.py`
measures both paths). The
fused fast paths (`MLP.fused_loss_and_grad`, the GPT's fused step) take no kernels: a model
given kernels trains on its composed pair.

The pieces, by name (NN_KERNELS): linear; sigmoid, relu, tanh; mse, cross_entropy (the MLP's);
layer_norm, attention, mha, transformer_block (the GPT's). In a GPT:

* transformer_block replaces each whole block (with whatever it calls inside);
* otherwise, if any of mha, attention, layer_norm is replaced, each block is the pre-norm
  chain of `composed_block_forward`, with self-attention by the replaced mha (xq = xkv = x,
  dx = dxq + dxkv), or else by `heads_forward` (project, split heads, the replaced attention,
  concatenate, project), and every layer norm (the blocks' and the final one) by layer_norm.

A replaced kernel's cache is kept as a `Step` (the backward that reads it, and the cache), so
the backward pass never hands a learner's cache to nn's backward.

The registry piece `block_kernels` (at the end) runs one block down this path with nn's
attention and layer norm handed in as replacements, so `twograd check block_kernels` and
tests/nn check the heads, the composed block and the norm steps three ways and against torch.
"""

# Shape legend: B batch, T positions, C width, H heads, D = C / H, F the FFN width.

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from engine.errors import InputError
from nn._checks import dout_array
from nn.activations import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward
from nn.attention import attention_backward, attention_forward
from nn.feedforward import ffn_backward, ffn_forward
from nn.linear import linear_backward, linear_forward
from nn.losses import cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward
from nn.masks import causal_mask
from nn.mha import mha_backward, mha_forward, self_attention_backward, self_attention_forward
from nn.normalization import layer_norm_backward, layer_norm_forward
from nn.transformer_block import (
    _norm_backward,
    _norm_forward,
    block_grads_by_name,
    block_param_names,
    transformer_block_backward,
    transformer_block_forward,
)

Array = np.ndarray
BLOCK_PIECE = "block_kernels"  # the registry's name for the kernel path of a block (below)


class Kernel(NamedTuple):
    """One piece's manual pair, with nn's signatures."""

    forward: Callable[..., Any]  # NAME_forward(inputs..., params...) -> (out, cache)
    backward: Callable[..., Any]  # NAME_backward(dout, cache) -> (d<input>, ..., d<param>, ...)


#: piece name -> Kernel; a mapping holds only the pieces it replaces (None: nn's everywhere).
Kernels = Mapping[str, Kernel]

#: twograd's own kernels, what a model calls for every piece a mapping does not name.
NN_KERNELS: dict[str, Kernel] = {
    "linear": Kernel(linear_forward, linear_backward),
    "sigmoid": Kernel(sigmoid_forward, sigmoid_backward),
    "relu": Kernel(relu_forward, relu_backward),
    "tanh": Kernel(tanh_forward, tanh_backward),
    "mse": Kernel(mse_forward, mse_backward),
    "cross_entropy": Kernel(cross_entropy_forward, cross_entropy_backward),
    "layer_norm": Kernel(layer_norm_forward, layer_norm_backward),
    "attention": Kernel(attention_forward, attention_backward),
    "mha": Kernel(mha_forward, mha_backward),
    "transformer_block": Kernel(transformer_block_forward, transformer_block_backward),
}
MLP_PIECES = ("linear", "sigmoid", "relu", "tanh", "mse", "cross_entropy")
GPT_PIECES = ("attention", "mha", "layer_norm", "transformer_block")


def check_kernels(kernels: Kernels | None, allowed: tuple[str, ...], model: str) -> dict[str, Kernel] | None:
    """kernels as a plain dict (None stays None); InputError for a piece `model` does not call or a
    value that is not a (forward, backward) pair of callables."""
    if kernels is None:
        return None
    out = {}
    for name, pair in kernels.items():
        if name not in allowed:
            raise InputError(f"{model}: no piece {name!r} to replace; its pieces are: {', '.join(allowed)}")
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(callable(f) for f in pair)):
            raise InputError(f"{model}: kernels[{name!r}] must be a (forward, backward) pair of functions")
        out[name] = Kernel(*pair)
    return out


def kernel(kernels: Kernels | None, name: str) -> Kernel:
    """The kernel a model calls for piece `name`: the mapping's, or nn's."""
    if kernels is not None:
        found = kernels.get(name)
        if found is not None:
            return found
    return NN_KERNELS[name]


class Step(NamedTuple):
    """A replaced kernel's cache, with the backward that reads it: `backward(dout, cache)`."""

    backward: Callable[..., tuple[Any, ...]]
    cache: Any


# ---------------------------------------------------------------------------- norms
def norm_kernel_forward(
    kernels: Kernels | None, norm: str, x: Array, gamma: Array, beta: Array | None, eps: float
) -> tuple[Array, Any]:
    """A GPT's norm (layer or rms) of x (B, T, C): nn's, or a replaced layer_norm (cache kept as a Step)."""
    if kernels is None or norm != "layer" or "layer_norm" not in kernels:
        return _norm_forward(norm, x, gamma, beta, eps)
    k = kernels["layer_norm"]
    y, cache = k.forward(x, gamma, np.zeros_like(gamma) if beta is None else beta, eps=eps)
    return y, Step(k.backward, cache)


def norm_kernel_backward(dout: Array, cache: Any) -> tuple[Array, Array, Array | None]:
    """(dx, dgamma, dbeta) of a norm made by `norm_kernel_forward` (dbeta None for RMSNorm)."""
    if isinstance(cache, Step):
        return cache.backward(dout, cache.cache)
    return _norm_backward(dout, cache)


# ---------------------------------------------------------------------------- self-attention
class HeadsCache(NamedTuple):
    """What `heads_backward` needs: the projections' inputs and weights, and the attention's own cache."""

    x2: Array  # (B*T, C) the input, rows
    W: tuple[Array, Array, Array, Array]  # Wq, Wk, Wv, Wo (C, C)
    has_bias: tuple[bool, bool, bool, bool]
    O: Array  # (B*T, C) the heads' outputs, concatenated
    attention: Step  # the attention kernel's backward and cache
    shape: tuple[int, int, int, int]  # (B, T, H, D)


def heads_forward(
    attention: Kernel,
    x: Array,
    Wq: Array,
    Wk: Array,
    Wv: Array,
    Wo: Array,
    bq: Array | None,
    bk: Array | None,
    bv: Array | None,
    bo: Array | None,
    *,
    n_heads: int,
    mask: Array | None,
) -> tuple[Array, HeadsCache]:
    """Multi-head self-attention of x (B, T, C) around an attention kernel:

        Q = x Wq + bq,  K = x Wk + bk,  V = x Wv + bv       (B, T, C), split into heads (B, H, T, D)
        Oh = attention(Qh, Kh, Vh, mask)                    (B, H, T, D), the kernel
        out = concat(Oh) Wo + bo                            (B, T, C)

    the math of `nn.mha.self_attention_forward`, which runs a fused attention instead of a kernel.
    """
    B, T, C = x.shape
    H = n_heads
    D = C // H
    x2 = x.reshape(B * T, C)

    def heads(W: Array, b: Array | None) -> Array:
        Y = x2 @ W if b is None else x2 @ W + b  # (B*T, C)
        return np.ascontiguousarray(Y.reshape(B, T, H, D).transpose(0, 2, 1, 3))  # (B, H, T, D)

    Oh, att_cache = attention.forward(heads(Wq, bq), heads(Wk, bk), heads(Wv, bv), mask)  # (B, H, T, D)
    O = np.asarray(Oh).transpose(0, 2, 1, 3).reshape(B * T, C)  # heads side by side
    out = O @ Wo if bo is None else O @ Wo + bo  # (B*T, C)
    has_bias = (bq is not None, bk is not None, bv is not None, bo is not None)
    return out.reshape(B, T, C), HeadsCache(
        x2, (Wq, Wk, Wv, Wo), has_bias, O, Step(attention.backward, att_cache), (B, T, H, D)
    )


def heads_backward(dout: Array, cache: HeadsCache) -> tuple[Array | None, ...]:
    """(dx, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo), as `nn.mha.self_attention_backward`:

        dWo = O^T dout,  dbo = sum_rows dout,  dO = dout Wo^T, split into heads dOh
        dQh, dKh, dVh = the attention kernel's backward of dOh
        dW_i = x^T dI,  db_i = sum_rows dI,  dx = dQ Wq^T + dK Wk^T + dV Wv^T   (x's three paths, summed)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    B, T, H, D = cache.shape
    Wq, Wk, Wv, Wo = cache.W
    dout2 = np.asarray(dout).reshape(B * T, H * D)
    dWo = cache.O.T @ dout2  # (C, C)
    dOh = np.ascontiguousarray((dout2 @ Wo.T).reshape(B, T, H, D).transpose(0, 2, 1, 3))  # (B, H, T, D)
    dQh, dKh, dVh = cache.attention.backward(dOh, cache.attention.cache)
    dI = [np.asarray(d).transpose(0, 2, 1, 3).reshape(B * T, H * D) for d in (dQh, dKh, dVh)]  # (B*T, C) each
    dW = [cache.x2.T @ d for d in dI]
    dx = dI[0] @ Wq.T + dI[1] @ Wk.T + dI[2] @ Wv.T
    db = [d.sum(axis=0) if given else None for d, given in zip(dI + [dout2], cache.has_bias)]
    return (dx.reshape(B, T, H * D), *dW, dWo, *db)


#: Wq Wk Wv Wo (required), then bq bk bv bo (None: no such bias)
AttentionParams = tuple[Array, Array, Array, Array, Array | None, Array | None, Array | None, Array | None]


def attention_step(
    kernels: Kernels, x: Array, params: AttentionParams, n_heads: int, mask: Array | None
) -> tuple[Array, Step]:
    """Self-attention of x (B, T, C) with params Wq Wk Wv Wo bq bk bv bo: the replaced mha, else
    `heads_forward` around the replaced attention, else nn's; the Step's backward gives
    (dx, dWq, dWk, dWv, dWo, dbq, dbk, dbv, dbo)."""
    if "mha" in kernels:
        k = kernels["mha"]
        out, cache = k.forward(x, x, *params, n_heads=n_heads, mask=mask)

        def mha_self_backward(dout: Array, c: Any) -> tuple[Any, ...]:
            dxq, dxkv, *grads = k.backward(dout, c)
            return (dxq + dxkv, *grads)  # x is both the queries' and the keys' and values' input

        return out, Step(mha_self_backward, cache)
    if "attention" in kernels:
        out, cache = heads_forward(kernels["attention"], x, *params, n_heads=n_heads, mask=mask)
        return out, Step(heads_backward, cache)
    out, cache = self_attention_forward(x, *params, n_heads=n_heads, mask=mask)
    return out, Step(self_attention_backward, cache)


# ---------------------------------------------------------------------------- the block
class ComposedBlockCache(NamedTuple):
    norm1: Any
    attn: Step
    norm2: Any
    ffn: Any
    names: tuple[str, ...]  # the parameters, in block_param_names order
    shape: tuple[int, ...]  # x's (B, T, C)


def composed_block_forward(
    kernels: Kernels,
    x: Array,
    *params: Array,
    n_heads: int,
    activation: str,
    norm: str,
    norm_first: bool,
    causal: bool,
    eps: float,
) -> tuple[Array, ComposedBlockCache]:
    """A GPT's pre-norm block (x (B, T, C) -> y) with the replaced kernels:

        n1 = Norm1(x)      a = MHA(n1)     h = x + a
        n2 = Norm2(h)      f = FFN(n2)     y = h + f

    the chain of `nn.transformer_block.transformer_block_forward` (norm_first=True), with the norms
    and the self-attention from `norm_kernel_forward` / `attention_step`; the FFN is nn's.
    """
    if not norm_first:
        raise InputError("replaced kernels run a GPT's pre-norm block (norm_first=True); this block is post-norm")
    names = block_param_names(norm, len(params) > 8)  # with biases: bq .. b2 (and beta1, beta2) after the gains
    p = dict(zip(names, params))
    T = x.shape[1]
    mask = causal_mask(T) if causal else None
    n1, norm1 = norm_kernel_forward(kernels, norm, x, p["gamma1"], p.get("beta1"), eps)
    attn_params = (p["Wq"], p["Wk"], p["Wv"], p["Wo"], p.get("bq"), p.get("bk"), p.get("bv"), p.get("bo"))
    a, attn = attention_step(kernels, n1, attn_params, n_heads, mask)
    h = x + a  # the first skip
    n2, norm2 = norm_kernel_forward(kernels, norm, h, p["gamma2"], p.get("beta2"), eps)
    f, ffn = ffn_forward(n2, p["W1"], p["W2"], p.get("b1"), p.get("b2"), activation=activation)
    return h + f, ComposedBlockCache(norm1, attn, norm2, ffn, names, x.shape)  # the second skip


def composed_block_backward(dy: Array, cache: ComposedBlockCache) -> tuple[Array, ...]:
    """(dx, then one gradient per parameter in block_param_names order), as nn's pre-norm backward:

        dh = dy [skip] + Norm2'(FFN'(dy)) [branch]
        dx = dh [skip] + Norm1'(MHA'(dh)) [branch]
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    dy = dout_array(BLOCK_PIECE, dy, cache.shape, dtype=cache.ffn.dtype)
    dn2, *d_ffn = ffn_backward(dy, cache.ffn)
    dh_branch, *d_norm2 = norm_kernel_backward(dn2, cache.norm2)
    dh = dy + dh_branch  # the second residual's two paths
    dn1, *d_attn = cache.attn.backward(dh, cache.attn.cache)
    dx_branch, *d_norm1 = norm_kernel_backward(dn1, cache.norm1)
    dx = dh + dx_branch  # the first residual's two paths
    grads = block_grads_by_name(d_attn, d_ffn, d_norm1, d_norm2)
    return (dx, *(grads[n] for n in cache.names))


def block_forward(kernels: Kernels | None, x: Array, *params: Array, **static: Any) -> tuple[Array, Any]:
    """One GPT block: nn's `transformer_block_forward` (kernels None, or none of the block's pieces
    replaced), a replaced transformer_block, or `composed_block_forward`."""
    if kernels is None or not any(name in kernels for name in GPT_PIECES):
        return transformer_block_forward(x, *params, **static)
    if "transformer_block" in kernels:
        k = kernels["transformer_block"]
        y, cache = k.forward(x, *params, **static)
        return y, Step(k.backward, cache)
    y, cache = composed_block_forward(kernels, x, *params, **static)
    return y, Step(composed_block_backward, cache)


def block_backward(dout: Array, cache: Any) -> tuple[Array, ...]:
    """(dx, then the block's parameter gradients) of a block made by `block_forward`."""
    if isinstance(cache, Step):
        return cache.backward(dout, cache.cache)
    return transformer_block_backward(dout, cache)


# ---------------------------------------------------------------------------- registry
#: nn's own attention and layer norm, handed over as if they were replacements: the path a learner's
#: pieces take (`block_forward` -> `composed_block_forward` -> `heads_forward`, norms as Steps).
_NN_AS_REPLACED: dict[str, Kernel] = {"attention": NN_KERNELS["attention"], "layer_norm": NN_KERNELS["layer_norm"]}


def replaced_block_forward(x: Array, *params: Array, **static: Any) -> tuple[Array, Any]:
    """`block_forward` with nn's attention and layer norm given as replacements (the registry's
    piece `block_kernels`: the kernel path checked three ways and against torch)."""
    return block_forward(_NN_AS_REPLACED, x, *params, **static)


def replaced_block_backward(dout: Array, cache: Any) -> tuple[Array, ...]:
    """`block_backward` of `replaced_block_forward`'s cache."""
    return block_backward(dout, cache)


def _register() -> None:
    from nn.registry import Case, Piece, register
    from nn.transformer_block import _block_torch, _case, transformer_block_loops

    register(
        Piece(
            name=BLOCK_PIECE,
            loops=transformer_block_loops,
            forward=replaced_block_forward,
            backward=replaced_block_backward,
            cases=(
                Case(
                    "pre_layer_gelu_tanh_bias_causal",
                    _case(
                        2, 4, 4, 2, 8, norm_first=True, norm="layer", activation="gelu_tanh", bias=True, mask="causal"
                    ),
                ),
                Case(
                    "pre_layer_relu_nobias_causal_H1",
                    _case(1, 3, 4, 1, 5, norm_first=True, norm="layer", activation="relu", bias=False, mask="causal"),
                ),
                Case(
                    "pre_rms_gelu_bias_causal",
                    _case(2, 3, 6, 3, 4, norm_first=True, norm="rms", activation="gelu", bias=True, mask="causal"),
                ),
            ),
            description="a GPT block through replaceable kernels (models/zoo/kernels.py), nn's attention and layer norm "
            "handed in as the replacements: the path a learner's pieces take in `train --learner`",
            torch=_block_torch,
            tags=("layer",),
            covers=(
                (block_forward, block_backward),
                (composed_block_forward, composed_block_backward),
                (heads_forward, heads_backward),
                (norm_kernel_forward, norm_kernel_backward),
            ),
        )
    )


_register()
