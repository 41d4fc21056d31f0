"""Positions, added to the token embeddings: the paper's fixed sinusoids, or a learned table.

    positional_encoding(T, C):  PE[p, 2i]   = sin(p w_i),   PE[p, 2i+1] = cos(p w_i),
                                w_i = 1 / base^(2i/C),  base = 10000
                                (Vaswani et al. 2017, section 3.5)
    sinusoidal_positions:       y[..., t, :] = x[..., t, :] + PE[t]     (fixed: only x is differentiated)
    learned_positions:          y[..., t, :] = x[..., t, :] + P[t]      (P (T_max, C) learned, GPT-2's wpe)

Each column pair of PE turns at its own frequency w_i, so shifting by k positions is a fixed
rotation of every pair (`positional_shift`): PE[p + k] = PE[p] M_k for every p, which is why
the paper expects attention to pick up relative positions easily.
"""

# Shape legend: B batch, T positions in use, T_max rows of the learned table, C channels.
#     x (..., T, C)   PE (T, C)   P (T_max, C)   y (..., T, C)

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nn._checks import check_finite, dout_array, fail, float_dtype, nested_input, positive_int, real_array, shape_text
from nn._nested import map_blocks
from nn.module import Module
from nn.registry import Case, Piece, register

PE_BASE = 10000.0  # the base of the wavelengths' geometric progression in the paper
SINUSOIDAL = "sinusoidal_positions"
LEARNED = "learned_positions"
Array = np.ndarray


# ------------------------------------------------------------------------------ the encoding
def _frequencies(C: int, base: float) -> Array:
    """w_i = base^(-2i/C) for the column pairs i = 0 .. ceil(C/2) - 1."""
    return 1.0 / base ** (np.arange(0, C, 2, dtype=np.float64) / C)  # (ceil(C/2),)


def positional_encoding(T: int, C: int, base: float = PE_BASE) -> Array:
    """Sinusoidal positional encodings (T, C), float64, not learned and not differentiated.

    Column pair (2i, 2i+1) is a sine and a cosine of wavelength 2 pi base^(2i/C), so
    PE[p + k] is a linear function (a rotation per pair, `positional_shift`) of PE[p]. For
    odd C the last column 2i = C - 1 is a sine without its cosine partner.
    """
    T, C = positive_int("positional_encoding", "T", T), positive_int("positional_encoding", "C", C)
    angle = np.arange(T, dtype=np.float64)[:, None] * _frequencies(C, base)  # (T, ceil(C/2))
    pe = np.empty((T, C))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : C // 2])  # odd C: the last sine has no cosine
    return pe


def positional_shift(k: int, C: int, base: float = PE_BASE) -> Array:
    """M_k (C, C) with PE[p + k] = PE[p] @ M_k for every position p (even C).

    For one pair (s, c) = (sin(p w), cos(p w)) the angle-sum identities give

        sin((p + k) w) = s cos(k w) + c sin(k w),   cos((p + k) w) = -s sin(k w) + c cos(k w)

    so M_k is block diagonal with the 2 x 2 blocks [[cos kw, -sin kw], [sin kw, cos kw]]. It
    does not depend on p. (Odd C has a lone sine, which no fixed linear map shifts.)
    """
    C = positive_int("positional_shift", "C", C)
    if C % 2:
        raise fail("positional_shift", f"C must be even (every sine needs its cosine partner), got {C}")
    M = np.zeros((C, C))
    kw = k * _frequencies(C, base)  # (C/2,)
    cos, sin = np.cos(kw), np.sin(kw)
    i = np.arange(0, C, 2)
    M[i, i], M[i, i + 1], M[i + 1, i], M[i + 1, i + 1] = cos, -sin, sin, cos
    return M


# ------------------------------------------------------------------------------ checks
def _check_x(piece: str, shape: tuple[int, ...]) -> None:
    if len(shape) < 2 or 0 in shape:
        raise fail(piece, f"x must have shape (T, C) or (B, T, C) with no empty axis, got {shape_text(shape)}")


def _check_table(x_shape: tuple[int, ...], P_shape: tuple[int, ...]) -> None:
    T, C = x_shape[-2:]
    if len(P_shape) != 2 or P_shape[1] != C or P_shape[0] < T:
        raise fail(
            LEARNED,
            f"P must have shape (T_max, C) with T_max >= T = {T} and C = {C} to match x {shape_text(x_shape)}, "
            f"got {shape_text(P_shape)}",
        )


def _array(piece: str, name: str, a: Any) -> Array:
    """`a` as a float array (float32 kept, integers as float64), finite."""
    a = real_array(piece, name, a)
    a = np.asarray(a, dtype=float_dtype(a))
    check_finite(piece, name, a)
    return a


# ------------------------------------------------------------------------------ loops
def _add_rows_loops(x: Any, rows: list, depth: int) -> Any:
    """x[..., t, c] + rows[t][c] on nested lists: `rows` (T, C) added to every (T, C) block of x."""
    return map_blocks(lambda block: [[v + r for v, r in zip(xt, rt)] for xt, rt in zip(block, rows)], depth, x)


def sinusoidal_positions_loops(x: Any, *, base: float = PE_BASE) -> Any:
    """x + PE[:T] on nested lists (..., T, C) of floats or Values."""
    x, shape = nested_input(SINUSOIDAL, "x", x)
    _check_x(SINUSOIDAL, shape)
    return _add_rows_loops(x, positional_encoding(shape[-2], shape[-1], base).tolist(), len(shape) - 2)


def learned_positions_loops(x: Any, P: Any) -> Any:
    """x + P[:T] on nested lists: x (..., T, C), P (T_max, C), of floats or Values."""
    x, shape = nested_input(LEARNED, "x", x)
    P, P_shape = nested_input(LEARNED, "P", P)
    _check_x(LEARNED, shape)
    _check_table(shape, P_shape)
    return _add_rows_loops(x, P[: shape[-2]], len(shape) - 2)


# ------------------------------------------------------------------------------ manual pairs
def sinusoidal_positions_forward(x: Array, *, base: float = PE_BASE) -> tuple[Array, tuple[int, ...]]:
    """y = x + PE[:T], PE = positional_encoding(T, C) in x's dtype; the cache is x's shape."""
    x = _array(SINUSOIDAL, "x", x)
    _check_x(SINUSOIDAL, x.shape)
    return x + positional_encoding(x.shape[-2], x.shape[-1], base).astype(x.dtype), x.shape


def sinusoidal_positions_backward(dout: Array, cache: tuple[int, ...]) -> tuple[Array]:
    """PE is a constant, so dy/dx = I: dx = dout."""
    return (dout_array(SINUSOIDAL, dout, cache).copy(),)


class LearnedPositionsCache(NamedTuple):
    x_shape: tuple[int, ...]  # (..., T, C)
    T_max: int  # rows of P
    dtype: np.dtype


def learned_positions_forward(x: Array, P: Array) -> tuple[Array, LearnedPositionsCache]:
    """y = x + P[:T]: x (..., T, C), P (T_max, C) -> (..., T, C); row t of P is position t's vector."""
    x, P = (_array(LEARNED, n, a) for n, a in (("x", x), ("P", P)))
    dt = float_dtype(x, P)
    x, P = x.astype(dt, copy=False), P.astype(dt, copy=False)
    _check_x(LEARNED, x.shape)
    _check_table(x.shape, P.shape)
    T = x.shape[-2]
    return x + P[:T], LearnedPositionsCache(x_shape=x.shape, T_max=P.shape[0], dtype=dt)


def learned_positions_backward(dout: Array, cache: LearnedPositionsCache) -> tuple[Array, Array]:
    """(dx, dP) of y[..., t, c] = x[..., t, c] + P[t, c].

        dx = dout                                    (the skip: dy/dx = I)
        dP[t] = sum over the leading axes of dout[..., t, :]   for t < T   (P[t] is added to every sequence)
        dP[t] = 0                                    for T <= t < T_max (rows not used)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)
    dout = dout_array(LEARNED, dout, cache.x_shape, dtype=cache.dtype)
    T, C = cache.x_shape[-2:]
    dP = np.zeros((cache.T_max, C), dtype=cache.dtype)  # (T_max, C)
    dP[:T] = dout.reshape(-1, T, C).sum(axis=0)
    return dout.copy(), dP


# ------------------------------------------------------------------------------ classes
class SinusoidalPositions(Module):
    """Adds the paper's fixed positional encoding: y = x + PE[:T]; no parameters, backward is the identity."""

    def __init__(self, base: float = PE_BASE) -> None:
        super().__init__()
        self.base = float(base)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        out, self._shape = sinusoidal_positions_forward(x, base=self.base)
        return out

    def backward(self, dout: Array) -> Array:
        if self._shape is None:
            raise RuntimeError("SinusoidalPositions.backward called before forward")
        return sinusoidal_positions_backward(dout, self._shape)[0]


class LearnedPositions(Module):
    """Adds a learned position table: y = x + P[:T], P (T_max, C) ~ N(0, std^2), std 0.02 as in GPT-2.

    `backward(dout)` adds dP into `self.grads["P"]` and returns dx = dout.
    """

    def __init__(self, T_max: int, C: int, rng: np.random.Generator | None = None, std: float = 0.02) -> None:
        super().__init__()
        self.T_max, self.C = positive_int("LearnedPositions", "T_max", T_max), positive_int("LearnedPositions", "C", C)
        rng = rng if rng is not None else np.random.default_rng()
        self.add_param("P", std * rng.standard_normal((self.T_max, self.C)))
        self._cache: LearnedPositionsCache | None = None

    def forward(self, x: Array) -> Array:
        out, self._cache = learned_positions_forward(x, self.params["P"])
        return out

    def backward(self, dout: Array) -> Array:
        if self._cache is None:
            raise RuntimeError("LearnedPositions.backward called before forward")
        dx, dP = learned_positions_backward(dout, self._cache)
        self.grads["P"] += dP
        return dx


# ------------------------------------------------------------------------------ registry
def _sinusoidal_case(shape: tuple[int, ...]) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        return {"x": rng.standard_normal(shape)}, {"base": PE_BASE}

    return make


def _learned_case(shape: tuple[int, ...], T_max: int) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, Array], dict[str, Any]]:
        return {"x": rng.standard_normal(shape), "P": rng.standard_normal((T_max, shape[-1]))}, {}

    return make


def _sinusoidal_torch(torch: Any, x: Any, *, base: float = PE_BASE) -> Any:
    """The torch referee (see `Piece`): the encoding from torch's sin and cos, added to x."""
    T, C = x.shape[-2:]
    w = 1.0 / base ** (torch.arange(0, C, 2, dtype=torch.float64) / C)  # (ceil(C/2),)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * w  # (T, ceil(C/2))
    pe = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(T, -1)[:, :C]  # interleaved
    return x + pe


def _learned_torch(torch: Any, x: Any, P: Any) -> Any:
    """The torch referee (see `Piece`): x + P[:T], broadcast over the leading axes."""
    return x + P[: x.shape[-2]]


register(
    Piece(
        name=SINUSOIDAL,
        loops=sinusoidal_positions_loops,
        forward=sinusoidal_positions_forward,
        backward=sinusoidal_positions_backward,
        cases=(
            Case("B2_T3_C4", _sinusoidal_case((2, 3, 4))),
            Case("T5_C3_odd", _sinusoidal_case((5, 3))),
            Case("B1_T1_C2", _sinusoidal_case((1, 1, 2))),
        ),
        description="x + PE[:T], the paper's fixed sinusoidal positional encoding",
        torch=_sinusoidal_torch,
    )
)

register(
    Piece(
        name=LEARNED,
        loops=learned_positions_loops,
        forward=learned_positions_forward,
        backward=learned_positions_backward,
        cases=(
            Case("B2_T3_C4_Tmax5", _learned_case((2, 3, 4), 5)),
            Case("T2_C3_Tmax2", _learned_case((2, 3), 2)),
            Case("B3_T1_C2_Tmax4", _learned_case((3, 1, 2), 4)),
        ),
        description="x + P[:T], a learned position table P (T_max, C) (GPT-2's wpe)",
        torch=_learned_torch,
    )
)
