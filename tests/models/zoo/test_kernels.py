"""Replaceable kernels (models/zoo/kernels.py): a model given kernels computes the same function.

nn's own pairs handed in as replacements must give the default path's loss and gradients (to
float64 rounding: the composed pieces around a replaced attention sum in another order than
nn's fused multi-head attention). The kernel path of one block is also a registry piece
(`block_kernels`), checked three ways and against torch by tests/nn.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.zoo.gpt import GPT, GPTConfig
from models.zoo.kernels import NN_KERNELS
from models.zoo.mlp import MLP, MLPConfig

#: float64 rounding of the same sums in another order, relative to the largest gradient entry
RTOL = 1e-12

SMALL = GPTConfig(vocab_size=7, context=5, d_model=8, n_heads=2, n_layers=2, activation="gelu_tanh")
CONFIGS = {
    "gpt-2 shape": SMALL,
    "rms, relu, no biases, untied, sinusoidal": GPTConfig(
        **{
            **SMALL.to_dict(),
            "norm": "rms",
            "activation": "relu",
            "bias": False,
            "tied": False,
            "positions": "sinusoidal",
        }
    ),
    "no biases, layer norm, one head": GPTConfig(**{**SMALL.to_dict(), "bias": False, "n_heads": 1}),
    "one-file norms (micro)": GPTConfig(
        **{**SMALL.to_dict(), "norm": "layer", "norm_gain": False, "embed_norm": True, "final_norm": False}
    ),
}
REPLACED = [
    ("attention",),
    ("mha",),
    ("layer_norm",),
    ("transformer_block",),
    ("attention", "layer_norm"),
    ("attention", "mha", "layer_norm", "transformer_block"),
]


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("names", REPLACED, ids=["+".join(n) for n in REPLACED])
def test_a_gpt_with_nns_pieces_as_kernels_is_the_default_gpt(config: GPTConfig, names: tuple[str, ...]) -> None:
    default = GPT(config)
    replaced = GPT(config, kernels={n: NN_KERNELS[n] for n in names})
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 7, size=(3, 5)), rng.integers(0, 7, size=(3, 5))
    loss = default.loss_and_grad_composed(idx, targets)
    assert replaced.loss_and_grad(idx, targets) == pytest.approx(loss, rel=RTOL)
    scale = np.abs(default.flat_grads).max()
    assert np.abs(replaced.flat_grads - default.flat_grads).max() <= RTOL * scale
    assert np.abs(replaced.logits(idx) - default.logits(idx)).max() <= RTOL * np.abs(default.logits(idx)).max()


def test_a_gpt_without_kernels_trains_on_the_fused_step_and_with_them_on_the_composed_pieces(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(GPT, "loss_and_grad_composed", lambda self, idx, targets: calls.append("composed") or 0.0)
    idx = np.zeros((1, 3), dtype=np.int64)
    GPT(SMALL).loss_and_grad(idx, idx)
    assert calls == []
    GPT(SMALL, kernels={"mha": NN_KERNELS["mha"]}).loss_and_grad(idx, idx)
    assert calls == ["composed"]


@pytest.mark.parametrize("activation, loss", [("tanh", "mse"), ("relu", "cross_entropy"), ("sigmoid", "mse")])
def test_an_mlp_with_nns_pieces_as_kernels_is_the_default_mlp(activation: str, loss: str) -> None:
    config = MLPConfig(sizes=[3, 5, 4, 3], activation=activation, loss=loss)
    default = MLP(config)
    replaced = MLP(config, kernels={n: NN_KERNELS[n] for n in ("linear", activation, loss)})
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    assert replaced.loss_and_grads(x, y) == default.loss_and_grads(x, y)  # the same functions, called the same way
    np.testing.assert_array_equal(replaced.flat_grads, default.flat_grads)
