"""Layer normalization over the last axis (Ba, Kiros & Hinton 2016), written two ways.

    mean = (1/C) sum_k x_k          var = (1/C) sum_k (x_k - mean)^2     (biased, as PyTorch)
    rstd = 1 / sqrt(var + eps)      xhat = (x - mean) * rstd
    y    = gamma * xhat + beta

`layer_norm_loops` is the row-by-row scalar version (floats or engine.Values);
`layer_norm_forward` / `layer_norm_backward` are the numpy pair; `LayerNorm` owns gamma, beta.
"""

# Shape legend: B batch, T time, C channels (the normalized last axis); "..." any leading axes.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import sqrt
from nn._checks import array_input, dout_array, fail, nested_input, shape_text
from nn._nested import map_rows
from nn.module import Module
from nn.registry import Case, Piece, register

PIECE = "layer_norm"
DEFAULT_EPS = 1e-5  # PyTorch's default for nn.LayerNorm / F.layer_norm


# ------------------------------------------------------------------------------ checks
def _check_shapes(x_shape: tuple[int, ...], gamma_shape: tuple[int, ...], beta_shape: tuple[int, ...], eps: float) -> None:
    """The shape rules both forms share: x (..., C) with C >= 1, gamma and beta (C,), eps > 0."""
    if len(x_shape) < 1 or x_shape[-1] == 0:
        raise fail(PIECE, f"x needs at least one entry along its last axis (C), got shape {shape_text(x_shape)}")
    C = x_shape[-1]
    for name, p_shape in (("gamma", gamma_shape), ("beta", beta_shape)):
        if tuple(p_shape) != (C,):
            raise fail(
                PIECE,
                f"{name} must have shape (C,) = {shape_text((C,))} to match x {shape_text(x_shape)}, got {shape_text(p_shape)}",
            )
    if not eps > 0.0:
        raise fail(PIECE, f"eps must be > 0 (it keeps a constant row from dividing by zero), got {eps!r}")


def _check_inputs(x: Any, gamma: Any, beta: Any, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = array_input(PIECE, "x", x)
    gamma = array_input(PIECE, "gamma", gamma)
    beta = array_input(PIECE, "beta", beta)
    _check_shapes(x.shape, gamma.shape, beta.shape, eps)
    return x, gamma, beta


# ------------------------------------------------------------------------------ loops
def layer_norm_loops(x: Any, gamma: Any, beta: Any, eps: float = DEFAULT_EPS) -> Any:
    """Layer norm of nested lists (..., C) of floats or Values, one row at a time.

    The inputs are checked as the manual form checks them (rectangular, finite numbers,
    gamma and beta of shape (C,), eps > 0), with the same messages.
    """
    x, x_shape = nested_input(PIECE, "x", x)
    gamma, gamma_shape = nested_input(PIECE, "gamma", gamma)
    beta, beta_shape = nested_input(PIECE, "beta", beta)
    _check_shapes(x_shape, gamma_shape, beta_shape, eps)

    def row_norm(row: list) -> list:
        C = len(row)
        mean = row[0]
        for v in row[1:]:
            mean = mean + v
        mean = mean / C
        centered = [v - mean for v in row]
        var = centered[0] * centered[0]
        for c in centered[1:]:
            var = var + c * c
        var = var / C
        rstd = 1.0 / sqrt(var + eps)
        return [gamma[j] * (centered[j] * rstd) + beta[j] for j in range(C)]

    return map_rows(row_norm, x)


# ------------------------------------------------------------------------------ manual pair
class LayerNormCache(NamedTuple):
    """What backward needs, computed once by forward."""

    mean: np.ndarray  # (..., 1)
    rstd: np.ndarray  # (..., 1)
    xhat: np.ndarray  # (..., C)
    gamma: np.ndarray  # (C,)


def layer_norm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = DEFAULT_EPS
) -> tuple[np.ndarray, LayerNormCache]:
    """y = gamma * (x - mean) * rstd + beta over the last axis; returns (y, cache).

    x (..., C), gamma (C,), beta (C,) -> y (..., C). The variance is the biased one
    (divide by C), as in PyTorch; eps > 0 keeps rstd finite for a constant row.
    """
    x, gamma, beta = _check_inputs(x, gamma, beta, eps)
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centered = x - mean  # (..., C)
    var = (centered * centered).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    xhat = centered * rstd  # (..., C)
    out = xhat * gamma + beta  # (..., C)
    return out, LayerNormCache(mean=mean, rstd=rstd, xhat=xhat, gamma=gamma)


def layer_norm_backward(dout: np.ndarray, cache: LayerNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of layer norm, from the upstream dout (..., C).

    Derivation, for one row (drop the row index; C entries, r = rstd):

        y_j = gamma_j xhat_j + beta_j
        =>  dbeta_j  = sum over rows of dy_j
            dgamma_j = sum over rows of dy_j xhat_j
            g_j := dL/dxhat_j = dy_j gamma_j

    xhat_j = (x_j - mean) r with r = (var + eps)^(-1/2). Using
        d mean / dx_i = 1/C
        d var  / dx_i = (2/C)(x_i - mean)    (the term (2/C) sum_k (x_k - mean) * (-1/C) is 0)
        d r    / dx_i = -1/2 (var + eps)^(-3/2) d var/dx_i = -r^3 (x_i - mean) / C
    gives
        d xhat_j / dx_i = r (delta_ij - 1/C) + (x_j - mean) d r/dx_i
                        = r (delta_ij - 1/C - xhat_j xhat_i / C)
    so
        dx_i = sum_j g_j d xhat_j/dx_i = r (g_i - mean_j(g_j) - xhat_i mean_j(g_j xhat_j)).

    A constant row has xhat = 0 and r = eps^(-1/2): dx = r (g - mean(g)), finite.
    """
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dout = dout_array(PIECE, dout, xhat.shape)
    C = xhat.shape[-1]
    dbeta = dout.reshape(-1, C).sum(axis=0)  # (C,)
    dgamma = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * gamma  # (..., C)
    dx = rstd * (
        dxhat
        - dxhat.mean(axis=-1, keepdims=True)  # the mean's path
        - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)  # the variance's path
    )  # (..., C)
    return dx, dgamma, dbeta


# ------------------------------------------------------------------------------ layer
class LayerNorm(Module):
    """Layer norm with learned gamma (ones) and beta (zeros) of shape (C,).

    `forward(x)` caches for `backward(dout)`, which adds into `self.grads` and returns dx.
    """

    def __init__(self, C: int, eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        if not (isinstance(C, (int, np.integer)) and C >= 1):
            raise ValueError(f"LayerNorm: C must be a positive int, got {C!r}")
        self.C = int(C)
        self.eps = float(eps)
        self.add_param("gamma", np.ones(self.C))
        self.add_param("beta", np.zeros(self.C))
        self._cache: LayerNormCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = layer_norm_forward(x, self.params["gamma"], self.params["beta"], eps=self.eps)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        dx, dgamma, dbeta = layer_norm_backward(dout, self._cache)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


# ------------------------------------------------------------------------------ registry
def _case(shape: tuple[int, ...], constant_row: bool = False) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        C = shape[-1]
        x = rng.standard_normal(shape)
        if constant_row:
            x.reshape(-1, C)[0] = 0.7  # var = 0 in that row: only eps keeps rstd finite
        gamma = 1.0 + 0.3 * rng.standard_normal(C)
        beta = 0.3 * rng.standard_normal(C)
        return {"x": x, "gamma": gamma, "beta": beta}, {"eps": DEFAULT_EPS}

    return make


def _layer_norm_torch(torch: Any, x: Any, gamma: Any, beta: Any, eps: float = DEFAULT_EPS) -> Any:
    """The torch referee (see `Piece`): F.layer_norm over the last axis, biased variance as ours."""
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)


register(
    Piece(
        name=PIECE,
        loops=layer_norm_loops,
        forward=layer_norm_forward,
        backward=layer_norm_backward,
        cases=(
            Case("batch1_C5", _case((1, 5))),
            Case("B3_C7", _case((3, 7))),
            Case("B2_T3_C4", _case((2, 3, 4))),
            Case("vector_C3", _case((3,))),
            Case("constant_row_B2_C5", _case((2, 5), constant_row=True)),
        ),
        description="layer norm over the last axis: gamma * (x - mean) / sqrt(var + eps) + beta",
        torch=_layer_norm_torch,
    )
)
