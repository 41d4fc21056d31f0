"""PyTorch autograd (float64) as a referee for the engine: each op, then composite expressions.

Skipped where torch is not installed. torch is used here only, never by the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
from engine import Value  # noqa: E402

#: engine vs torch, both float64: the same formulas, but libm/ATen may round differently (and
#: the engine divides as a * (1/b)): a few ulps. Largest seen here 5.8e-16 (tanh); ~50 ulps allowed.
TORCH_RTOL = 1e-14
#: absolute floor for values and gradients that are (near) zero.
TORCH_ATOL = 1e-14


def _t(x: float) -> Any:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# Each case: (name, engine function, torch function, point). A float operand is a constant.
# Where the engine's free function and torch's differ in name, the torch side is spelled out.
OPS: list[tuple[str, Callable[..., Any], Callable[..., Any], list[float]]] = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [0.7, -1.3]),
    ("add float left", lambda a: 2.5 + a, lambda a: 2.5 + a, [0.7]),
    ("add float right", lambda a: a + 2.5, lambda a: a + 2.5, [0.7]),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [0.7, -1.3]),
    ("rsub", lambda a: 2.5 - a, lambda a: 2.5 - a, [0.7]),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [0.7, -1.3]),
    ("rmul", lambda a: -2.5 * a, lambda a: -2.5 * a, [0.7]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [0.7, -1.3]),
    ("rdiv", lambda a: 2.5 / a, lambda a: 2.5 / a, [0.7]),
    ("div float", lambda a: a / 3.0, lambda a: a / 3.0, [0.7]),
    ("pow 2", lambda a: a**2, lambda a: a**2, [-1.3]),
    ("pow 3 negative base", lambda a: a**3, lambda a: a**3, [-1.3]),
    ("pow -1", lambda a: a**-1, lambda a: a**-1, [-1.3]),
    ("pow 0.5", lambda a: a**0.5, lambda a: a**0.5, [0.7]),
    ("pow -2.5", lambda a: a**-2.5, lambda a: a**-2.5, [1.7]),
    ("pow value", lambda a, b: a**b, lambda a, b: a**b, [0.7, -1.3]),
    ("pow value 2", lambda a, b: a**b, lambda a, b: a**b, [2.3, 1.7]),
    ("2 ** v", lambda a: 2**a, lambda a: 2**a, [0.7]),
    ("neg", lambda a: -a, lambda a: -a, [0.7]),
    ("exp", engine.exp, torch.exp, [0.7]),
    ("exp negative", engine.exp, torch.exp, [-4.2]),
    ("log", engine.log, torch.log, [0.7]),
    ("log large", engine.log, torch.log, [123.4]),
    ("tanh", engine.tanh, torch.tanh, [0.7]),
    ("tanh negative", engine.tanh, torch.tanh, [-2.2]),
    ("sigmoid", engine.sigmoid, torch.sigmoid, [0.7]),
    ("sigmoid negative", engine.sigmoid, torch.sigmoid, [-5.5]),
    ("relu positive", engine.relu, torch.relu, [0.7]),
    ("abs negative", abs, torch.abs, [-0.7]),
    ("abs positive", abs, torch.abs, [0.7]),
    ("abs at 0 (subgradient 0)", abs, torch.abs, [0.0]),
    ("relu negative", engine.relu, torch.relu, [-0.7]),
    ("relu at 0", engine.relu, torch.relu, [0.0]),
    ("sqrt", engine.sqrt, torch.sqrt, [0.7]),
    ("erf", engine.erf, torch.erf, [0.7]),
    ("erf negative", engine.erf, torch.erf, [-1.4]),
    ("sum", lambda a, b, c: sum([a, b, c, a]), lambda a, b, c: sum([a, b, c, a]), [0.7, -1.3, 2.1]),
]


def _gelu_tanh(x: Any, tanh: Callable[[Any], Any]) -> Any:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_erf(x: Any, erf: Callable[[Any], Any]) -> Any:
    """GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))


def _softmax_cross_entropy(logits: list[Any], target: int, exp: Callable, log: Callable) -> Any:
    """-log softmax(logits)[target], written with a running sum (works on both sides)."""
    denom = sum(exp(z) for z in logits)
    return log(denom) - logits[target]


def _layer_norm_first(xs: list[Any], sqrt: Callable, eps: float = 1e-5) -> Any:
    """First entry of layer norm of xs: (x0 - mean) / sqrt(var + eps)."""
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / n
    return (xs[0] - mean) / sqrt(var + eps)


COMPOSITES: list[tuple[str, Callable[..., Any], Callable[..., Any], list[float]]] = [
    (
        "neuron tanh(w.x + b)",
        lambda w1, w2, x1, x2, b: engine.tanh(w1 * x1 + w2 * x2 + b),
        lambda w1, w2, x1, x2, b: torch.tanh(w1 * x1 + w2 * x2 + b),
        [-3.0, 1.0, 2.0, 0.0, 6.8813735870195432],
    ),
    (
        "gelu tanh",
        lambda x: _gelu_tanh(x, engine.tanh),
        lambda x: _gelu_tanh(x, torch.tanh),
        [0.83],
    ),
    (
        "gelu erf",
        lambda x: _gelu_erf(x, engine.erf),
        lambda x: _gelu_erf(x, torch.erf),
        [-0.61],
    ),
    (
        "softmax cross-entropy",
        lambda a, b, c: _softmax_cross_entropy([a, b, c], 1, engine.exp, engine.log),
        lambda a, b, c: _softmax_cross_entropy([a, b, c], 1, torch.exp, torch.log),
        [0.2, -1.1, 2.4],
    ),
    (
        "layer norm entry",
        lambda a, b, c, d: _layer_norm_first([a, b, c, d], engine.sqrt),
        lambda a, b, c, d: _layer_norm_first([a, b, c, d], torch.sqrt),
        [0.5, -1.2, 2.0, 0.1],
    ),
    (
        "mixed",
        lambda x, y: (x**y + 2**x) / (1 + engine.sigmoid(x * y)) - engine.relu(y - x) * engine.log(x * x + 1),
        lambda x, y: (x**y + 2**x) / (1 + torch.sigmoid(x * y)) - torch.relu(y - x) * torch.log(x * x + 1),
        [1.3, 2.1],
    ),
    (
        "shared subexpression",
        lambda x: (lambda s: s * s + engine.exp(-s) * s)(engine.sqrt(x * x + 0.5)),
        lambda x: (lambda s: s * s + torch.exp(-s) * s)(torch.sqrt(x * x + 0.5)),
        [-0.9],
    ),
]


def _assert_matches_torch(f_engine: Callable[..., Any], f_torch: Callable[..., Any], xs: list[float]) -> None:
    leaves = [Value(x) for x in xs]
    out = f_engine(*leaves)
    out.backward()
    tensors = [_t(x) for x in xs]
    ref = f_torch(*tensors)
    ref.backward()
    assert out.data == pytest.approx(ref.item(), rel=TORCH_RTOL, abs=TORCH_ATOL)
    for i, (v, t) in enumerate(zip(leaves, tensors)):
        expected = t.grad.item() if t.grad is not None else 0.0
        assert v.grad == pytest.approx(expected, rel=TORCH_RTOL, abs=TORCH_ATOL), f"d/dx{i}"


@pytest.mark.parametrize("name,f_engine,f_torch,xs", OPS, ids=[c[0] for c in OPS])
def test_op_matches_torch(name: str, f_engine: Callable, f_torch: Callable, xs: list[float]) -> None:
    _assert_matches_torch(f_engine, f_torch, xs)


@pytest.mark.parametrize("name,f_engine,f_torch,xs", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composite_matches_torch(name: str, f_engine: Callable, f_torch: Callable, xs: list[float]) -> None:
    _assert_matches_torch(f_engine, f_torch, xs)


def test_special_points_match_torch() -> None:
    """sqrt and x**0.5 at 0 (infinite slope), relu at 0 (subgradient 0), x**2 at 0."""
    for f_engine, f_torch in [
        (engine.sqrt, torch.sqrt),
        (lambda a: a**0.5, lambda a: a**0.5),
        (engine.relu, torch.relu),
        (lambda a: a**2, lambda a: a**2),
    ]:
        v, t = Value(0.0), _t(0.0)
        f_engine(v).backward()
        f_torch(t).backward()
        assert v.grad == t.grad.item()
    # a Value exponent at base 0: d/dp of 0^p is taken as its limit 0 for p > 0, as torch does
    for p in (2.0, 1.0, 0.5):
        a, b = Value(0.0), Value(p)
        (a**b).backward()
        ta, tb = _t(0.0), _t(p)
        (ta**tb).backward()
        assert (a.grad, b.grad) == (ta.grad.item(), tb.grad.item())


def test_accumulation_matches_torch() -> None:
    """Two backward calls: leaves accumulate in both; torch keeps no interior grads by default,
    so compare an interior node with retain_grad()."""
    v = Value(1.7)
    y = engine.tanh(v) * v
    z = y * y
    z.backward()
    z.backward()
    t = _t(1.7)
    ty = torch.tanh(t) * t
    ty.retain_grad()
    tz = ty * ty
    tz.backward(retain_graph=True)
    ty_grad_first = ty.grad.item()
    tz.backward()
    assert v.grad == pytest.approx(t.grad.item(), rel=TORCH_RTOL, abs=TORCH_ATOL)
    # torch's retained interior grad accumulates too (it is a leaf-like .grad); the engine's
    # interior .grad is the latest call's, i.e. torch's value after one call.
    assert y.grad == pytest.approx(ty_grad_first, rel=TORCH_RTOL, abs=TORCH_ATOL)


# ------------------------------------------------------------------ x ** p where it underflows
#: (x, p) where x**p underflows to a subnormal or to 0, so the slope cannot be taken as p * (y / x).
UNDERFLOW_POWERS = [(1e-320, 1.01), (5e-324, 1.03125), (1e-300, 1.1), (1e-160, 2.0)]
#: both sides compute p * x**(p-1) in float64; only libm's pow may round differently: a few ulps.
UNDERFLOW_SLOPE_RTOL = 1e-14


@pytest.mark.parametrize("x, p", UNDERFLOW_POWERS, ids=[f"{x:g}**{p:g}" for x, p in UNDERFLOW_POWERS])
def test_power_slope_where_the_power_underflows_matches_torch(x: float, p: float) -> None:
    v = Value(x)
    y = v**p
    y.backward()
    tx = _t(x)
    ty = tx**p
    ty.backward()
    assert y.data == ty.item()
    assert tx.grad.item() > 0.0, "the reference slope is positive: the case would test nothing"
    assert v.grad == pytest.approx(tx.grad.item(), rel=UNDERFLOW_SLOPE_RTOL, abs=0.0)
