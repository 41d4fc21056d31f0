"""The residual connection and (inverted) dropout, written two ways.

    residual:  y = x + f                           (He et al. 2016; f is the branch's output)
    dropout:   y = x * mask,  mask_i = keep_i / (1 - p),  keep_i ~ Bernoulli(1 - p)
               (Srivastava et al. 2014, in the "inverted" form: scaling at training time
               keeps E[y] = x, so evaluation is the identity)
"""  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)

# Shape legend: any shape; x and f (or x and mask) share it, e.g. (B, T, C).

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from nn._checks import array_input, dout_array, fail, nested_input, same_shape
from nn._nested import map_leaves
from nn.registry import Case, Piece, register


# ------------------------------------------------------------------------------ residual
def residual_loops(x: Any, f: Any) -> Any:
    """y = x + f elementwise on nested lists of floats or Values (same shapes, as the manual form)."""
    x, x_shape = nested_input("residual", "x", x)
    f, f_shape = nested_input("residual", "f", f)
    same_shape("residual", "x", x_shape, "f", f_shape)
    return map_leaves(lambda u, v: u + v, x, f)


def residual_forward(x: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """y = x + f (same shapes, no broadcasting); the cache is only the shape, to check dout."""
    x = array_input("residual", "x", x)
    f = array_input("residual", "f", f)
    # No broadcasting: a residual whose branch changed the shape is a bug upstream.
    same_shape("residual", "x", x.shape, "f", f.shape)
    return x + f, x.shape


def residual_backward(dout: np.ndarray, cache: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """dy/dx = dy/df = I, so dx = df = dout: the gradient passes unchanged down both paths
    (which is why deep residual stacks train: the skip path is a gradient highway)."""
    dout = dout_array("residual", dout, cache)
    return dout.copy(), dout.copy()


# ------------------------------------------------------------------------------ dropout
def _check_dropout_args(p: float, seed: int, training: bool) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p < 1.0:
        raise fail("dropout", f"p must be a probability in [0, 1), got {p!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise fail("dropout", f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(training, (bool, np.bool_)):
        raise fail("dropout", f"training must be a bool, got {training!r}")


def dropout_mask(shape: tuple[int, ...], p: float, seed: int) -> np.ndarray:
    """The scaled keep mask both dropout forms use: keep / (1 - p), keep_i = [u_i >= p].

    u ~ Uniform[0, 1) from `np.random.default_rng(seed)`, so a (shape, p, seed) triple
    always gives the same mask. A training loop passes a different seed each step.
    """
    _check_dropout_args(p, seed, True)
    keep = np.random.default_rng(seed).random(shape) >= p  # P(keep) = 1 - p
    return keep / (1.0 - p)


def _dropout_active(p: float, training: bool) -> bool:
    return bool(training) and p > 0.0


def dropout_loops(x: Any, p: float, seed: int, training: bool = True) -> Any:
    """Dropout on nested lists, with the mask from `dropout_mask` (the same as the numpy form's)."""
    _check_dropout_args(p, seed, training)
    x, x_shape = nested_input("dropout", "x", x)
    if not _dropout_active(p, training):
        return map_leaves(lambda u: u, x)  # identity, as a fresh nested list
    mask = dropout_mask(x_shape, p, seed).tolist()
    return map_leaves(lambda u, m: u * m, x, mask)


class DropoutCache(NamedTuple):
    mask: np.ndarray | None  # (shape of x) scaled keep mask; None when dropout is the identity
    shape: tuple[int, ...]  # x's shape, to check dout against on the identity path too


def dropout_forward(x: np.ndarray, p: float, seed: int, training: bool = True) -> tuple[np.ndarray, DropoutCache]:
    """y = x * mask when training with p > 0; y = x otherwise (evaluation, or p = 0)."""
    _check_dropout_args(p, seed, training)
    x = array_input("dropout", "x", x)
    if not _dropout_active(p, training):
        return x.copy(), DropoutCache(mask=None, shape=x.shape)
    mask = dropout_mask(x.shape, p, seed)  # same shape as x
    return x * mask, DropoutCache(mask=mask, shape=x.shape)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> tuple[np.ndarray]:
    """y_i = x_i m_i with m fixed, so dx_i = dout_i m_i: zero where dropped, 1/(1-p) where kept."""
    dout = dout_array("dropout", dout, cache.shape)
    if cache.mask is None:
        return (np.array(dout, dtype=np.float64, copy=True),)
    return (dout * cache.mask,)


# ------------------------------------------------------------------------------ registry
def _residual_case(shape: tuple[int, ...]) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"x": rng.standard_normal(shape), "f": rng.standard_normal(shape)}, {}

    return make


def _dropout_case(shape: tuple[int, ...], p: float, seed: int) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"x": rng.standard_normal(shape)}, {"p": p, "seed": seed, "training": True}

    return make


def _residual_torch(torch: Any, x: Any, f: Any) -> Any:
    """The torch referee (see `Piece`): the plain tensor sum."""
    return x + f


register(
    Piece(
        name="residual",
        loops=residual_loops,
        forward=residual_forward,
        backward=residual_backward,
        cases=(
            Case("batch1_C3", _residual_case((1, 3))),
            Case("B3_C5", _residual_case((3, 5))),
            Case("B2_T3_C7", _residual_case((2, 3, 7))),
        ),
        description="residual connection y = x + f",
        torch=_residual_torch,
    )
)

register(
    Piece(
        name="dropout",
        loops=dropout_loops,
        forward=dropout_forward,
        backward=dropout_backward,
        cases=(
            Case("batch1_C7_p0.5", _dropout_case((1, 7), 0.5, 3)),
            Case("B3_C5_p0.2", _dropout_case((3, 5), 0.2, 11)),
            Case("B2_T3_C5_p0.3", _dropout_case((2, 3, 5), 0.3, 0)),
        ),
        description="inverted dropout with a seeded mask (training=True)",
        # A torch form would have to take our numpy mask (torch's generator draws other bits),
        # leaving only `x * mask`: nothing the three-way check does not already judge.
        torch_skip="torch draws the dropout mask from its own generator, so it cannot reproduce ours; "
        "the mask's statistics and scaling are tested in tests/nn/test_nn_layers.py",
    )
)
