"""RMSNorm's special cases (its three-way check and torch referee run from the registry)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from engine import InputError
from nn.normalization import DEFAULT_EPS, RMSNorm, rms_norm_backward, rms_norm_forward, rms_norm_loops

#: Same float64 formula written another way: rounding only.
SAME_MATH_RTOL = 1e-12
#: float32 against float64 on O(1) values.
FLOAT32_ATOL = 1e-6


def test_rows_come_out_with_unit_rms_and_eps_is_named() -> None:
    x = np.random.default_rng(0).standard_normal((3, 5)) * 4.0
    y, _ = rms_norm_forward(x, np.ones(5), eps=DEFAULT_EPS)
    ms = (x * x).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, x / np.sqrt(ms + DEFAULT_EPS), rtol=SAME_MATH_RTOL)
    # eps is a keyword argument with a named default, and it is used
    assert inspect.signature(rms_norm_forward).parameters["eps"].default == DEFAULT_EPS
    y_big_eps, _ = rms_norm_forward(x, np.ones(5), eps=1.0)
    np.testing.assert_allclose(y_big_eps, x / np.sqrt(ms + 1.0), rtol=SAME_MATH_RTOL)


def test_zero_row_stays_finite() -> None:
    y, cache = rms_norm_forward(np.zeros((1, 4)), np.ones(4), eps=1e-6)
    dx, dgamma = rms_norm_backward(np.ones((1, 4)), cache)
    assert not y.any()
    np.testing.assert_allclose(dx, np.full((1, 4), 1e3), rtol=SAME_MATH_RTOL)  # dx = dy gamma / sqrt(eps)
    assert not dgamma.any()


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (
            ([[1.0, 2.0, 3.0]], [1.0, 1.0]),
            {},
            "rms_norm: gamma must have shape (C,) = (3,) to match x (1, 3), got (2,)",
        ),
        (
            ([[1.0, 2.0]], [1.0, 1.0]),
            {"eps": 0.0},
            "rms_norm: eps must be > 0 (it keeps a zero row from dividing by zero), got 0.0",
        ),
        (([[]], []), {}, "rms_norm: x needs at least one entry along its last axis (C), got shape (1, 0)"),
    ],
)
def test_bad_input_is_one_input_error_naming_the_argument(args: tuple, kwargs: dict, message: str) -> None:
    for fn in (rms_norm_loops, rms_norm_forward):
        with pytest.raises(InputError) as err:
            fn(*(np.asarray(a, dtype=np.float64) for a in args), **kwargs)
        assert str(err.value) == message


def test_float32_in_float32_out() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    y64, _ = rms_norm_forward(x, np.ones(4))
    y32, cache = rms_norm_forward(x.astype(np.float32), np.ones(4, dtype=np.float32))
    assert y32.dtype == np.float32 and all(g.dtype == np.float32 for g in rms_norm_backward(np.ones_like(y32), cache))
    np.testing.assert_allclose(y32, y64, atol=FLOAT32_ATOL)


def test_class_accumulates() -> None:
    norm = RMSNorm(4, eps=1e-3)
    x = np.random.default_rng(2).standard_normal((3, 4))
    np.testing.assert_array_equal(norm.forward(x), rms_norm_forward(x, np.ones(4), eps=1e-3)[0])
    dout = np.random.default_rng(3).standard_normal((3, 4))
    norm.backward(dout)
    once = norm.grads["gamma"].copy()
    norm.backward(dout)
    np.testing.assert_allclose(norm.grads["gamma"], 2 * once, rtol=SAME_MATH_RTOL)
    with pytest.raises(RuntimeError, match="before forward"):
        RMSNorm(2).backward(np.zeros((1, 2)))
