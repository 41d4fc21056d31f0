"""The feed-forward network's special cases (its three-way check and torch referee run from the registry)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import InputError
from nn.activations import gelu_forward
from nn.feedforward import ACTIVATIONS, FeedForward, ffn_backward, ffn_forward, ffn_loops

#: The manual pair against the same products written out in numpy: rounding order only.
SAME_MATH_RTOL = 1e-12
#: float32 against float64 on O(1) values: float32 keeps ~7 digits.
FLOAT32_ATOL = 1e-5


def _params(rng: np.random.Generator, C: int = 4, F: int = 6) -> dict[str, np.ndarray]:
    return {
        "W1": rng.standard_normal((C, F)),
        "W2": rng.standard_normal((F, C)),
        "b1": rng.standard_normal(F),
        "b2": rng.standard_normal(C),
    }


def test_ffn_is_two_affine_maps_around_the_activation() -> None:
    rng = np.random.default_rng(0)
    p = _params(rng)
    x = rng.standard_normal((2, 3, 4))
    y, _ = ffn_forward(x, p["W1"], p["W2"], p["b1"], p["b2"], activation="relu")
    np.testing.assert_allclose(y, np.maximum(x @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"], rtol=SAME_MATH_RTOL)
    y, _ = ffn_forward(x, p["W1"], p["W2"], activation="gelu")  # no biases
    np.testing.assert_allclose(y, gelu_forward(x @ p["W1"])[0] @ p["W2"], rtol=SAME_MATH_RTOL)


def test_backward_returns_one_gradient_per_given_input() -> None:
    rng = np.random.default_rng(1)
    p = _params(rng)
    x = rng.standard_normal((3, 4))
    _, cache = ffn_forward(x, p["W1"], p["W2"], activation="gelu_tanh")
    assert len(ffn_backward(np.ones((3, 4)), cache)) == 3  # dx, dW1, dW2
    _, cache = ffn_forward(x, p["W1"], p["W2"], p["b1"], p["b2"], activation="gelu_tanh")
    dx, dW1, dW2, db1, db2 = ffn_backward(np.ones((3, 4)), cache)
    assert db1.shape == (6,) and db2.shape == (4,)
    np.testing.assert_allclose(db2, np.full(4, 3.0), rtol=SAME_MATH_RTOL)  # three rows of ones


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        ((np.zeros((2, 3)), np.zeros((4, 6)), np.zeros((6, 3))), {}, "feedforward: W1 must have shape (C, F) = (3, F)"),
        (
            (np.zeros((2, 4)), np.zeros((4, 6)), np.zeros((5, 4))),
            {},
            "feedforward: W2 must have shape (F, C_out) = (6, C_out)",
        ),
        (
            (np.zeros((2, 4)), np.zeros((4, 6)), np.zeros((6, 4)), np.zeros(4)),
            {},
            "feedforward: b1 must have shape (6,)",
        ),
        ((np.zeros(4), np.zeros((4, 6)), np.zeros((6, 4))), {}, "feedforward: x must have shape (N, C) or (B, T, C)"),
        (
            (np.zeros((2, 4)), np.zeros((4, 6)), np.zeros((6, 4))),
            {"activation": "swish"},
            "feedforward: activation must be one of",
        ),
    ],
)
def test_bad_input_is_one_input_error_naming_the_argument(args: tuple, kwargs: dict, message: str) -> None:
    for fn in (ffn_forward, ffn_loops):
        with pytest.raises(InputError) as err:
            fn(*args, **kwargs)
        assert str(err.value).startswith(message), str(err.value)


def test_float32_in_float32_out() -> None:
    rng = np.random.default_rng(2)
    p = _params(rng)
    x = rng.standard_normal((2, 3, 4))
    y64, c64 = ffn_forward(x, *(p[n] for n in ("W1", "W2", "b1", "b2")), activation="gelu")
    y32, c32 = ffn_forward(
        x.astype(np.float32), *(p[n].astype(np.float32) for n in ("W1", "W2", "b1", "b2")), activation="gelu"
    )
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, atol=FLOAT32_ATOL * np.abs(y64).max())
    grads = ffn_backward(np.ones_like(y32), c32)
    assert all(g.dtype == np.float32 for g in grads)


def test_class_defaults_and_accumulation() -> None:
    ffn = FeedForward(4, rng=np.random.default_rng(3))
    assert ffn.d_ff == 16 and [n for n, _ in ffn.named_parameters()] == ["W1", "W2", "b1", "b2"]
    assert [n for n, _ in FeedForward(4, 8, bias=False).named_parameters()] == ["W1", "W2"]
    x = np.random.default_rng(4).standard_normal((2, 3, 4))
    ffn.forward(x)
    dx = ffn.backward(np.ones((2, 3, 4)))
    once = ffn.flat_grads.copy()
    ffn.backward(np.ones((2, 3, 4)))
    np.testing.assert_allclose(ffn.flat_grads, 2 * once, rtol=SAME_MATH_RTOL)
    assert dx.shape == x.shape
    with pytest.raises(ValueError, match="activation"):
        FeedForward(4, activation="tanh")
    assert set(ACTIVATIONS) == {"relu", "gelu", "gelu_tanh"}
