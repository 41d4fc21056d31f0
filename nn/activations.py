"""Elementwise activations, each written two ways: sigmoid, relu, tanh, gelu, gelu_tanh.

`NAME_loops(x)` applies the scalar function to every leaf of nested lists of any depth
(floats or engine.Values); `NAME_forward(x) -> (y, cache)` / `NAME_backward(dy, cache)`
are the numpy pair, on arrays of any shape. Each backward is dx = dy * f'(x), with f'(x)
written in terms of what forward already computed.

numpy has no erf, and calling math.erf once per element is ~30x slower than an array
expression, so `erf_array` evaluates erf from piecewise Taylor polynomials whose
coefficients are computed at import from the Hermite-polynomial form of erf's derivatives
(accurate to about 1 ulp; see `_erf_taylor_table`).
"""

# Shape legend: "..." any shape; every function here maps an array to one of the same shape.

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from engine import erf, relu, sigmoid, tanh
from nn._checks import array_input, dout_array, nested_input
from nn._nested import map_leaves
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: The cubic coefficient of the tanh approximation of GELU (Hendrycks & Gimpel 2016).
GELU_TANH_CUBIC = 0.044715


def _out(ufunc: np.ufunc, *operands: Any, out: Any) -> Any:
    """`ufunc(*operands)` written into `out` when it is an array.

    Arithmetic on a 0-d array yields a numpy scalar, which cannot be written into; then a
    new scalar is returned instead. Either way the caller rebinds: `a = _out(np.exp, a, out=a)`.
    """
    if type(out) is np.ndarray:
        return ufunc(*operands, out=out)
    return ufunc(*operands)


# ------------------------------------------------------------------------------ erf for arrays
def _erf_taylor_table(width: float, degree: int, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Taylor coefficients of erf about the centre of each interval [i w, (i+1) w) of [0, top).

    The derivatives of erf are Hermite polynomials times a Gaussian:

        erf^(k)(c) = (2/sqrt(pi)) (-1)^(k-1) H_{k-1}(c) e^(-c^2)        (k >= 1)

    with the physicists' recurrence H_0 = 1, H_1 = 2c, H_{j+1} = 2c H_j - 2j H_{j-1}.
    Row i holds erf^(k)(c_i) / k! for k = 0..degree. On an interval of half-width w/2 the
    first omitted term is at most about 1e-17 for w = 1/8, degree 10 (tested against
    math.erf to within 2 ulp on [-7, 7]).
    """
    n = int(round(top / width))
    centers = (np.arange(n) + 0.5) * width
    table = np.empty((degree + 1, n))  # coefficient-major: row k is one coefficient for all intervals
    for i, c in enumerate(centers.tolist()):
        table[0, i] = math.erf(c)
        gauss = 2.0 / math.sqrt(math.pi) * math.exp(-c * c)
        h_prev, h_cur = 0.0, 1.0  # H_{k-2}, H_{k-1}, starting at k = 1
        factorial = 1.0
        for k in range(1, degree + 1):
            factorial *= k
            sign = 1.0 if k % 2 == 1 else -1.0  # (-1)^(k-1)
            table[k, i] = sign * gauss * h_cur / factorial
            h_prev, h_cur = h_cur, 2.0 * c * h_cur - 2.0 * (k - 1) * h_prev
    return centers, table


_ERF_WIDTH = 0.125  # interval width of the piecewise polynomial
_ERF_DEGREE = 10  # Taylor degree per interval
#: erf(6) = 1 - 2.2e-17 rounds to 1.0 in float64, so |x| >= 6 gives +-1 exactly.
_ERF_TOP = 6.0
_ERF_CENTERS, _ERF_COEFFS = _erf_taylor_table(_ERF_WIDTH, _ERF_DEGREE, _ERF_TOP)


def erf_array(x: np.ndarray) -> np.ndarray:
    """erf of every entry of a float64 array (to about 1 ulp of math.erf), as a new array.

    erf is odd, so erf(x) = sign(x) erf(|x|); |x| is clamped to [0, 6], looked up in its
    interval of width 1/8, and the interval's Taylor polynomial is evaluated by Horner's rule.
    """
    flat = x.reshape(-1)  # a view; also turns a 0-d input into an array that can be indexed
    t = np.minimum(np.abs(flat), _ERF_TOP)
    idx = (t * (1.0 / _ERF_WIDTH)).astype(np.intp)
    np.minimum(idx, _ERF_CENTERS.shape[0] - 1, out=idx)  # t == 6 belongs to the last interval
    u = t - _ERF_CENTERS[idx]  # offset from the interval's centre, |u| <= w/2
    y = _ERF_COEFFS[_ERF_DEGREE][idx]
    for k in range(_ERF_DEGREE - 1, -1, -1):
        y *= u
        y += _ERF_COEFFS[k][idx]
    np.minimum(y, 1.0, out=y)  # rounding may overshoot 1 by an ulp near the top
    np.copysign(y, flat, out=y)
    return y.reshape(x.shape)


# ------------------------------------------------------------------------------ sigmoid
def sigmoid_loops(x: Any) -> Any:
    """s(x) = 1 / (1 + e^-x) of every leaf (engine.sigmoid: no overflow for any x)."""
    x, _ = nested_input("sigmoid", "x", x)
    return map_leaves(sigmoid, x)


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow: with e = e^-|x| in (0, 1],

        s = 1 / (1 + e)    for x >= 0,        s = e / (1 + e)    for x < 0

    (the second is the first multiplied through by e^x). Never exponentiates a positive number.
    """
    e = np.exp(-np.abs(x))
    s = np.where(x >= 0.0, 1.0, e)
    e += 1.0
    s /= e
    return s


class SigmoidCache(NamedTuple):
    s: np.ndarray  # (...) the returned output itself (not a copy): all the derivative needs


def sigmoid_forward(x: Any) -> tuple[np.ndarray, SigmoidCache]:
    """s = sigmoid(x), elementwise, stable for any finite x."""
    x = array_input("sigmoid", "x", x)
    s = stable_sigmoid(x)
    return s, SigmoidCache(s)


def sigmoid_backward(dout: Any, cache: SigmoidCache) -> tuple[np.ndarray]:
    """s = 1/(1 + e^-x):  ds/dx = e^-x / (1 + e^-x)^2 = s (1 - s),  so  dx = dy * s (1 - s)."""
    s = cache.s
    dy = dout_array("sigmoid", dout, s.shape)
    dx = 1.0 - s
    dx *= s
    dx *= dy
    return (np.asarray(dx),)


# ------------------------------------------------------------------------------ relu
def relu_loops(x: Any) -> Any:
    """max(0, x) of every leaf."""
    x, _ = nested_input("relu", "x", x)
    return map_leaves(relu, x)


class ReluCache(NamedTuple):
    mask: np.ndarray  # (...) bool, x > 0


def relu_forward(x: Any) -> tuple[np.ndarray, ReluCache]:
    """y = max(0, x), elementwise."""
    x = array_input("relu", "x", x)
    mask = x > 0.0
    return np.asarray(x * mask), ReluCache(mask)


def relu_backward(dout: Any, cache: ReluCache) -> tuple[np.ndarray]:
    """dy/dx = 1 where x > 0, else 0 (the subgradient 0 at x = 0, as PyTorch):  dx = dy * [x > 0]."""
    mask = cache.mask
    dy = dout_array("relu", dout, mask.shape)
    return (np.asarray(dy * mask),)


# ------------------------------------------------------------------------------ tanh
def tanh_loops(x: Any) -> Any:
    """tanh(x) of every leaf."""
    x, _ = nested_input("tanh", "x", x)
    return map_leaves(tanh, x)


class TanhCache(NamedTuple):
    y: np.ndarray  # (...) the returned output itself (not a copy): tanh' = 1 - tanh^2


def tanh_forward(x: Any) -> tuple[np.ndarray, TanhCache]:
    """y = tanh(x), elementwise."""
    x = array_input("tanh", "x", x)
    y = np.asarray(np.tanh(x))
    return y, TanhCache(y)


def tanh_backward(dout: Any, cache: TanhCache) -> tuple[np.ndarray]:
    """tanh = (e^x - e^-x)/(e^x + e^-x):  d tanh/dx = 1 - tanh^2,  so  dx = dy * (1 - y^2)."""
    y = cache.y
    dy = dout_array("tanh", dout, y.shape)
    dx = y * y
    dx = _out(np.subtract, 1.0, dx, out=dx)
    dx *= dy
    return (np.asarray(dx),)


# ------------------------------------------------------------------------------ gelu (exact)
def gelu_loops(x: Any) -> Any:
    """GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) of every leaf."""
    x, _ = nested_input("gelu", "x", x)
    return map_leaves(lambda v: 0.5 * v * (1.0 + erf(v * _INV_SQRT2)), x)


class GeluCache(NamedTuple):
    x: np.ndarray  # (...) the input, by reference
    cdf: np.ndarray  # (...) Phi(x)


def gelu_forward(x: Any) -> tuple[np.ndarray, GeluCache]:
    """y = x Phi(x), Phi the standard normal CDF, Phi(x) = 0.5 (1 + erf(x / sqrt 2))."""
    x = array_input("gelu", "x", x)
    cdf = erf_array(x * _INV_SQRT2)
    cdf += 1.0
    cdf *= 0.5
    return np.asarray(x * cdf), GeluCache(x, cdf)


def gelu_backward(dout: Any, cache: GeluCache) -> tuple[np.ndarray]:
    """y = x Phi(x):  dy/dx = Phi(x) + x phi(x),  phi(x) = Phi'(x) = e^(-x^2/2) / sqrt(2 pi).

    (From erf'(z) = 2/sqrt(pi) e^(-z^2) with z = x/sqrt 2: Phi'(x) = 0.5 * 2/sqrt(pi) * e^(-x^2/2) / sqrt 2.)
    """
    x, cdf = cache
    dy = dout_array("gelu", dout, x.shape)
    dx = x * x
    dx *= -0.5
    dx = _out(np.exp, dx, out=dx)
    dx *= x
    dx *= _INV_SQRT_2PI  # x phi(x)
    dx += cdf
    dx *= dy
    return (np.asarray(dx),)


# ------------------------------------------------------------------------------ gelu (tanh form)
def gelu_tanh_loops(x: Any) -> Any:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of every leaf."""
    x, _ = nested_input("gelu_tanh", "x", x)
    return map_leaves(lambda v: 0.5 * v * (1.0 + tanh(_SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v**3))), x)


class GeluTanhCache(NamedTuple):
    x: np.ndarray  # (...) the input, by reference
    t: np.ndarray  # (...) tanh(u), u = sqrt(2/pi) (x + c x^3)


def gelu_tanh_forward(x: Any) -> tuple[np.ndarray, GeluTanhCache]:
    """y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + c x^3),  c = 0.044715."""
    x = array_input("gelu_tanh", "x", x)
    t = x * x
    t *= GELU_TANH_CUBIC
    t += 1.0
    t *= x
    t *= _SQRT_2_OVER_PI  # u = sqrt(2/pi) x (1 + c x^2)
    t = _out(np.tanh, t, out=t)
    y = t + 1.0
    y *= x
    y *= 0.5
    return np.asarray(y), GeluTanhCache(x, t)


def gelu_tanh_backward(dout: Any, cache: GeluTanhCache) -> tuple[np.ndarray]:
    """y = 0.5 x (1 + t),  t = tanh(u),  u = sqrt(2/pi) (x + c x^3).  Product and chain rule:

        dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,     du/dx = sqrt(2/pi) (1 + 3 c x^2)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    x, t = cache
    dy = dout_array("gelu_tanh", dout, x.shape)
    du = x * x
    du *= 3.0 * GELU_TANH_CUBIC
    du += 1.0
    du *= _SQRT_2_OVER_PI  # du/dx
    dx = t * t
    dx = _out(np.subtract, 1.0, dx, out=dx)
    dx *= du
    dx *= x
    dx += 1.0
    dx += t
    dx *= 0.5  # 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx
    dx *= dy
    return (np.asarray(dx),)


# ------------------------------------------------------------------------------ registry
def _normal_case(shape: tuple[int, ...], scale: float = 1.5) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"x": scale * rng.standard_normal(shape)}, {}

    return make


def _away_from_zero_case(shape: tuple[int, ...], gap: float = 0.05) -> CaseMaker:
    """Entries with |x| in [gap, 2]: the ReLU kink at 0 stays far outside the +-eps stencil."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        magnitude = rng.uniform(gap, 2.0, shape)
        sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        return {"x": sign * magnitude}, {}

    return make


def _cases(make_case: Callable[..., Any]) -> tuple[Case, ...]:
    return (
        Case("scalar", make_case(())),
        Case("batch 1: (1, 4)", make_case((1, 4))),
        Case("odd: (3, 5)", make_case((3, 5))),
        Case("3-d: (2, 3, 3)", make_case((2, 3, 3))),
    )


# The torch referees (see `Piece`): each takes the torch module first, then the input tensor.
def _sigmoid_torch(torch: Any, x: Any) -> Any:
    return torch.sigmoid(x)


def _relu_torch(torch: Any, x: Any) -> Any:
    return torch.relu(x)


def _tanh_torch(torch: Any, x: Any) -> Any:
    return torch.tanh(x)


def _gelu_torch(torch: Any, x: Any) -> Any:
    return torch.nn.functional.gelu(x, approximate="none")


def _gelu_tanh_torch(torch: Any, x: Any) -> Any:
    return torch.nn.functional.gelu(x, approximate="tanh")


for _name, _loops, _fwd, _bwd, _torch, _make, _desc in (
    (
        "sigmoid",
        sigmoid_loops,
        sigmoid_forward,
        sigmoid_backward,
        _sigmoid_torch,
        _normal_case,
        "1 / (1 + e^-x), stable",
    ),
    ("relu", relu_loops, relu_forward, relu_backward, _relu_torch, _away_from_zero_case, "max(0, x)"),
    ("tanh", tanh_loops, tanh_forward, tanh_backward, _tanh_torch, _normal_case, "tanh(x)"),
    (
        "gelu",
        gelu_loops,
        gelu_forward,
        gelu_backward,
        _gelu_torch,
        _normal_case,
        "x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))",
    ),
    (
        "gelu_tanh",
        gelu_tanh_loops,
        gelu_tanh_forward,
        gelu_tanh_backward,
        _gelu_tanh_torch,
        _normal_case,
        "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    ),
):
    register(
        Piece(
            name=_name,
            loops=_loops,
            forward=_fwd,
            backward=_bwd,
            cases=_cases(_make),
            description=_desc,
            tags=("activation",),
            torch=_torch,
        )
    )
