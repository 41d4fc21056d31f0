"""PyTorch (float64) as referee for layer norm beyond its registered cases.

Every registered case of layer_norm, embedding and residual is compared with its torch form
in tests/nn/test_torch_referee.py (driven by the registry). What remains here: layer norm with
a non-default eps, which the registered cases (all eps = 1e-5) do not exercise. Dropout has
no torch referee: torch draws its mask from its own generator (the piece's `torch_skip`);
its properties are tested in tests/test_nn_layers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.registry import get_piece

torch = pytest.importorskip("torch")
from test_torch_referee import assert_matches_torch  # noqa: E402  (after the importorskip, as it needs torch)

#: Larger than PyTorch's default 1e-5: with var ~ eps the eps term visibly changes rstd.
LARGE_EPS = 1e-3


@pytest.mark.parametrize("shape", [(1, 5), (3, 7), (2, 3, 4), (4,)])
def test_layer_norm_with_a_larger_eps_matches_torch(shape) -> None:
    rng = np.random.default_rng(0)
    C = shape[-1]
    x = rng.standard_normal(shape)
    if len(shape) > 1:
        x.reshape(-1, C)[0] = 0.3  # a constant row: only eps keeps rstd finite
    x.reshape(-1, C)[-1] *= 0.03  # a row whose variance is comparable to eps
    inputs = {"x": x, "gamma": rng.standard_normal(C), "beta": rng.standard_normal(C)}
    assert_matches_torch(
        get_piece("layer_norm"), inputs, {"eps": LARGE_EPS}, what=f"layer_norm eps={LARGE_EPS} {shape}"
    )
