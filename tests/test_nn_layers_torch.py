"""PyTorch (float64) as referee for layer norm, embedding and the residual add.

Dropout is not compared: torch draws its mask from its own generator; its properties are
tested in test_nn_layers.py instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.embedding import embedding_backward, embedding_forward
from nn.normalization import layer_norm_backward, layer_norm_forward
from nn.residual import residual_backward, residual_forward

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: the same float64 math in a different order (torch fuses and reorders reductions).
TORCH_RTOL = 1e-10
TORCH_ATOL = 1e-12


def _t(a: np.ndarray, grad: bool = True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _close(mine: np.ndarray, theirs) -> None:
    np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=TORCH_RTOL, atol=TORCH_ATOL)


@pytest.mark.parametrize("shape", [(1, 5), (3, 7), (2, 3, 4), (4,)])
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_layer_norm_matches_torch(shape, eps) -> None:
    rng = np.random.default_rng(0)
    C = shape[-1]
    x = rng.standard_normal(shape)
    if len(shape) > 1:
        x.reshape(-1, C)[0] = 0.3  # a constant row too
    gamma, beta, dout = rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(shape)
    out, cache = layer_norm_forward(x, gamma, beta, eps=eps)
    dx, dgamma, dbeta = layer_norm_backward(dout, cache)

    tx, tg, tb = _t(x), _t(gamma), _t(beta)
    tout = F.layer_norm(tx, (C,), tg, tb, eps=eps)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    _close(out, tout)
    _close(dx, tx.grad)
    _close(dgamma, tg.grad)
    _close(dbeta, tb.grad)


@pytest.mark.parametrize("B,T,V,C", [(1, 1, 3, 2), (2, 5, 4, 3), (3, 4, 7, 5)])
def test_embedding_matches_torch(B, T, V, C) -> None:
    rng = np.random.default_rng(1)
    W = rng.standard_normal((V, C))
    ids = rng.integers(0, V, size=(B, T))
    ids.reshape(-1)[-1] = ids.reshape(-1)[0]  # at least one repeated token
    dout = rng.standard_normal((B, T, C))
    out, cache = embedding_forward(W, ids)
    (dW,) = embedding_backward(dout, cache)

    tW = _t(W)
    tout = F.embedding(torch.tensor(ids, dtype=torch.long), tW)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    _close(out, tout)
    _close(dW, tW.grad)


def test_residual_matches_torch() -> None:
    rng = np.random.default_rng(2)
    x, f, dout = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    out, cache = residual_forward(x, f)
    dx, df = residual_backward(dout, cache)
    tx, tf = _t(x), _t(f)
    tout = tx + tf
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    _close(out, tout)
    _close(dx, tx.grad)
    _close(df, tf.grad)
