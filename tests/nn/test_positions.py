"""Positions and the scaled token embedding: the sinusoidal encoding against its closed form,
the shift-by-k rotation, the learned table's gradient, and sqrt(C) scaling with its switch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import InputError
from nn.embedding import Embedding, TokenEmbedding, embedding_forward, token_embedding_backward, token_embedding_forward
from nn.positions import (
    PE_BASE,
    LearnedPositions,
    SinusoidalPositions,
    learned_positions_backward,
    learned_positions_forward,
    positional_encoding,
    positional_shift,
    sinusoidal_positions_forward,
)

#: np.sin/np.cos against math.sin/math.cos of the same float64 angle: an ulp or two.
TRIG_ATOL = 1e-14
#: PE[p] @ M_k against PE[p + k]: two rounded trig values times O(1) entries, summed;
#: angles up to ~100 rad lose ~100 ulp in the argument reduction of sin/cos.
SHIFT_ATOL = 1e-12
#: Same float64 arithmetic: bit-identical or one rounding.
SAME_MATH_RTOL = 1e-14


def test_sinusoids_at_known_positions() -> None:
    C = 8
    pe = positional_encoding(5, C)
    np.testing.assert_allclose(pe[0], [0.0, 1.0] * (C // 2), atol=TRIG_ATOL)  # position 0: sin 0, cos 0
    # pair 0 has w = 1: PE[p, 0] = sin(p), PE[p, 1] = cos(p)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(5)), atol=TRIG_ATOL)
    np.testing.assert_allclose(pe[:, 1], np.cos(np.arange(5)), atol=TRIG_ATOL)
    # the last pair i = C/2 - 1 has w = base^(-(C-2)/C)
    w = PE_BASE ** (-(C - 2) / C)
    assert abs(pe[3, C - 2] - math.sin(3 * w)) <= TRIG_ATOL and abs(pe[3, C - 1] - math.cos(3 * w)) <= TRIG_ATOL
    np.testing.assert_allclose(
        pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, 1.0, atol=TRIG_ATOL
    )  # each pair is on the unit circle


@pytest.mark.parametrize("k", [0, 1, 3, 17])
def test_shifting_by_k_is_one_fixed_rotation(k: int) -> None:
    T, C = 64, 16
    pe = positional_encoding(T + k, C)
    M = positional_shift(k, C)
    np.testing.assert_allclose(pe[:T] @ M, pe[k : k + T], atol=SHIFT_ATOL)  # the same M for every p
    np.testing.assert_allclose(M @ M.T, np.eye(C), atol=SHIFT_ATOL)  # a rotation: orthogonal
    with pytest.raises(InputError, match="positional_shift: C must be even"):
        positional_shift(k, 5)


def test_sinusoidal_positions_add_the_encoding_and_pass_the_gradient() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y, _ = sinusoidal_positions_forward(x)
    np.testing.assert_allclose(y, x + positional_encoding(3, 4), rtol=SAME_MATH_RTOL)
    layer = SinusoidalPositions()
    assert layer.num_parameters() == 0
    np.testing.assert_array_equal(layer.forward(x), y)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))
    assert sinusoidal_positions_forward(x.astype(np.float32))[0].dtype == np.float32


def test_learned_positions_gradient_sums_over_the_batch_and_skips_unused_rows() -> None:
    rng = np.random.default_rng(1)
    x, P = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 4))
    y, cache = learned_positions_forward(x, P)
    np.testing.assert_array_equal(y, x + P[:2])
    dx, dP = learned_positions_backward(np.ones((3, 2, 4)), cache)
    np.testing.assert_array_equal(dx, np.ones((3, 2, 4)))
    np.testing.assert_array_equal(dP[:2], 3.0)  # three sequences use each of the first two rows
    np.testing.assert_array_equal(dP[2:], 0.0)
    with pytest.raises(InputError, match=r"learned_positions: P must have shape \(T_max, C\) with T_max >= T = 6"):
        learned_positions_forward(rng.standard_normal((1, 6, 4)), P)
    layer = LearnedPositions(5, 4, rng)
    layer.forward(x)
    layer.backward(np.ones((3, 2, 4)))
    layer.backward(np.ones((3, 2, 4)))
    np.testing.assert_array_equal(layer.grads["P"][:2], 6.0)  # accumulated over two backwards


def test_token_embedding_scales_by_sqrt_C_with_a_switch() -> None:
    rng = np.random.default_rng(2)
    W, ids = rng.standard_normal((6, 9)), np.array([[0, 5, 5]])
    out, cache = token_embedding_forward(W, ids)
    np.testing.assert_allclose(out, 3.0 * W[ids], rtol=SAME_MATH_RTOL)  # sqrt(9) = 3
    (dW,) = token_embedding_backward(np.ones((1, 3, 9)), cache)
    np.testing.assert_allclose(dW[5], 6.0, rtol=SAME_MATH_RTOL)  # two occurrences, each scaled by 3
    unscaled, _ = token_embedding_forward(W, ids, scale=False)
    np.testing.assert_array_equal(unscaled, embedding_forward(W, ids)[0])
    with pytest.raises(InputError, match="token_embedding: scale must be a bool"):
        token_embedding_forward(W, ids, scale=3.0)


def test_token_embedding_class_init_gives_unit_size_rows() -> None:
    C = 256
    emb = TokenEmbedding(50, C, np.random.default_rng(3))
    rows = emb.forward(np.arange(50)[None, :])
    assert abs(rows.std() - 1.0) < 0.05  # W ~ N(0, 1/C), times sqrt(C): ~N(0, 1) (12800 draws: std error ~0.006)
    assert isinstance(emb, Embedding) and emb.backward(np.ones((1, 50, C))) is None
    np.testing.assert_allclose(emb.grads["W"], math.sqrt(C), rtol=SAME_MATH_RTOL)
    plain = TokenEmbedding(4, 3, np.random.default_rng(4), scale=False)
    np.testing.assert_array_equal(plain.forward(np.array([[1]])), plain.params["W"][[[1]]])
