"""PyTorch as referee at extreme logits, for the activations, softmax and the losses.

The registered cases of every piece are compared with its torch form in
tests/nn/test_torch_referee.py (driven by the registry). This file keeps what those cases do
not reach: inputs of +-1e4, where an unshifted softmax or a naive sigmoid would overflow,
compared with the same `Piece.torch` forms and the same tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.registry import get_piece

torch = pytest.importorskip("torch")
from test_torch_referee import assert_matches_torch  # noqa: E402  (after the importorskip, as it needs torch)

EXTREME = 1e4
EXTREME_CASES = {
    "sigmoid": ({"x": np.array([EXTREME, -EXTREME, 0.3, -800.0])}, {}),
    "tanh": ({"x": np.array([EXTREME, -EXTREME, 0.3])}, {}),
    "gelu": ({"x": np.array([EXTREME, -EXTREME, 0.3, -9.0])}, {}),
    "gelu_tanh": ({"x": np.array([EXTREME, -EXTREME, 0.3, -9.0])}, {}),
    "softmax": ({"x": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])}, {}),
    "log_softmax": ({"x": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])}, {}),
    "cross_entropy": (
        {"logits": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])},
        {"targets": np.array([1, 2])},
    ),
    "binary_cross_entropy": (
        {"logits": np.array([EXTREME, -EXTREME, EXTREME, -EXTREME, 0.0])},
        {"targets": np.array([1.0, 0.0, 0.0, 1.0, 0.3])},
    ),
}


@pytest.mark.parametrize("name", sorted(EXTREME_CASES))
def test_matches_torch_at_extreme_logits(name: str) -> None:
    inputs, static = EXTREME_CASES[name]
    with np.errstate(over="raise"):  # our side must not overflow on the way
        assert_matches_torch(get_piece(name), inputs, static, what=f"{name} at +-{EXTREME:g}", seed=2)
