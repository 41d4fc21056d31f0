"""A decoder-only GPT built from `nn`, both ways, with its whole backward derived by hand.

    x_0    = E[idx] (* sqrt(C) with scale_embedding) + P[:T]      token embedding + positions
                                              (then Norm_e(x_0) with embed_norm)
    x_l    = Block_l(x_{l-1})                 l = 1 .. N          causal pre-norm blocks (GPT-2)
    h      = Norm_f(x_N)                      (x_N itself with final_norm False)   the final norm
    logits = h W_head,  W_head = E^T when tied                    (B, T, V)
    loss   = mean over positions with a target of -log softmax(logits)[target]

Three forms of the same model, all reading the same parameters (names: `gpt_param_names`):

* `gpt_loops`: the pieces' loops forms composed (embedding, positions, `transformer_block_loops`,
  the norm, `matmul_loops`, `sequence_cross_entropy_loops`); on `engine.Value`s the engine
  backpropagates it (the graph path: for checking and drawing, slow).
* `gpt_forward` / `gpt_backward`: the pieces' manual pairs composed; the backward runs them in
  reverse (chain rule, one piece at a time). A tied head gets two gradient contributions
  (the lookup and the output projection), summed.
* `GPT`: the Module that owns the parameters in one flat buffer; `loss_and_grad(idx, targets)`
  is the manual path, `logits(idx)` the inference forward (used by sampling).

Every norm scales by a learned gain gamma unless `norm_gain` is False (then x / rms(x), or a
layer norm's (x - mean) / std + beta); gains, `embed_norm` and `final_norm` default to GPT-2's
choices, and the micro preset takes the one-file scalar GPT's (no gains, Norm_e, no Norm_f).

`gpt` is registered in `nn.registry`, so `twograd check gpt` checks the whole model three ways.
float64 is the default (for checking); `dtype="float32"` runs the same code in float32.
"""

# Shape legend: B batch, T positions (<= context), C d_model, V vocabulary, N blocks,
# H heads, F d_ff; idx and targets (B, T) int64.

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from engine.errors import InputError
from engine.gradcheck import graph_gradients
from models.zoo.gpt_fused import (
    FusedGPT,
    act_backward,
    act_forward,
    causal_attention_backward,
    causal_attention_forward,
    norm_backward,
    norm_forward,
)
from models.zoo.kernels import (
    GPT_PIECES,
    Kernels,
    block_backward,
    block_forward,
    check_kernels,
    norm_kernel_backward,
    norm_kernel_forward,
)
from nn._checks import dout_array
from nn.embedding import token_embedding_backward, token_embedding_forward, token_embedding_loops
from nn.linear import matmul_backward, matmul_forward, matmul_loops
from nn.losses import (
    IGNORE_INDEX,
    sequence_cross_entropy_backward,
    sequence_cross_entropy_forward,
    sequence_cross_entropy_loops,
)
from nn.mha import attention_weights
from nn.module import Module
from nn.normalization import DEFAULT_EPS
from nn.positions import (
    LearnedPositionsCache,
    learned_positions_backward,
    learned_positions_forward,
    learned_positions_loops,
    sinusoidal_positions_backward,
    sinusoidal_positions_forward,
    sinusoidal_positions_loops,
)
from nn.registry import Case, Piece, register
from nn.transformer_block import (
    GAIN_NAMES,
    _norm_loops,
    block_param_names,
    init_block_params,
    transformer_block_loops,
)

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")
NORMS = ("layer", "rms")
POSITIONS = ("learned", "sinusoidal")
DTYPES = ("float64", "float32")


@dataclass
class GPTConfig:
    """Everything that defines a GPT's shape and its initial weights."""

    vocab_size: int = 32  # V: tokens it reads and predicts
    context: int = 16  # the longest sequence it reads (rows of the learned position table)
    d_model: int = 32  # C: the width of every position's vector
    n_heads: int = 2  # H: attention heads per block (C must be a multiple of H)
    n_layers: int = 2  # N: causal Transformer blocks
    d_ff: int | None = None  # F: the feed-forward width; None means 4 C, as in the paper and GPT-2
    activation: str = "gelu"  # the feed-forward nonlinearity: relu, gelu (exact) or gelu_tanh (GPT-2's)
    norm: str = "layer"  # layer (layer norm) or rms (RMSNorm, as LLaMA)
    bias: bool = True  # biases in attention, feed-forward and layer norm; False drops them all
    positions: str = "learned"  # learned (a table, GPT-2) or sinusoidal (the paper's, fixed)
    tied: bool = True  # the output head is the token embedding transposed (fewer parameters)
    scale_embedding: bool = False  # multiply token embeddings by sqrt(C), as the paper does
    # The one-file scalar GPT normalises differently from GPT-2 (`--preset micro` mirrors it):
    norm_gain: bool = True  # the norms scale by learned gains gamma; False: x / rms(x) alone (no gamma)
    embed_norm: bool = False  # a norm of x_0 = E[idx] + P before the first block
    final_norm: bool = True  # Norm_f before the head; False: the head reads x_N as it is
    eps: float = DEFAULT_EPS  # the norms' epsilon inside the square root
    dtype: str = "float64"  # float64 for checking, float32 for speed: one code path
    seed: int = 0  # seeds the initial weights

    @property
    def ffn_width(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    def validate(self) -> GPTConfig:
        """Return self, or raise InputError naming the bad field."""
        for name in ("vocab_size", "context", "d_model", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"GPTConfig.{name} must be a whole number >= 1, got {value!r}")
        if self.d_ff is not None and (isinstance(self.d_ff, bool) or not isinstance(self.d_ff, int) or self.d_ff < 1):
            raise InputError(f"GPTConfig.d_ff must be a whole number >= 1 or None, got {self.d_ff!r}")
        if self.d_model % self.n_heads:
            raise InputError(f"GPTConfig: d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        for name, choices in (
            ("activation", ACTIVATIONS),
            ("norm", NORMS),
            ("positions", POSITIONS),
            ("dtype", DTYPES),
        ):
            if getattr(self, name) not in choices:
                raise InputError(
                    f"GPTConfig.{name}: unknown {getattr(self, name)!r}; choose one of: {', '.join(choices)}"
                )
        for name in ("bias", "tied", "scale_embedding", "norm_gain", "embed_norm", "final_norm"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"GPTConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if not (isinstance(self.eps, float) and self.eps > 0):
            raise InputError(f"GPTConfig.eps must be a positive float, got {self.eps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"GPTConfig.seed must be a whole number >= 0, got {self.seed!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def static(self) -> dict[str, Any]:
        """The keyword arguments of `gpt_loops` / `gpt_forward` (what the shapes do not tell)."""
        return {
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
            "activation": self.activation,
            "norm": self.norm,
            "bias": self.bias,
            "positions": self.positions,
            "tied": self.tied,
            "scale_embedding": self.scale_embedding,
            "eps": self.eps,
            "norm_gain": self.norm_gain,
            "embed_norm": self.embed_norm,
            "final_norm": self.final_norm,
        }


def count_parameters(config: GPTConfig) -> int:
    """P, from the config alone (Python ints: nothing is allocated)."""
    C, V, F = config.d_model, config.vocab_size, config.ffn_width
    gain = C if config.norm_gain else 0
    shift = C if config.norm == "layer" and config.bias else 0
    block = 4 * C * C + 2 * C * F + 2 * gain  # weights and gains
    if config.bias:
        block += 4 * C + F + C + 2 * shift
    norms = (gain + shift) * (int(config.embed_norm) + int(config.final_norm))
    return (
        V * C
        + (config.context * C if config.positions == "learned" else 0)
        + config.n_layers * block
        + norms
        + (0 if config.tied else C * V)
    )


def _norm_names(prefix: str, norm: str, bias: bool, norm_gain: bool) -> list[str]:
    """A norm's parameters: gamma unless the norms have no gains, beta for a layer norm with biases."""
    return ([f"{prefix}.gamma"] if norm_gain else []) + ([f"{prefix}.beta"] if norm == "layer" and bias else [])


def _block_names(norm: str, bias: bool, norm_gain: bool) -> list[str]:
    """A block's parameter names (`block_param_names`), without gamma1 / gamma2 when the norms have no gains."""
    return [n for n in block_param_names(norm, bias) if norm_gain or n not in GAIN_NAMES]


def gpt_param_names(
    n_layers: int,
    norm: str = "layer",
    bias: bool = True,
    positions: str = "learned",
    tied: bool = True,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
) -> list[str]:
    """Parameter names in argument order: wte, [wpe], [norm_e.*], h{l}.<block names>, [norm_f.*], [head].

    norm_e / norm_f hold gamma (unless norm_gain is False) and, for a layer norm with biases, beta."""
    names = ["wte"] + (["wpe"] if positions == "learned" else [])
    if embed_norm:
        names += _norm_names("norm_e", norm, bias, norm_gain)
    for layer in range(n_layers):
        names += [f"h{layer}.{n}" for n in _block_names(norm, bias, norm_gain)]
    if final_norm:
        names += _norm_names("norm_f", norm, bias, norm_gain)
    if not tied:
        names.append("head")
    return names


def gpt_param_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter, in `gpt_param_names` order, from the config alone (nothing
    is allocated: a run folder's arrays are checked against these before they are read).

        wte (V, C)   wpe (T, C)   h{l}.Wq Wk Wv Wo (C, C)   h{l}.W1 (C, F)   h{l}.W2 (F, C)
        h{l}.b1 (F,)   every other bias, gain and shift (C,)   head (C, V)
    """
    C, V, F, T = config.d_model, config.vocab_size, config.ffn_width, config.context
    block = {"Wq": (C, C), "Wk": (C, C), "Wv": (C, C), "Wo": (C, C), "W1": (C, F), "W2": (F, C), "b1": (F,)}
    fixed = {"wte": (V, C), "wpe": (T, C), "head": (C, V)}
    shapes: dict[str, tuple[int, ...]] = {}
    for name in gpt_param_names(
        config.n_layers,
        config.norm,
        config.bias,
        config.positions,
        config.tied,
        config.norm_gain,
        config.embed_norm,
        config.final_norm,
    ):
        short = name.partition(".")[2]
        shapes[name] = fixed[name] if name in fixed else block.get(short, (C,)) if name.startswith("h") else (C,)
    return shapes


def _names(
    n_layers: int,
    norm: str,
    bias: bool,
    positions: str,
    tied: bool,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
    **_: Any,
) -> list[str]:
    return gpt_param_names(n_layers, norm, bias, positions, tied, norm_gain, embed_norm, final_norm)


def _block_args(p: dict[str, Any], layer: int, norm: str, bias: bool, ones: Any) -> list[Any]:
    """Block `layer`'s arguments in `block_param_names` order; a gain the model does not have is
    the constant `ones` (plain 1.0s in the loops form: no Value, no gradient)."""
    return [
        p.get(f"h{layer}.{n}", ones) if n in GAIN_NAMES else p[f"h{layer}.{n}"] for n in block_param_names(norm, bias)
    ]


def _block_kwargs(n_heads: int, activation: str, norm: str, eps: float, **_: Any) -> dict[str, Any]:
    """A GPT's blocks are GPT-2's: pre-norm and causal."""
    return {"n_heads": n_heads, "activation": activation, "norm": norm, "norm_first": True, "causal": True, "eps": eps}


def _split(params: tuple[Any, ...], names: list[str]) -> dict[str, Any]:
    if len(params) != len(names):
        raise InputError(f"gpt: expected {len(names)} parameter arrays ({', '.join(names)}), got {len(params)}")
    return dict(zip(names, params))


# ---------------------------------------------------------------------------- loops form
def gpt_loops(
    *params: Any,
    idx: Any,
    targets: Any,
    n_heads: int,
    n_layers: int,
    activation: str = "gelu",
    norm: str = "layer",
    bias: bool = True,
    positions: str = "learned",
    tied: bool = True,
    scale_embedding: bool = False,
    eps: float = DEFAULT_EPS,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> Any:
    """The loss of the GPT on nested lists (floats or Values): the pieces' loops forms, in order."""
    names = _names(n_layers, norm, bias, positions, tied, norm_gain, embed_norm, final_norm)
    p = _split(params, names)
    idx = np.asarray(idx)
    x = token_embedding_loops(p["wte"], idx, scale=scale_embedding)  # (B, T, C)
    x = learned_positions_loops(x, p["wpe"]) if positions == "learned" else sinusoidal_positions_loops(x)
    ones = [1.0] * len(p["wte"][0])  # the gain of a norm without one: constants
    if embed_norm:
        x = [_norm_loops(norm, seq, p.get("norm_e.gamma", ones), p.get("norm_e.beta"), eps) for seq in x]
    block = _block_kwargs(n_heads, activation, norm, eps)
    for layer in range(n_layers):
        x = transformer_block_loops(x, *_block_args(p, layer, norm, bias, ones), **block)
    h = (
        [_norm_loops(norm, seq, p.get("norm_f.gamma", ones), p.get("norm_f.beta"), eps) for seq in x]
        if final_norm
        else x
    )
    head = [list(col) for col in zip(*p["wte"])] if tied else p["head"]  # (C, V): E^T when tied
    logits = [matmul_loops(seq, head) for seq in h]  # (B, T, V)
    return sequence_cross_entropy_loops(logits, targets=targets, ignore_index=ignore_index)


# ---------------------------------------------------------------------------- manual pair
class GPTCache(NamedTuple):
    embed: Any  # TokenEmbeddingCache
    pos: Any  # LearnedPositionsCache or the input shape (sinusoidal)
    blocks: list[Any]  # one BlockCache per block
    norm_f: Any  # the final norm's cache
    head: Any  # MatmulCache of logits = h W_head, over (B*T, C) rows
    loss: Any  # SequenceCrossEntropyCache
    names: list[str]
    static: dict[str, Any]
    shape: tuple[int, int, int]  # (B, T, C)
    logits: np.ndarray  # (B, T, V), for evaluation and sampling
    norm_e: Any = None  # the embedding norm's cache (embed_norm), else None; norm_f is None without final_norm


def gpt_hidden(
    p: dict[str, np.ndarray], idx: np.ndarray, static: dict[str, Any], kernels: Kernels | None = None
) -> tuple[np.ndarray, list[Any]]:
    """h = Norm_f(x_N) (B, T, C) and the caches on the way (embedding, positions, blocks, norm).

    `kernels` replaces the blocks' pieces and the norms (models/zoo/kernels.py); None is nn's own."""
    x, embed_cache = token_embedding_forward(p["wte"], idx, scale=static["scale_embedding"])  # (B, T, C)
    pos_cache: LearnedPositionsCache | tuple[int, ...]  # the learned table's cache, or the sinusoids' shape
    if static["positions"] == "learned":
        x, pos_cache = learned_positions_forward(x, p["wpe"])
    else:
        x, pos_cache = sinusoidal_positions_forward(x)
    dt = p["wte"].dtype
    x = x.astype(dt, copy=False)
    ones = np.ones(x.shape[-1], dtype=dt)  # the gain of a norm without one: a constant
    norm_e_cache = None
    if static.get("embed_norm", False):
        x, norm_e_cache = norm_kernel_forward(
            kernels, static["norm"], x, p.get("norm_e.gamma", ones), p.get("norm_e.beta"), static["eps"]
        )
        x = x.astype(dt, copy=False)
    block = _block_kwargs(**static)
    block_caches = []
    for layer in range(static["n_layers"]):
        x, c = block_forward(kernels, x, *_block_args(p, layer, static["norm"], static["bias"], ones), **block)
        block_caches.append(c)
    norm_cache = None
    if static.get("final_norm", True):
        x, norm_cache = norm_kernel_forward(
            kernels, static["norm"], x, p.get("norm_f.gamma", ones), p.get("norm_f.beta"), static["eps"]
        )
    return x.astype(dt, copy=False), [embed_cache, pos_cache, block_caches, norm_cache, norm_e_cache]


def gpt_forward(
    *params: Any,
    idx: Any,
    targets: Any,
    n_heads: int,
    n_layers: int,
    activation: str = "gelu",
    norm: str = "layer",
    bias: bool = True,
    positions: str = "learned",
    tied: bool = True,
    scale_embedding: bool = False,
    eps: float = DEFAULT_EPS,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
    ignore_index: int = IGNORE_INDEX,
    kernels: Kernels | None = None,
) -> tuple[np.ndarray, GPTCache]:
    """The loss (0-d) of the GPT on idx (B, T) against targets (B, T), composing the nn manual forwards
    (or the pieces `kernels` replaces: models/zoo/kernels.py; `gpt_backward` follows the cache)."""
    static: dict[str, Any] = {
        "n_heads": n_heads,
        "n_layers": n_layers,
        "activation": activation,
        "norm": norm,
        "bias": bias,
        "positions": positions,
        "tied": tied,
        "scale_embedding": scale_embedding,
        "eps": eps,
        "norm_gain": norm_gain,
        "embed_norm": embed_norm,
        "final_norm": final_norm,
    }
    names = _names(**static)
    p = _split(params, names)
    idx = np.asarray(idx)
    h, (embed_cache, pos_cache, block_caches, norm_cache, norm_e_cache) = gpt_hidden(p, idx, static, kernels)
    B, T, C = h.shape
    W_head = p["wte"].T if tied else p["head"]  # (C, V)
    logits2, head_cache = matmul_forward(h.reshape(B * T, C), W_head)  # (B*T, V)
    logits = logits2.reshape(B, T, -1)
    loss, loss_cache = sequence_cross_entropy_forward(logits, targets=targets, ignore_index=ignore_index)
    cache = GPTCache(
        embed_cache,
        pos_cache,
        block_caches,
        norm_cache,
        head_cache,
        loss_cache,
        names,
        static,
        (B, T, C),
        logits,
        norm_e_cache,
    )
    return loss, cache


def gpt_backward(dout: Any, cache: GPTCache) -> tuple[np.ndarray, ...]:
    """One gradient per parameter, in `gpt_param_names` order: the pieces' backwards in reverse.

        dlogits           = sequence_cross_entropy'(dout)          (p - onehot) / K on kept positions
        dh, dW_head       = matmul'(dlogits)                       dh = dlogits W_head^T, dW_head = h^T dlogits
        dx_N, dgamma_f    = Norm_f'(dh)
        dx_{l-1}, dθ_l    = Block_l'(dx_l)        l = N .. 1       (each block's two residual paths inside)
        dx_0 -> dwpe      = positions'(dx_0)                       dwpe[t] = sum_b dx_0[b, t] (learned)
        dwte              = embedding'(dx_0)  [+ dW_head^T if tied]  the scatter-add of the rows read

    With a tied head E appears twice (rows read at the bottom, columns of the output
    projection at the top), so its gradient is the sum of both contributions.
    """
    (dlogits,) = sequence_cross_entropy_backward(dout, cache.loss)  # (B, T, V)
    return gpt_backward_logits(dlogits, cache)


def gpt_backward_logits(dlogits: np.ndarray, cache: GPTCache) -> tuple[np.ndarray, ...]:
    """The parameters' gradients from any dL/dlogits (B, T, V): every step of `gpt_backward`
    after the loss's own, for losses other than the cached cross-entropy (distillation's KL,
    alignment's losses of token log-probabilities). Checked through `gpt_backward`, which ends in it."""
    static = cache.static
    B, T, C = cache.shape
    dt = cache.logits.dtype
    dh2, dW_head = matmul_backward(dlogits.reshape(B * T, -1).astype(dt, copy=False), cache.head)  # (B*T, C), (C, V)
    dx = dh2.reshape(B, T, C)
    grads: dict[
        str, np.ndarray | None
    ] = {}  # a gradient of a constant (a gain the model does not have) is dropped below
    if cache.norm_f is not None:
        dx, grads["norm_f.gamma"], grads["norm_f.beta"] = norm_kernel_backward(dx, cache.norm_f)
    for layer in range(static["n_layers"] - 1, -1, -1):
        dx, *dblock = block_backward(dx.astype(dt, copy=False), cache.blocks[layer])
        for name, g in zip(block_param_names(static["norm"], static["bias"]), dblock):
            grads[f"h{layer}.{name}"] = g
    if cache.norm_e is not None:
        dx, grads["norm_e.gamma"], grads["norm_e.beta"] = norm_kernel_backward(dx.astype(dt, copy=False), cache.norm_e)
    if static["positions"] == "learned":
        dx, grads["wpe"] = learned_positions_backward(dx, cache.pos)
    else:
        (dx,) = sinusoidal_positions_backward(dx, cache.pos)
    (dwte,) = token_embedding_backward(dx, cache.embed)
    if static["tied"]:
        dwte = dwte + dW_head.T  # the second use of E: the output projection's gradient
    else:
        grads["head"] = dW_head
    grads["wte"] = dwte
    return tuple(np.asarray(grads[n], dtype=dt) for n in cache.names)


# ---------------------------------------------------------------------------- the model
def init_gpt_params(config: GPTConfig) -> dict[str, np.ndarray]:
    """Initial weights: embeddings and projections ~ N(0, 1/fan-in) (as nn's init), gains 1, biases 0.

    The token table is N(0, 1/C) when tied, so the logits h E^T start near unit size.
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    C, V = config.d_model, config.vocab_size
    params: dict[str, np.ndarray] = {"wte": rng.standard_normal((V, C)) / math.sqrt(C)}  # (V, C)
    if config.positions == "learned":
        params["wpe"] = rng.standard_normal((config.context, C)) / math.sqrt(C)  # (T_max, C)
    for layer in range(config.n_layers):
        block = init_block_params(C, config.n_heads, config.ffn_width, rng, norm=config.norm, bias=config.bias)
        params.update({f"h{layer}.{n}": a for n, a in block.items()})
    for norm in ("norm_e", "norm_f"):
        params[f"{norm}.gamma"] = np.ones(C)
        params[f"{norm}.beta"] = np.zeros(C)
    if not config.tied:
        params["head"] = rng.standard_normal((C, V)) / math.sqrt(C)  # (C, V)
    # Only the config's parameters, in `gpt_param_names` order (the random draws above are the
    # same whatever the norms hold, so a config's weights do not depend on its norm options).
    names = gpt_param_names(
        config.n_layers,
        config.norm,
        config.bias,
        config.positions,
        config.tied,
        config.norm_gain,
        config.embed_norm,
        config.final_norm,
    )
    return {n: params[n] for n in names}


class _Arrays(Module):
    """A submodule that only holds named arrays (a block's, the final norm's), so that the GPT's
    checkpoint names are the dotted `gpt_param_names` ("h0.Wq", "norm_f.gamma")."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        for name, a in arrays.items():
            self.add_param(name, a)


class GPT(Module):
    """A decoder-only GPT owning its parameters in one flat buffer (see the module docstring).

        model = GPT(GPTConfig(vocab_size=65, context=64, d_model=64, n_heads=4, n_layers=2))
        loss = model.loss_and_grad(idx, targets)      # adds into model.grads (flat: model.flat_grads)

    Its parameter names (in `state_dict()`, checkpoints and `flat_params` order) are
    `gpt_param_names(config)`: wte, [wpe], h0.Wq ... h{N-1}.beta2, norm_f.gamma, [norm_f.beta], [head].
    """

    def __init__(self, config: GPTConfig | None = None, *, kernels: Kernels | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = GPTConfig(**{**(config or GPTConfig()).to_dict(), **overrides}).validate()
        # Pieces replaced in the composed path (models/zoo/kernels.py; a learner's, `train --learner`);
        # None: nn's own, and the fused step trains. A model with kernels always runs the composed pair.
        self.kernels = check_kernels(kernels, GPT_PIECES, "GPT")
        c = self.config
        self.names = gpt_param_names(
            c.n_layers, c.norm, c.bias, c.positions, c.tied, c.norm_gain, c.embed_norm, c.final_norm
        )
        # wte, wpe, head are the GPT's own; "h0.Wq" lives in submodule h0 as "Wq" (same order)
        entries: list[tuple[str, Any]] = []
        for name, array in init_gpt_params(self.config).items():  # in gpt_param_names order
            prefix, _, rest = name.partition(".")
            if not rest:
                entries.append((name, array))
            elif entries and entries[-1][0] == prefix:
                entries[-1][1][rest] = array
            else:
                entries.append((prefix, {rest: array}))
        for name, item in entries:
            if isinstance(item, dict):
                self.add_module(name, _Arrays(item))
            else:
                self.add_param(name, item)
        if self.config.dtype == "float32":
            self.set_dtype(np.float32)

    def save(self, path: Any, config: dict[str, Any] | None = None) -> Any:
        """Checkpoint (npz + json) with this model's config, so `GPT.load(path)` rebuilds it."""
        return super().save(path, config if config is not None else self.config.to_dict())

    def param_list(self) -> list[np.ndarray]:
        """The parameters in `gpt_param_names` order (views into flat_params)."""
        params = dict(self.named_parameters())
        return [params[n] for n in self.names]

    def grad_list(self) -> list[np.ndarray]:
        grads = dict(self.named_grads())
        return [grads[n] for n in self.names]

    def _check_idx(self, idx: Any, what: str = "idx") -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise InputError(f"gpt: {what} must be a (B, T) array of integer token ids, got {idx.dtype} {idx.shape}")
        if idx.shape[1] > self.config.context:
            raise InputError(f"gpt: {idx.shape[1]} positions, more than the model's context of {self.config.context}")
        return idx

    def loss_and_grad(self, idx: np.ndarray, targets: np.ndarray) -> float:
        """The mean loss over the positions with a target, its gradient ADDED into the grads.

        The fused step of `models.zoo.gpt_fused` (one lean forward and backward over buffers kept
        between calls, inputs checked once): the same math as `loss_and_grad_composed`, checked
        against it by tests/models/test_gpt_fast.py. The one-file scalar GPT's norm options
        (norm_gain False, embed_norm, final_norm False) run the composed pieces: that model
        (`--preset micro`) is small enough for them, and the fused kernels do not have these.
        A model given `kernels` runs the composed pieces too: the fused step has no pieces to replace.
        """
        if self.one_file_norms or self.kernels is not None:
            return self.loss_and_grad_composed(idx, targets)
        return self._fused_step().loss_and_grad(idx, targets)

    @property
    def one_file_norms(self) -> bool:
        """Whether the config normalises as the one-file scalar GPT (see GPTConfig), not as GPT-2."""
        c = self.config
        return not c.norm_gain or c.embed_norm or not c.final_norm

    def loss_and_grad_composed(self, idx: np.ndarray, targets: np.ndarray) -> float:
        """`loss_and_grad` by the composed manual pairs (`gpt_forward` / `gpt_backward`): the reference
        (with the model's `kernels` in place of the pieces they replace)."""
        idx = self._check_idx(idx)
        loss, cache = gpt_forward(
            *self.param_list(), idx=idx, targets=targets, **self.config.static(), kernels=self.kernels
        )
        for acc, g in zip(self.grad_list(), gpt_backward(np.ones(()), cache)):
            acc += g
        return float(loss)

    def _fused_step(self) -> Any:
        """The model's `FusedGPT`, made on first use (it holds the step's buffers)."""
        step = self.__dict__.get("_fused")
        if step is None:
            step = self._fused = FusedGPT(self)
        return step

    def loss_and_grad_graph(self, idx: np.ndarray, targets: np.ndarray) -> float:
        """The graph path: `gpt_loops` on engine.Values, backward, the leaves' grads ADDED into the grads.

        One Python object per scalar operation: for tiny models (the issue's micro GPT), for
        checking and for watching nothing hidden happen.
        """
        idx = self._check_idx(idx)
        arrays = dict(zip(self.names, (p.astype(np.float64) for p in self.param_list())))
        loss, grads = graph_gradients(
            lambda leaves: gpt_loops(
                *(leaves[n] for n in self.names), idx=idx, targets=targets, **self.config.static()
            ),
            arrays,
        )
        for acc, name in zip(self.grad_list(), self.names):
            acc += grads[name]
        return float(loss)

    def loss(self, idx: np.ndarray, targets: np.ndarray) -> float:
        loss, _ = gpt_forward(
            *self.param_list(), idx=self._check_idx(idx), targets=targets, **self.config.static(), kernels=self.kernels
        )
        return float(loss)

    def attention_maps(self, idx: np.ndarray) -> list[np.ndarray]:
        """The attention weights of every block on idx: one (B, H, T, T) array per layer, rows summing to 1
        (by nn's pieces, also for a model with `kernels`: a replaced piece's cache is its own)."""
        p = dict(zip(self.names, self.param_list()))
        _, (_, _, block_caches, _, _) = gpt_hidden(p, self._check_idx(idx), self.config.static())
        return [attention_weights(c.attn) for c in block_caches]

    def logits(self, idx: np.ndarray) -> np.ndarray:
        """Logits (B, T, V) for idx (B, T): the forward without the loss (inference, sampling)."""
        idx = self._check_idx(idx)
        p = dict(zip(self.names, self.param_list()))
        h, _ = gpt_hidden(p, idx, self.config.static(), self.kernels)
        W_head = p["wte"].T if self.config.tied else p["head"]
        return h @ W_head  # (B, T, V)


# ---------------------------------------------------------------------------- registry
def _gpt_case(config: GPTConfig, B: int, T: int, n_ignored: int = 0) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        params = init_gpt_params(GPTConfig(**{**config.to_dict(), "seed": int(rng.integers(0, 2**31))}))
        for name, a in params.items():  # move gains and biases off 1 and 0 so every term is exercised
            if "gamma" in name or name.endswith(("beta", ".bq", ".bk", ".bv", ".bo", ".b1", ".b2", "beta1", "beta2")):
                params[name] = a + 0.2 * rng.standard_normal(a.shape)
        idx = rng.integers(0, config.vocab_size, size=(B, T))
        targets = rng.integers(0, config.vocab_size, size=(B, T))
        targets.reshape(-1)[rng.permutation(B * T)[:n_ignored]] = IGNORE_INDEX
        return params, {"idx": idx, "targets": targets, **config.static()}

    return make


def _gpt_torch(
    torch: Any,
    *params: Any,
    idx: Any,
    targets: Any,
    n_heads: int,
    n_layers: int,
    activation: str = "gelu",
    norm: str = "layer",
    bias: bool = True,
    positions: str = "learned",
    tied: bool = True,
    scale_embedding: bool = False,
    eps: float = DEFAULT_EPS,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> Any:
    """The torch referee (see `nn.registry.Piece`): the same GPT from torch ops and the block's torch form."""
    from nn.transformer_block import _block_torch

    static: dict[str, Any] = {
        "n_heads": n_heads,
        "n_layers": n_layers,
        "activation": activation,
        "norm": norm,
        "bias": bias,
        "positions": positions,
        "tied": tied,
        "scale_embedding": scale_embedding,
        "eps": eps,
        "norm_gain": norm_gain,
        "embed_norm": embed_norm,
        "final_norm": final_norm,
    }
    p = _split(params, _names(**static))
    C = p["wte"].shape[1]
    T = idx.shape[1]
    x = p["wte"][idx] * (math.sqrt(C) if scale_embedding else 1.0)
    if positions == "learned":
        x = x + p["wpe"][:T]
    else:
        from nn.positions import positional_encoding

        x = x + torch.tensor(positional_encoding(T, C), dtype=x.dtype)
    ones = torch.ones(C, dtype=x.dtype)  # the gain of a norm without one

    def normed(x: Any, prefix: str) -> Any:
        gamma = p.get(f"{prefix}.gamma", ones)
        if norm == "rms":
            return torch.nn.functional.rms_norm(x, (C,), gamma, eps=eps)
        return torch.nn.functional.layer_norm(x, (C,), gamma, p.get(f"{prefix}.beta"), eps=eps)

    if embed_norm:
        x = normed(x, "norm_e")
    block = _block_kwargs(**static)
    for layer in range(n_layers):
        x = _block_torch(torch, x, *_block_args(p, layer, norm, bias, ones), **block)
    h = normed(x, "norm_f") if final_norm else x
    logits = h @ (p["wte"].T if tied else p["head"])
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index
    )


#: the name every registry case of the one-file GPT's norm options starts with (the fused
#: step's piece, `gpt_fused`, leaves them out: those configs run the composed pieces).
ONE_FILE = "one-file norms"

#: the issue's small configuration: vocabulary 7, context 4, width 8, 2 heads, 2 blocks.
SMALL = GPTConfig(vocab_size=7, context=4, d_model=8, n_heads=2, n_layers=2)

GPT_PIECE = register(
    Piece(
        name="gpt",
        loops=gpt_loops,
        forward=gpt_forward,
        backward=gpt_backward,
        cases=(
            Case(
                "tied, learned positions, layer norm, gelu: V=7 T=4 C=8 H=2 N=2",
                _gpt_case(SMALL, B=2, T=4, n_ignored=2),
            ),
            Case(
                "untied, sinusoidal, scaled embedding",
                _gpt_case(
                    GPTConfig(**{**SMALL.to_dict(), "tied": False, "positions": "sinusoidal", "scale_embedding": True}),
                    B=1,
                    T=3,
                ),
            ),
            Case(
                "untied, RMSNorm, relu, no biases (the micro GPT's shape)",
                _gpt_case(
                    GPTConfig(
                        **{
                            **SMALL.to_dict(),
                            "tied": False,
                            "norm": "rms",
                            "activation": "relu",
                            "bias": False,
                            "n_layers": 1,
                        }
                    ),
                    B=2,
                    T=4,
                    n_ignored=1,
                ),
            ),
            Case(
                f"{ONE_FILE}: RMSNorm without gains after the embedding, no final norm (the micro preset)",
                _gpt_case(
                    GPTConfig(
                        **{
                            **SMALL.to_dict(),
                            "tied": False,
                            "norm": "rms",
                            "activation": "relu",
                            "bias": False,
                            "n_layers": 1,
                            "norm_gain": False,
                            "embed_norm": True,
                            "final_norm": False,
                        }
                    ),
                    B=2,
                    T=4,
                    n_ignored=1,
                ),
            ),
            Case(
                f"{ONE_FILE}: layer norm with shifts but no gains, embedding norm, final norm",
                _gpt_case(GPTConfig(**{**SMALL.to_dict(), "norm_gain": False, "embed_norm": True}), B=1, T=3),
            ),
        ),
        description="whole GPT loss: embeddings, positions, N causal pre-norm blocks, final norm, head, sequence CE",
        tags=("model",),
        torch=_gpt_torch,
    )
)


# ---------------------------------------------------------------------------- pictures
def save_attention_maps(
    model: GPT, idx: np.ndarray, tokens: list[str], folder: Any, stem: str = "attention"
) -> list[Any]:
    """One heatmap per block of the model's attention on one sequence idx (1, T), a panel per head:
    `folder/<stem>_layer<l>.png`. Raises viz.plots.PlotsUnavailable without matplotlib."""
    from pathlib import Path

    from viz.plots import plot_attention

    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[0] != 1 or len(tokens) != idx.shape[1]:
        raise InputError(
            f"save_attention_maps: one sequence (1, T) with T token labels, got {idx.shape} and {len(tokens)} labels"
        )
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = []
    for layer, weights in enumerate(model.attention_maps(idx)):  # (1, H, T, T) each
        title = f"block {layer + 1} of {model.config.n_layers}: causal self-attention, one panel per head"
        paths.append(plot_attention(weights[0], tokens, tokens, Path(folder) / f"{stem}_layer{layer}.png", title=title))
    return paths


# ============================================================================ the fused step as a piece
#: one model per shape the registry's pieces ask for (a few tiny ones), so that finite
#: differences, which call the forward thousands of times, do not build a GPT each time.
_MODELS: dict[tuple[Any, ...], GPT] = {}


def gpt_fused_forward(
    *params: Any,
    idx: Any,
    targets: Any,
    n_heads: int,
    n_layers: int,
    activation: str = "gelu",
    norm: str = "layer",
    bias: bool = True,
    positions: str = "learned",
    tied: bool = True,
    scale_embedding: bool = False,
    eps: float = DEFAULT_EPS,
    norm_gain: bool = True,
    embed_norm: bool = False,
    final_norm: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The GPT's loss (0-d) by the fused step, on explicit parameter arrays in `gpt_param_names` order
    (the signature of `models.zoo.gpt.gpt_forward`). The fused step computes the gradients with the
    loss, so the cache is the gradients themselves."""
    if not norm_gain or embed_norm or not final_norm:
        raise InputError(
            "gpt_fused: the one-file GPT's norm options (norm_gain False, embed_norm, final_norm False) "
            "are not fused; GPT.loss_and_grad runs the composed pieces for them"
        )
    if ignore_index != IGNORE_INDEX:
        raise InputError(
            f"gpt_fused: the fused step ignores targets equal to {IGNORE_INDEX}, got ignore_index={ignore_index}"
        )
    static: dict[str, Any] = {
        "n_heads": n_heads,
        "n_layers": n_layers,
        "activation": activation,
        "norm": norm,
        "bias": bias,
        "positions": positions,
        "tied": tied,
        "scale_embedding": scale_embedding,
        "eps": eps,
    }
    p = _split(params, _names(**static))
    arrays = {n: np.asarray(a) for n, a in p.items()}
    V, C = arrays["wte"].shape
    dtype = "float32" if arrays["wte"].dtype == np.float32 else "float64"
    context = arrays["wpe"].shape[0] if positions == "learned" else np.shape(idx)[-1]
    key = (V, C, context, arrays["h0.W1"].shape[1], dtype, tuple(sorted(static.items())))
    model = _MODELS.get(key)
    if model is None:
        model = _MODELS[key] = GPT(
            GPTConfig(
                vocab_size=V,
                context=context,
                d_model=C,
                n_heads=n_heads,
                n_layers=n_layers,
                d_ff=arrays["h0.W1"].shape[1],
                activation=activation,
                norm=norm,
                bias=bias,
                positions=positions,
                tied=tied,
                scale_embedding=scale_embedding,
                eps=eps,
                dtype=dtype,
            )
        )
    for name, target in zip(model.names, model.param_list()):
        if arrays[name].shape != target.shape:
            raise InputError(f"gpt_fused: {name} must have shape {target.shape}, got {arrays[name].shape}")
        target[...] = arrays[name]
    model.flat_grads.fill(0.0)
    loss = model.loss_and_grad(idx, targets)
    return np.asarray(loss, dtype=model.flat_params.dtype), tuple(g.copy() for g in model.grad_list())


def gpt_fused_backward(dout: Any, cache: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """dL/dθ = dout * (the gradients the fused step computed), one per parameter in `gpt_param_names` order."""
    scale = float(dout_array("gpt_fused", dout, ()))
    return tuple(scale * g for g in cache)


def _register() -> None:
    register(
        Piece(
            name="gpt_fused",
            loops=gpt_loops,
            forward=gpt_fused_forward,
            backward=gpt_fused_backward,
            # the one-file GPT's norm options run the composed pieces (GPT.loss_and_grad), not this step
            cases=tuple(c for c in GPT_PIECE.cases if not c.name.startswith(ONE_FILE)),
            description="the GPT loss by the fused training step (models.zoo.gpt_fused): the gpt piece's math and cases",
            tags=("model",),
            torch=_gpt_torch,
            covers=(
                (norm_forward, norm_backward),
                (act_forward, act_backward),
                (causal_attention_forward, causal_attention_backward),
            ),
        )
    )


_register()
