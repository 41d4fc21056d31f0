"""The engine's fused ops, each a registry piece: the engine's node against numpy with a hand-derived backward.

`engine.dot`, `engine.total`, `engine.softmax`, `engine.rms_norm` and `engine.cross_entropy`
are single ops of many inputs: each stores its local partials when it runs (engine/value.py,
engine/fused_rows.py). Here each is written the other two ways, so that `twograd check` and
the registry's parametrized tests judge the engine's partials three ways like any layer:

* loops: the engine op itself, on one row (floats, or leaf Values whose gradients the
  engine's backward fills from the stored partials);
* manual: numpy, `X_forward -> (out, cache)` and `X_backward(dout, cache)`, the derivation
  in the docstring;
* numeric: central differences of the manual forward.

The pieces are named after the engine ops; the three row ops carry `_row` (`softmax_row`,
`rms_norm_row`, `cross_entropy_row`) to tell them from nn's layers of the same math, which
take whole tensors and are built from them.
"""

# Shape legend: n entries of a row (dot, total, softmax_row), C features (rms_norm_row),
# V classes (cross_entropy_row). Every piece here takes one row: a 1-d input.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import engine
from nn._checks import array_input, dout_array, fail
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register

#: the RMSNorm piece's epsilon: the size nn's RMSNorm uses by default, passed explicitly.
RMS_EPS = 1e-5


def _scalar_dout(piece: str, dout: Any) -> float:
    return float(dout_array(piece, dout, ()))


def _row(piece: str, name: str, a: Any) -> np.ndarray:
    """A 1-d float64 array of at least one finite entry."""
    a = array_input(piece, name, a, ndims=(1,), layout="(n,)")
    if a.shape[0] == 0:
        raise fail(piece, f"{name} needs at least one entry")
    return a


# ------------------------------------------------------------------------------ dot
def dot_loops(w: Any, x: Any) -> Any:
    """sum_i w_i x_i as one engine node (`engine.dot`)."""
    return engine.dot(w, x)


class DotCache(NamedTuple):
    w: np.ndarray  # (n,)
    x: np.ndarray  # (n,)


def dot_forward(w: Any, x: Any) -> tuple[np.ndarray, DotCache]:
    """out = sum_i w_i x_i, a 0-d array."""
    w, x = _row("dot", "w", w), _row("dot", "x", x)
    if w.shape != x.shape:
        raise fail("dot", f"w and x must have the same length, got {w.shape[0]} and {x.shape[0]}")
    return np.asarray(w @ x), DotCache(w, x)


def dot_backward(dout: Any, cache: DotCache) -> tuple[np.ndarray, np.ndarray]:
    """d(sum_i w_i x_i)/dw_i = x_i and /dx_i = w_i:  dw = dout x,  dx = dout w."""
    g = _scalar_dout("dot", dout)
    return g * cache.x, g * cache.w


# ------------------------------------------------------------------------------ total
def total_loops(x: Any) -> Any:
    """sum_i x_i as one engine node (`engine.total`)."""
    return engine.total(x)


def total_forward(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """out = sum_i x_i, a 0-d array; the cache is the input's shape."""
    x = _row("total", "x", x)
    return np.asarray(x.sum()), x.shape


def total_backward(dout: Any, cache: tuple[int, ...]) -> tuple[np.ndarray]:
    """d(sum_i x_i)/dx_i = 1:  dx = dout, broadcast to every entry."""
    return (np.full(cache, _scalar_dout("total", dout)),)


# ------------------------------------------------------------------------------ softmax_row
def softmax_row_loops(x: Any, *, scale: float) -> Any:
    """softmax(scale * x) of one row (`engine.softmax`: a logsumexp node, then one node per output)."""
    return engine.softmax(x, scale)


class SoftmaxRowCache(NamedTuple):
    s: np.ndarray  # (n,) the output
    scale: float


def softmax_row_forward(x: Any, *, scale: float) -> tuple[np.ndarray, SoftmaxRowCache]:
    """s = e^(z - max z) / sum e^(z - max z), z = scale x."""
    z = scale * _row("softmax_row", "x", x)
    e = np.exp(z - z.max())
    s = e / e.sum()
    return s, SoftmaxRowCache(s, scale)


def softmax_row_backward(dout: Any, cache: SoftmaxRowCache) -> tuple[np.ndarray]:
    """ds_i/dx_j = c s_i (delta_ij - s_j) (c = scale), so with ds = dL/ds

        dL/dx_j = sum_i ds_i c s_i (delta_ij - s_j) = c s_j (ds_j - sum_i ds_i s_i)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    s = cache.s
    ds = dout_array("softmax_row", dout, s.shape)
    return (cache.scale * s * (ds - ds @ s),)


# ------------------------------------------------------------------------------ rms_norm_row
def rms_norm_row_loops(x: Any, gamma: Any, *, eps: float) -> Any:
    """gamma_i x_i / sqrt(mean(x^2) + eps) of one row (`engine.rms_norm`: an r node, then one node per output)."""
    return engine.rms_norm(x, gamma, eps)


class RMSNormRowCache(NamedTuple):
    xhat: np.ndarray  # (C,) x r
    r: float  # 1 / sqrt(mean(x^2) + eps)
    gamma: np.ndarray  # (C,)


def rms_norm_row_forward(x: Any, gamma: Any, *, eps: float) -> tuple[np.ndarray, RMSNormRowCache]:
    """y = gamma x r, r = 1 / sqrt(mean(x^2) + eps)."""
    x, gamma = _row("rms_norm_row", "x", x), _row("rms_norm_row", "gamma", gamma)
    if x.shape != gamma.shape:
        raise fail("rms_norm_row", f"x and gamma must have the same length, got {x.shape[0]} and {gamma.shape[0]}")
    r = 1.0 / np.sqrt(x @ x / x.shape[0] + eps)
    xhat = x * r
    return gamma * xhat, RMSNormRowCache(xhat, float(r), gamma)


def rms_norm_row_backward(dout: Any, cache: RMSNormRowCache) -> tuple[np.ndarray, np.ndarray]:
    """dy_i/dx_j = gamma_i r (delta_ij - xh_i xh_j / C) and dy_i/dgamma_i = xh_i, so with dy = dL/dy

        dL/dx_j     = sum_i dy_i gamma_i r (delta_ij - xh_i xh_j / C) = r (g_j - xh_j <g, xh> / C),  g = dy gamma
        dL/dgamma_i = dy_i xh_i
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    xhat, r, gamma = cache
    dy = dout_array("rms_norm_row", dout, xhat.shape)
    g = dy * gamma
    dx = r * (g - xhat * (g @ xhat) / xhat.shape[0])
    return dx, dy * xhat


# ------------------------------------------------------------------------------ cross_entropy_row
def cross_entropy_row_loops(z: Any, *, target: int) -> Any:
    """-log softmax(z)[target] of one row of logits, as one engine node (`engine.cross_entropy`)."""
    return engine.cross_entropy(z, target)


class CrossEntropyRowCache(NamedTuple):
    p: np.ndarray  # (V,) softmax(z)
    target: int


def cross_entropy_row_forward(z: Any, *, target: int) -> tuple[np.ndarray, CrossEntropyRowCache]:
    """L = log sum_k e^(z_k - m) - (z_t - m), m = max z, a 0-d array."""
    z = _row("cross_entropy_row", "z", z)
    if not 0 <= target < z.shape[0]:
        raise fail("cross_entropy_row", f"target must be a class index in [0, {z.shape[0]}), got {target!r}")
    shifted = z - z.max()
    e = np.exp(shifted)
    total = e.sum()
    return np.asarray(np.log(total) - shifted[target]), CrossEntropyRowCache(e / total, target)


def cross_entropy_row_backward(dout: Any, cache: CrossEntropyRowCache) -> tuple[np.ndarray]:
    """dL/dz_j = p_j - delta_jt (the softmax minus the one-hot target):  dz = dout (p - onehot)."""
    dz = cache.p.copy()
    dz[cache.target] -= 1.0
    return (_scalar_dout("cross_entropy_row", dout) * dz,)


# ------------------------------------------------------------------------------ registry
def _normal(*names: str, n: int, scale: float = 1.0, **static: Any) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {name: scale * rng.standard_normal(n) for name in names}, dict(static)

    return make


def _softmax_case(n: int, scale: float = 1.0, spread: float = 2.0) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"x": spread * rng.standard_normal(n)}, {"scale": scale}

    return make


def _rms_case(C: int) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"x": rng.standard_normal(C), "gamma": 1.0 + 0.5 * rng.standard_normal(C)}, {"eps": RMS_EPS}

    return make


def _ce_case(V: int, scale: float = 2.0) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"z": scale * rng.standard_normal(V)}, {"target": int(rng.integers(0, V))}

    return make


def _dot_torch(torch: Any, w: Any, x: Any) -> Any:
    return torch.dot(w, x)


def _total_torch(torch: Any, x: Any) -> Any:
    return x.sum()


def _softmax_row_torch(torch: Any, x: Any, *, scale: float) -> Any:
    return torch.softmax(scale * x, dim=-1)


def _rms_norm_row_torch(torch: Any, x: Any, gamma: Any, *, eps: float) -> Any:
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), gamma, eps=eps)


def _cross_entropy_row_torch(torch: Any, z: Any, *, target: int) -> Any:
    return torch.nn.functional.cross_entropy(z[None, :], torch.tensor([target]))


register(
    Piece(
        name="dot",
        loops=dot_loops,
        forward=dot_forward,
        backward=dot_backward,
        cases=(
            Case("n=1", _normal("w", "x", n=1)),
            Case("n=5", _normal("w", "x", n=5)),
            Case("n=16", _normal("w", "x", n=16)),
        ),
        description="engine.dot: sum_i w_i x_i as one node, partials x_i and w_i",
        torch=_dot_torch,
        tags=("engine",),
    )
)

register(
    Piece(
        name="total",
        loops=total_loops,
        forward=total_forward,
        backward=total_backward,
        cases=(Case("n=1", _normal("x", n=1)), Case("n=7", _normal("x", n=7))),
        description="engine.total: sum_i x_i as one node, partials 1",
        torch=_total_torch,
        tags=("engine",),
    )
)

register(
    Piece(
        name="softmax_row",
        loops=softmax_row_loops,
        forward=softmax_row_forward,
        backward=softmax_row_backward,
        cases=(
            Case("n=1", _softmax_case(1)),
            Case("n=5", _softmax_case(5)),
            Case("n=8, scale 1/sqrt(4)", _softmax_case(8, scale=0.5)),
            Case("large logits: n=4 x 30", _softmax_case(4, spread=30.0)),
        ),
        description="engine.softmax: softmax(scale x) of a row, a logsumexp node and one node per output",
        torch=_softmax_row_torch,
        tags=("engine",),
    )
)

register(
    Piece(
        name="rms_norm_row",
        loops=rms_norm_row_loops,
        forward=rms_norm_row_forward,
        backward=rms_norm_row_backward,
        cases=(Case("C=1", _rms_case(1)), Case("C=5", _rms_case(5)), Case("C=16", _rms_case(16))),
        description="engine.rms_norm: gamma x / sqrt(mean(x^2) + eps) of a row, an r node and one node per output",
        torch=_rms_norm_row_torch,
        tags=("engine",),
    )
)

register(
    Piece(
        name="cross_entropy_row",
        loops=cross_entropy_row_loops,
        forward=cross_entropy_row_forward,
        backward=cross_entropy_row_backward,
        cases=(
            Case("V=1", _ce_case(1)),
            Case("V=6", _ce_case(6)),
            Case("V=27", _ce_case(27)),
            Case("large logits: V=5 x 30", _ce_case(5, scale=30.0)),
        ),
        description="engine.cross_entropy: -log softmax(z)[t] of a row as one node, partials p - onehot",
        torch=_cross_entropy_row_torch,
        tags=("engine",),
    )
)
