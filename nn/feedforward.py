"""The position-wise feed-forward network (Vaswani et al. 2017, section 3.3), written two ways.

    FFN(x) = act(x W1 + b1) W2 + b2,     act in {relu, gelu (exact, erf), gelu_tanh}

applied to every position (row) on its own. The paper uses ReLU and d_ff = 4 d_model; GPT-2
uses the tanh form of GELU. Each bias is optional (None: no bias).

* `ffn_loops`: `nn.linear`'s loops forms and the activation's loops form, on nested lists of
  floats or `engine.Value`s.
* `ffn_forward` / `ffn_backward`: the chain of `nn.linear`'s and `nn.activations`' manual
  pairs; float64 by default, float32 in gives float32 out.
* `FeedForward`: the Module that owns W1, b1, W2, b2.
"""

# Shape legend: "..." leading axes (B, or B, T); C input width (d_model); F hidden width
# (d_ff); C_out output width (C in a Transformer). N = the number of rows (positions).
#     x (..., C)   W1 (C, F)   b1 (F,)   hidden (..., F)   W2 (F, C_out)   b2 (C_out,)   y (..., C_out)

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from nn._checks import check_finite, dout_array, fail, float_dtype, nested_input, positive_int, real_array, shape_text
from nn._nested import map_blocks
from nn.activations import (
    _gelu_tanh_torch,
    _gelu_torch,
    _relu_torch,
    gelu_backward,
    gelu_forward,
    gelu_loops,
    gelu_tanh_backward,
    gelu_tanh_forward,
    gelu_tanh_loops,
    relu_backward,
    relu_forward,
    relu_loops,
)
from nn.linear import (
    LinearCache,
    MatmulCache,
    linear_backward,
    linear_forward,
    linear_loops,
    matmul_backward,
    matmul_forward,
    matmul_loops,
)
from nn.module import Module
from nn.registry import Case, Piece, register

PIECE = "feedforward"
Array = np.ndarray


class Activation(NamedTuple):
    """One activation written the three ways the FFN needs: loops, manual pair, torch form."""

    loops: Callable[[Any], Any]
    forward: Callable[[Any], tuple[Array, Any]]
    backward: Callable[[Any, Any], tuple[Array]]
    torch: Callable[..., Any]


#: The activations an FFN may use, by name; each is a registered piece of `nn.activations`.
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu_loops, relu_forward, relu_backward, _relu_torch),
    "gelu": Activation(gelu_loops, gelu_forward, gelu_backward, _gelu_torch),
    "gelu_tanh": Activation(gelu_tanh_loops, gelu_tanh_forward, gelu_tanh_backward, _gelu_tanh_torch),
}


# ------------------------------------------------------------------------------ checks
def check_activation(piece: str, activation: Any) -> Activation:
    """The named activation; ValueError naming `piece` and the known names otherwise."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise fail(piece, f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


def _check_shapes(
    x: tuple[int, ...], W1: tuple[int, ...], W2: tuple[int, ...], b1: tuple[int, ...] | None, b2: tuple[int, ...] | None
) -> None:
    """The shape rules both forms share: x (..., C) with at least two axes, W1 (C, F), W2 (F, C_out), b1 (F,), b2 (C_out,)."""
    if len(x) < 2 or 0 in x:
        raise fail(PIECE, f"x must have shape (N, C) or (B, T, C) with no empty axis, got {shape_text(x)}")
    if len(W1) != 2 or W1[0] != x[-1] or W1[1] == 0:
        raise fail(PIECE, f"W1 must have shape (C, F) = ({x[-1]}, F) to match x {shape_text(x)}, got {shape_text(W1)}")
    if len(W2) != 2 or W2[0] != W1[1] or W2[1] == 0:
        raise fail(
            PIECE,
            f"W2 must have shape (F, C_out) = ({W1[1]}, C_out) to match W1 {shape_text(W1)}, got {shape_text(W2)}",
        )
    for name, b, width in (("b1", b1, W1[1]), ("b2", b2, W2[1])):
        if b is not None and tuple(b) != (width,):
            raise fail(PIECE, f"{name} must have shape ({width},) to match the weights, got {shape_text(b)}")


# ------------------------------------------------------------------------------ loops
def _affine_loops(rows: list, W: list, b: list | None) -> list:
    """rows (N, n_in) @ W (+ b) on nested lists, by `nn.linear`'s loops forms."""
    return matmul_loops(rows, W) if b is None else linear_loops(rows, W, b)


def ffn_loops(x: Any, W1: Any, W2: Any, b1: Any = None, b2: Any = None, *, activation: str = "relu") -> Any:
    """act(x W1 + b1) W2 + b2 on nested lists (..., C) of floats or Values, row by row."""
    act = check_activation(PIECE, activation)
    (x, sx), (W1, s1), (W2, s2) = (nested_input(PIECE, n, a) for n, a in (("x", x), ("W1", W1), ("W2", W2)))
    b1c, b2c = (None if b is None else nested_input(PIECE, n, b) for n, b in (("b1", b1), ("b2", b2)))
    _check_shapes(sx, s1, s2, None if b1c is None else b1c[1], None if b2c is None else b2c[1])
    b1, b2 = (None if c is None else c[0] for c in (b1c, b2c))

    def block(rows: list) -> list:  # (T, C) -> (T, C_out)
        return _affine_loops(act.loops(_affine_loops(rows, W1, b1)), W2, b2)

    return map_blocks(block, len(sx) - 2, x)


# ------------------------------------------------------------------------------ manual pair
class FFNCache(NamedTuple):
    """What backward needs: the sub-caches of the three steps, and how to shape and type dx."""

    first: LinearCache | MatmulCache  # x2 (N, C) @ W1 (+ b1)
    act: Any  # the activation's cache, on the hidden (N, F)
    second: LinearCache | MatmulCache  # hidden (N, F) @ W2 (+ b2)
    has_bias: tuple[bool, bool]  # b1, b2 given
    x_shape: tuple[int, ...]  # (..., C)
    dtype: np.dtype  # the inputs' common float dtype, kept by every output and gradient
    activation: str


def _affine_forward(x2: Array, W: Array, b: Array | None) -> tuple[Array, LinearCache | MatmulCache]:
    return matmul_forward(x2, W) if b is None else linear_forward(x2, W, b)


def _affine_backward(dy2: Array, cache: LinearCache | MatmulCache) -> tuple[Array, Array, Array | None]:
    """(dx2, dW, db) of one affine step; db is None when the step had no bias."""
    if isinstance(cache, LinearCache):
        return linear_backward(dy2, cache)
    return (*matmul_backward(dy2, cache), None)


def ffn_forward(
    x: Array, W1: Array, W2: Array, b1: Array | None = None, b2: Array | None = None, *, activation: str = "relu"
) -> tuple[Array, FFNCache]:
    """y = act(x W1 + b1) W2 + b2 for every row of x (..., C) -> (..., C_out); returns (y, cache).

        z = x W1 + b1        (N, F)      pre-activation
        a = act(z)           (N, F)      hidden
        y = a W2 + b2        (N, C_out)

    The arrays' common float dtype is kept: float32 in, float32 out.
    """
    act = check_activation(PIECE, activation)
    given = {
        n: real_array(PIECE, n, a)
        for n, a in (("x", x), ("W1", W1), ("W2", W2), ("b1", b1), ("b2", b2))
        if a is not None
    }
    dt = float_dtype(*given.values())
    arrays = {n: np.asarray(a, dtype=dt) for n, a in given.items()}
    _check_shapes(*(arrays[n].shape if n in arrays else None for n in ("x", "W1", "W2", "b1", "b2")))  # type: ignore[arg-type]
    for name, a in arrays.items():
        check_finite(PIECE, name, a)
    x, W1, W2 = arrays["x"], arrays["W1"], arrays["W2"]
    b1, b2 = arrays.get("b1"), arrays.get("b2")
    x2 = x.reshape(-1, x.shape[-1])  # (N, C): every position is a row, one product for all
    z, first = _affine_forward(x2, W1, b1)  # (N, F)
    a, act_cache = act.forward(z)  # (N, F)
    y, second = _affine_forward(a, W2, b2)  # (N, C_out)
    cache = FFNCache(first, act_cache, second, (b1 is not None, b2 is not None), x.shape, dt, activation)
    return y.reshape(x.shape[:-1] + (W2.shape[1],)).astype(dt, copy=False), cache


def ffn_backward(dout: Array, cache: FFNCache) -> tuple[Array, ...]:
    """(dx, dW1, dW2, db1, db2), the bias gradients only for the biases forward was given.

    The chain of the three steps' backward passes, last step first (G = dL/dy):

        y = a W2 + b2   =>  dW2 = a^T G,    db2 = sum_rows G,    da = G W2^T
        a = act(z)      =>  dz = da * act'(z)
        z = x W1 + b1   =>  dW1 = x^T dz,   db1 = sum_rows dz,   dx = dz W1^T
    """
    W2_shape = cache.second.W.shape if isinstance(cache.second, LinearCache) else cache.second.B.shape
    out_shape = cache.x_shape[:-1] + (W2_shape[1],)
    dy2 = dout_array(PIECE, dout, out_shape, dtype=cache.dtype).reshape(-1, W2_shape[1])  # (N, C_out)
    da, dW2, db2 = _affine_backward(dy2, cache.second)  # (N, F), (F, C_out), (C_out,)
    (dz,) = ACTIVATIONS[cache.activation].backward(da, cache.act)  # (N, F)
    dx2, dW1, db1 = _affine_backward(dz, cache.first)  # (N, C), (C, F), (F,)
    grads = [dx2.reshape(cache.x_shape), dW1, dW2] + [g for g in (db1, db2) if g is not None]  # None: no such bias
    return tuple(g.astype(cache.dtype, copy=False) for g in grads)


# ------------------------------------------------------------------------------ class
def init_ffn_params(d_model: int, d_ff: int, rng: np.random.Generator, bias: bool = True) -> dict[str, Array]:
    """W1 (C, F) ~ N(0, 1/C), W2 (F, C) ~ N(0, 1/F) (each product keeps unit variance), biases 0."""
    d_model, d_ff = positive_int(PIECE, "d_model", d_model), positive_int(PIECE, "d_ff", d_ff)
    params = {
        "W1": rng.standard_normal((d_model, d_ff)) / math.sqrt(d_model),
        "W2": rng.standard_normal((d_ff, d_model)) / math.sqrt(d_ff),
    }
    if bias:
        params.update({"b1": np.zeros(d_ff), "b2": np.zeros(d_model)})
    return params


class FeedForward(Module):
    """act(x W1 + b1) W2 + b2 owning W1 (C, F), W2 (F, C) and, with `bias`, b1 (F,), b2 (C,).

    `forward(x)` caches for `backward(dout)`, which adds (+=) the parameter gradients into
    `self.grads` and returns dx. d_ff defaults to 4 d_model, as in the paper.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        activation: str = "relu",
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        check_activation("FeedForward", activation)
        self.d_model = positive_int("FeedForward", "d_model", d_model)
        self.d_ff = 4 * self.d_model if d_ff is None else positive_int("FeedForward", "d_ff", d_ff)
        self.activation, self.bias = activation, bool(bias)
        for name, p in init_ffn_params(
            self.d_model, self.d_ff, rng if rng is not None else np.random.default_rng(), self.bias
        ).items():
            self.add_param(name, p)
        self._cache: FFNCache | None = None

    def forward(self, x: Array) -> Array:
        out, self._cache = ffn_forward(
            x,
            self.params["W1"],
            self.params["W2"],
            self.params.get("b1"),
            self.params.get("b2"),
            activation=self.activation,
        )
        return out

    def backward(self, dout: Array) -> Array:
        if self._cache is None:
            raise RuntimeError("FeedForward.backward called before forward")
        dx, *grads = ffn_backward(dout, self._cache)
        for name, g in zip([n for n in ("W1", "W2", "b1", "b2") if n in self.params], grads):
            self.grads[name] += g
        return dx


# ------------------------------------------------------------------------------ registry
def _case(x_shape: tuple[int, ...], F: int, bias: bool, activation: str) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        C = x_shape[-1]
        inputs = {
            "x": rng.standard_normal(x_shape),
            "W1": rng.standard_normal((C, F)) / math.sqrt(C),
            "W2": rng.standard_normal((F, C)) / math.sqrt(F),
        }
        if bias:
            inputs.update({"b1": 0.3 * rng.standard_normal(F), "b2": 0.3 * rng.standard_normal(C)})
        return inputs, {"activation": activation}

    return make


def ffn_torch(torch: Any, x: Any, W1: Any, W2: Any, b1: Any = None, b2: Any = None, *, activation: str = "relu") -> Any:
    """The torch referee (see `Piece`): two matmuls around the activation's torch form."""
    z = x @ W1 if b1 is None else x @ W1 + b1
    a = ACTIVATIONS[activation].torch(torch, z)
    return a @ W2 if b2 is None else a @ W2 + b2


register(
    Piece(
        name=PIECE,
        loops=ffn_loops,
        forward=ffn_forward,
        backward=ffn_backward,
        cases=(
            Case("relu_bias_B2_T3_C4_F6", _case((2, 3, 4), 6, True, "relu")),
            Case("gelu_nobias_N3_C5_F4", _case((3, 5), 4, False, "gelu")),
            Case("gelu_tanh_bias_B1_T1_C2_F3", _case((1, 1, 2), 3, True, "gelu_tanh")),
            Case("relu_nobias_B2_T2_C3_F5", _case((2, 2, 3), 5, False, "relu")),
            Case("gelu_bias_B2_T2_C3_F8", _case((2, 2, 3), 8, True, "gelu")),
        ),
        description="position-wise feed-forward act(x W1 + b1) W2 + b2, act relu / gelu / gelu_tanh, biases optional",
        torch=ffn_torch,
        tags=("layer",),
        covers=((_affine_forward, _affine_backward),),  # each affine step: linear or (no bias) matmul
    )
)
