r"""Normalization over the last axis, written two ways: layer norm and RMSNorm.

Layer norm (Ba, Kiros & Hinton 2016), over the C entries of a row (the variance is the biased
one, as in PyTorch):

$$
\mu = \frac{1}{C} \sum_k x_k, \qquad
\sigma^2 = \frac{1}{C} \sum_k (x_k - \mu)^2, \qquad
r = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
$$

$$
\hat x = (x - \mu)\, r, \qquad
y = \gamma \odot \hat x + \beta
$$

RMSNorm (Zhang & Sennrich 2019): no centring and no shift, only the root mean square:

$$
r = \frac{1}{\sqrt{\frac{1}{C} \sum_k x_k^2 + \epsilon}}, \qquad
\hat x = x\, r, \qquad
y = \gamma \odot \hat x
$$

`*_loops` are the row-by-row scalar versions (floats or engine.Values); `*_forward` /
`*_backward` are the numpy pairs (float64 by default; float32 in gives float32 out);
`LayerNorm` owns gamma, beta and `RMSNorm` owns gamma.
"""

# Shape legend: B batch, T time, C channels (the normalized last axis); "..." any leading axes.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import dot, sqrt, total
from engine import rms_norm as engine_rms_norm
from nn._checks import check_finite, dout_array, fail, float_dtype, nested_input, real_array, shape_text
from nn._nested import map_rows
from nn.module import Module
from nn.registry import Case, Piece, register

PIECE = "layer_norm"
RMS_PIECE = "rms_norm"
DEFAULT_EPS = 1e-5  # PyTorch's default for nn.LayerNorm / F.layer_norm; RMSNorm uses it too


# ------------------------------------------------------------------------------ checks
def _check_shapes(piece: str, x_shape: tuple[int, ...], param_shapes: dict[str, tuple[int, ...]], eps: float) -> None:
    """The shape rules all forms share: x (..., C) with C >= 1, each parameter (C,), eps > 0."""
    if len(x_shape) < 1 or x_shape[-1] == 0:
        raise fail(piece, f"x needs at least one entry along its last axis (C), got shape {shape_text(x_shape)}")
    C = x_shape[-1]
    for name, p_shape in param_shapes.items():
        if tuple(p_shape) != (C,):
            raise fail(
                piece,
                f"{name} must have shape (C,) = {shape_text((C,))} to match x {shape_text(x_shape)}, got {shape_text(p_shape)}",
            )
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps > 0.0:
        row = "constant" if piece == PIECE else "zero"  # the row whose statistic is 0
        raise fail(piece, f"eps must be > 0 (it keeps a {row} row from dividing by zero), got {eps!r}")


def _check_inputs(piece: str, eps: float, **arrays: Any) -> list[np.ndarray]:
    """The arrays (x first, then the parameters) in their common float dtype (float32 stays
    float32), shapes and finiteness checked."""
    given = {name: real_array(piece, name, a) for name, a in arrays.items()}
    dt = float_dtype(*given.values())
    out = {name: np.asarray(a, dtype=dt) for name, a in given.items()}
    x_shape = out["x"].shape
    _check_shapes(piece, x_shape, {n: a.shape for n, a in out.items() if n != "x"}, eps)
    for name, a in out.items():
        check_finite(piece, name, a)
    return list(out.values())


def _nested_inputs(piece: str, eps: float, **nested: Any) -> list[Any]:
    """The loops forms' version of `_check_inputs`: nested lists, checked with the same messages."""
    checked = {name: nested_input(piece, name, a) for name, a in nested.items()}
    _check_shapes(piece, checked["x"][1], {n: shape for n, (_, shape) in checked.items() if n != "x"}, eps)
    return [a for a, _ in checked.values()]


# ------------------------------------------------------------------------------ loops
def layer_norm_loops(x: Any, gamma: Any, beta: Any, eps: float = DEFAULT_EPS) -> Any:
    """Layer norm of nested lists (..., C) of floats or Values, one row at a time.

    The inputs are checked as the manual form checks them (rectangular, finite numbers,
    gamma and beta of shape (C,), eps > 0), with the same messages.
    """
    x, gamma, beta = _nested_inputs(PIECE, eps, x=x, gamma=gamma, beta=beta)

    def row_norm(row: list) -> list:
        C = len(row)
        mean = total(row) / C  # one fused node on Values
        centered = [v - mean for v in row]
        var = dot(centered, centered) / C  # sum_j c_j^2 as one fused node
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
    (divide by C), as in PyTorch; eps > 0 keeps rstd finite for a constant row. The
    arrays' common float dtype is kept (float32 in, float32 out).
    """
    x, gamma, beta = _check_inputs(PIECE, eps, x=x, gamma=gamma, beta=beta)
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centered = x - mean  # (..., C)
    var = (centered * centered).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    xhat = centered * rstd  # (..., C)
    out = xhat * gamma + beta  # (..., C)
    return out, LayerNormCache(mean=mean, rstd=rstd, xhat=xhat, gamma=gamma)


def layer_norm_backward(dout: np.ndarray, cache: LayerNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients (dx, dgamma, dbeta) of layer norm, from the upstream dout (..., C).

    Derivation, for one row (drop the row index; C entries, $r$ = rstd, $g$ the gradient
    reaching $\hat x$). From $y_j = \gamma_j \hat x_j + \beta_j$:

    $$
    d\beta_j = \sum_{\text{rows}} dy_j, \qquad
    d\gamma_j = \sum_{\text{rows}} dy_j\, \hat x_j, \qquad
    g_j := \frac{\partial L}{\partial \hat x_j} = dy_j\, \gamma_j
    $$

    $\hat x_j = (x_j - \mu)\, r$ with $r = (\sigma^2 + \epsilon)^{-1/2}$. Using

    $$
    \frac{\partial \mu}{\partial x_i} = \frac{1}{C}, \qquad
    \frac{\partial \sigma^2}{\partial x_i} = \frac{2}{C}(x_i - \mu), \qquad
    \frac{\partial r}{\partial x_i} = -\frac{1}{2}(\sigma^2 + \epsilon)^{-3/2} \frac{\partial \sigma^2}{\partial x_i}
        = -\frac{r^3 (x_i - \mu)}{C}
    $$

    (the term $\frac{2}{C} \sum_k (x_k - \mu) \cdot (-\frac{1}{C})$ of $\partial \sigma^2 / \partial x_i$ is 0) gives

    $$
    \frac{\partial \hat x_j}{\partial x_i}
        = r \Big(\delta_{ij} - \frac{1}{C}\Big) + (x_j - \mu) \frac{\partial r}{\partial x_i}
        = r \Big(\delta_{ij} - \frac{1}{C} - \frac{\hat x_j \hat x_i}{C}\Big)
    $$

    so

    $$
    dx_i = \sum_j g_j \frac{\partial \hat x_j}{\partial x_i}
         = r \Big(g_i - \operatorname{mean}_j(g_j) - \hat x_i \operatorname{mean}_j(g_j \hat x_j)\Big).
    $$

    A constant row has $\hat x = 0$ and $r = \epsilon^{-1/2}$: $dx = r\,(g - \operatorname{mean}(g))$, finite.
    """
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dout = dout_array(PIECE, dout, xhat.shape, dtype=xhat.dtype)
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


# ============================================================================== RMSNorm
# ------------------------------------------------------------------------------ loops
def rms_norm_loops(x: Any, gamma: Any, eps: float = DEFAULT_EPS) -> Any:
    """RMSNorm of nested lists (..., C) of floats or Values, one row at a time, checked as the
    manual form checks (rectangular, finite numbers, gamma (C,), eps > 0)."""
    x, gamma = _nested_inputs(RMS_PIECE, eps, x=x, gamma=gamma)

    def row_norm(row: list) -> list:
        return engine_rms_norm(row, gamma, eps)  # y_j = gamma_j x_j / sqrt(mean(x^2) + eps), one fused node each

    return map_rows(row_norm, x)


# ------------------------------------------------------------------------------ manual pair
class RMSNormCache(NamedTuple):
    """What backward needs, computed once by forward."""

    rrms: np.ndarray  # (..., 1) 1 / sqrt(mean(x^2) + eps)
    xhat: np.ndarray  # (..., C) x * rrms
    gamma: np.ndarray  # (C,)


def rms_norm_forward(x: np.ndarray, gamma: np.ndarray, eps: float = DEFAULT_EPS) -> tuple[np.ndarray, RMSNormCache]:
    """y = gamma * x / sqrt(mean(x^2) + eps) over the last axis; returns (y, cache).

    x (..., C), gamma (C,) -> y (..., C). eps > 0 keeps the division finite for a zero
    row. The arrays' common float dtype is kept (float32 in, float32 out).
    """
    x, gamma = _check_inputs(RMS_PIECE, eps, x=x, gamma=gamma)
    mean_square = (x * x).mean(axis=-1, keepdims=True)  # (..., 1)
    rrms = 1.0 / np.sqrt(mean_square + eps)  # (..., 1)
    xhat = x * rrms  # (..., C)
    return xhat * gamma, RMSNormCache(rrms=rrms, xhat=xhat, gamma=gamma)


def rms_norm_backward(dout: np.ndarray, cache: RMSNormCache) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradients (dx, dgamma) of RMSNorm, from the upstream dout (..., C).

    Derivation, for one row (drop the row index; C entries, $r$ = rrms, $g$ the gradient
    reaching $\hat x$). From $y_j = \gamma_j \hat x_j$:

    $$
    d\gamma_j = \sum_{\text{rows}} dy_j\, \hat x_j, \qquad
    g_j := \frac{\partial L}{\partial \hat x_j} = dy_j\, \gamma_j
    $$

    $\hat x_j = x_j\, r$ with $r = (m + \epsilon)^{-1/2}$, $m = \frac{1}{C} \sum_k x_k^2$. Using

    $$
    \frac{\partial m}{\partial x_i} = \frac{2 x_i}{C}, \qquad
    \frac{\partial r}{\partial x_i} = -\frac{1}{2}(m + \epsilon)^{-3/2} \frac{\partial m}{\partial x_i} = -\frac{r^3 x_i}{C}
    $$

    gives

    $$
    \frac{\partial \hat x_j}{\partial x_i} = r\, \delta_{ij} + x_j \frac{\partial r}{\partial x_i}
        = r \Big(\delta_{ij} - \frac{\hat x_j \hat x_i}{C}\Big)
    \quad\Longrightarrow\quad
    dx_i = \sum_j g_j \frac{\partial \hat x_j}{\partial x_i} = r \Big(g_i - \hat x_i \operatorname{mean}_j(g_j \hat x_j)\Big).
    $$

    That is layer norm's dx without the mean's path (RMSNorm does not centre). A zero row
    has $\hat x = 0$ and $r = \epsilon^{-1/2}$: $dx = r\, g$, finite.
    """
    xhat, rrms, gamma = cache.xhat, cache.rrms, cache.gamma
    dout = dout_array(RMS_PIECE, dout, xhat.shape, dtype=xhat.dtype)
    C = xhat.shape[-1]
    dgamma = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * gamma  # (..., C)
    dx = rrms * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # (..., C): the r-path term
    return dx, dgamma


# ------------------------------------------------------------------------------ layer
class RMSNorm(Module):
    """RMSNorm with a learned gamma (ones) of shape (C,).

    `forward(x)` caches for `backward(dout)`, which adds into `self.grads` and returns dx.
    """

    def __init__(self, C: int, eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        if not (isinstance(C, (int, np.integer)) and C >= 1):
            raise ValueError(f"RMSNorm: C must be a positive int, got {C!r}")
        self.C = int(C)
        self.eps = float(eps)
        self.add_param("gamma", np.ones(self.C))
        self._cache: RMSNormCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = rms_norm_forward(x, self.params["gamma"], eps=self.eps)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("RMSNorm.backward called before forward")
        dx, dgamma = rms_norm_backward(dout, self._cache)
        self.grads["gamma"] += dgamma
        return dx


# ------------------------------------------------------------------------------ registry
def _rms_case(shape: tuple[int, ...], zero_row: bool = False, eps: float = DEFAULT_EPS) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        x = rng.standard_normal(shape)
        if zero_row:
            x.reshape(-1, shape[-1])[0] = 0.0  # mean(x^2) = 0 in that row: only eps keeps rrms finite
        return {"x": x, "gamma": 1.0 + 0.3 * rng.standard_normal(shape[-1])}, {"eps": eps}

    return make


def _rms_norm_torch(torch: Any, x: Any, gamma: Any, eps: float = DEFAULT_EPS) -> Any:
    """The torch referee (see `Piece`): F.rms_norm over the last axis, with our eps passed explicitly."""
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), gamma, eps=eps)


register(
    Piece(
        name=RMS_PIECE,
        loops=rms_norm_loops,
        forward=rms_norm_forward,
        backward=rms_norm_backward,
        cases=(
            Case("batch1_C5", _rms_case((1, 5))),
            Case("B2_T3_C4", _rms_case((2, 3, 4))),
            Case("vector_C3", _rms_case((3,))),
            Case("zero_row_B2_C5", _rms_case((2, 5), zero_row=True)),
            Case("eps_0.1_B3_C2", _rms_case((3, 2), eps=0.1)),
        ),
        description="RMSNorm over the last axis: gamma * x / sqrt(mean(x^2) + eps)",
        torch=_rms_norm_torch,
    )
)
