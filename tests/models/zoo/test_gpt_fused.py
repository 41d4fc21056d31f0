"""The fused GPT step (models/zoo/gpt_fused.py) against the composed manual pairs, loss and every gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import models.zoo.gpt_fused as gpt_fast
from engine.errors import InputError
from models.zoo.gpt import GPT, GPTConfig
from nn.losses import IGNORE_INDEX

#: float64: the fused step adds the same terms in other orders (row sums as BLAS products,
#: the q/k/v product fused, constants folded into weights): measured about 1e-14 relative.
FUSED_RTOL64 = 1e-10
#: float32 against the composed step in float32: two roundings of ~6e-8 through two blocks
#: and their backward; measured about 3e-5 relative to the largest gradient entry.
FUSED_RTOL32 = 2e-3
#: absolute slack, as a fraction of the largest composed gradient entry, for entries that are
#: (analytically) near 0, e.g. the key bias's gradient (softmax ignores a per-query shift).
ATOL_FRACTION = {"float64": 1e-12, "float32": 2e-4}
RTOL = {"float64": FUSED_RTOL64, "float32": FUSED_RTOL32}

#: vocabulary 7, context 6, width 8, 2 heads, 2 blocks: small, every path exercised.
BASE = GPTConfig(vocab_size=7, context=6, d_model=8, n_heads=2, n_layers=2)


def make_pair(dtype: str = "float64", seed: int = 0, **overrides) -> tuple[GPT, GPT]:
    """Two models with the same (perturbed) weights: gains and biases moved off 1 and 0 so every term counts."""
    a = GPT(BASE, dtype=dtype, seed=seed, **overrides)
    b = GPT(BASE, dtype=dtype, seed=seed, **overrides)
    rng = np.random.default_rng(seed + 100)
    a.flat_params[:] += (0.2 * rng.standard_normal(a.flat_params.shape)).astype(a.flat_params.dtype)
    b.flat_params[:] = a.flat_params
    return a, b


def batch(config: GPTConfig, B: int, T: int, seed: int, n_ignored: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, config.vocab_size, size=(B, T))
    targets = rng.integers(0, config.vocab_size, size=(B, T))
    targets.reshape(-1)[rng.permutation(B * T)[:n_ignored]] = IGNORE_INDEX
    return idx, targets


def assert_same_step(fused: GPT, composed: GPT, idx: np.ndarray, targets: np.ndarray) -> None:
    """fused.loss_and_grad == composed.loss_and_grad_composed: the loss and each named gradient."""
    dtype = str(fused.flat_params.dtype)
    loss_f = fused.loss_and_grad(idx, targets)
    loss_c = composed.loss_and_grad_composed(idx, targets)
    assert loss_f == pytest.approx(loss_c, rel=RTOL[dtype])
    scale = float(np.max(np.abs(composed.flat_grads)))
    assert scale > 0.0
    for (name, g_f), (_, g_c) in zip(fused.named_grads(), composed.named_grads()):
        np.testing.assert_allclose(g_f, g_c, rtol=RTOL[dtype], atol=ATOL_FRACTION[dtype] * scale, err_msg=name)


GRID = [
    dict(activation=act, norm=norm, bias=bias)
    for act, norm, bias in itertools.product(("relu", "gelu", "gelu_tanh"), ("layer", "rms"), (True, False))
]
GRID += [
    dict(positions="sinusoidal"),
    dict(tied=False),
    dict(scale_embedding=True),
    dict(positions="sinusoidal", tied=False, scale_embedding=True, norm="rms", activation="gelu_tanh"),
    dict(n_layers=1, n_heads=1),
    dict(n_heads=4, d_ff=5),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("overrides", GRID, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_the_fused_step_is_the_composed_step(overrides, dtype) -> None:
    fused, composed = make_pair(dtype, **overrides)
    idx, targets = batch(fused.config, B=3, T=6, seed=1, n_ignored=4)
    assert_same_step(fused, composed, idx, targets)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("B, T", [(1, 6), (1, 1), (2, 3), (4, 1)])
def test_short_sequences_and_a_batch_of_one(B, T, dtype) -> None:
    fused, composed = make_pair(dtype)
    idx, targets = batch(fused.config, B=B, T=T, seed=2)
    assert_same_step(fused, composed, idx, targets)


def test_repeated_calls_with_changing_shapes_are_fresh_each_time() -> None:
    """One model through (B, T) = (3, 6), (2, 4), (3, 6) with new data each time, each step
    compared with a fresh model's composed step: nothing left in the buffers leaks through."""
    fused, _ = make_pair()
    for step, (B, T) in enumerate([(3, 6), (2, 4), (3, 6), (1, 2)]):
        _, composed = make_pair()
        fused.flat_grads.fill(0.0)
        idx, targets = batch(fused.config, B=B, T=T, seed=10 + step, n_ignored=min(step, B * T - 1))
        assert_same_step(fused, composed, idx, targets)


def test_gradients_are_added_into_the_existing_ones() -> None:
    fused, composed = make_pair()
    idx, targets = batch(fused.config, B=2, T=5, seed=3, n_ignored=1)
    before = np.random.default_rng(4).standard_normal(fused.flat_grads.shape)
    fused.flat_grads[:] = before
    fused.loss_and_grad(idx, targets)
    composed.loss_and_grad_composed(idx, targets)
    np.testing.assert_allclose(
        fused.flat_grads - before,
        composed.flat_grads,
        rtol=FUSED_RTOL64,
        atol=ATOL_FRACTION["float64"] * np.max(np.abs(composed.flat_grads)),
    )


def test_the_step_is_deterministic_bit_for_bit() -> None:
    """The same call on two fresh models, and again on the first: identical bits (resume relies on it)."""
    a, b = make_pair("float32")
    idx, targets = batch(a.config, B=3, T=6, seed=5, n_ignored=2)
    assert a.loss_and_grad(idx, targets) == b.loss_and_grad(idx, targets)
    assert np.array_equal(a.flat_grads, b.flat_grads)
    first = a.flat_grads.copy()
    a.flat_grads.fill(0.0)
    a.loss_and_grad(idx, targets)
    assert np.array_equal(a.flat_grads, first)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_large_attention_scores_take_the_shifted_softmax(dtype, monkeypatch) -> None:
    """Scores beyond +-ln(max float)/2 (44 in float32, 355 in float64) switch the softmax to
    subtracting each query's maximum; it must give the composed step's result too."""
    fused, composed = make_pair(dtype)
    for model in (fused, composed):
        params = dict(model.named_parameters())
        for layer in range(model.config.n_layers):
            params[f"h{layer}.Wq"] *= 30.0  # scores grow by 30^2
            params[f"h{layer}.Wk"] *= 30.0
    idx, targets = batch(fused.config, B=2, T=6, seed=6)
    largest = []
    real = gpt_fast.causal_attention_forward

    def spy(heads, Pt, *args):
        qs, k = heads[0], heads[1]
        largest.append(float(np.max(np.abs(np.matmul(k, np.swapaxes(qs, -1, -2))))))
        return real(heads, Pt, *args)

    monkeypatch.setattr(gpt_fast, "causal_attention_forward", spy)
    assert_same_step(fused, composed, idx, targets)
    assert max(largest) > gpt_fast._shift_free_limit(np.dtype(dtype))  # the shifted branch was taken


def test_the_scatter_add_beyond_the_one_hot_limit(monkeypatch) -> None:
    """Past ONEHOT_MAX entries the embedding's gradient is np.add.at's: the same numbers."""
    monkeypatch.setattr(gpt_fast, "ONEHOT_MAX", 0)
    fused, composed = make_pair(scale_embedding=True)
    idx, targets = batch(fused.config, B=3, T=6, seed=7)
    assert_same_step(fused, composed, idx, targets)
    assert fused._fused._ws.onehot_t is None


def test_a_dtype_change_moves_the_step_to_the_new_buffers() -> None:
    fused, _ = make_pair()
    idx, targets = batch(fused.config, B=2, T=4, seed=8)
    fused.loss_and_grad(idx, targets)
    fused.set_dtype(np.float32)
    fused.flat_grads.fill(0.0)
    _, composed = make_pair()
    composed.set_dtype(np.float32)
    composed.flat_params[:] = fused.flat_params
    assert_same_step(fused, composed, idx, targets)
    assert fused._fused._ws.key[2] == np.float32


@pytest.mark.parametrize(
    "idx, message",
    [
        (np.array([[1, 2, 7]]), r"ids out of range \[0, 7\): \[7\]"),
        (np.array([[1, -1, 2]]), r"ids out of range"),
        (np.zeros((1, 3)), "integer token ids"),
        (np.zeros(3, dtype=np.int64), "integer token ids"),
        (np.zeros((1, 7), dtype=np.int64), "more than the model's context of 6"),
    ],
)
def test_bad_idx_is_one_input_error(idx, message) -> None:
    model = GPT(BASE)
    with pytest.raises(InputError, match=message):
        model.loss_and_grad(idx, np.zeros((1, 3), dtype=np.int64))
    assert not model.flat_grads.any()  # nothing was added


@pytest.mark.parametrize(
    "targets, message",
    [
        (np.zeros((1, 2), dtype=np.int64), "targets must have shape"),
        (np.array([[0, 9, 1]]), r"targets must be class indices in \[0, 7\)"),
        (np.full((1, 3), IGNORE_INDEX), "every target is the ignore index"),
        (np.zeros((1, 3)), "integer class indices"),
        (None, "integer class indices"),  # no targets at all: once an AttributeError in the fused step
    ],
)
def test_bad_targets_are_one_input_error(targets, message) -> None:
    model = GPT(BASE)
    with pytest.raises(InputError, match=message):
        model.loss_and_grad(np.array([[1, 2, 3]]), targets)
    with pytest.raises(InputError, match=message):  # the composed step says the same
        model.loss_and_grad_composed(np.array([[1, 2, 3]]), targets)


def test_the_fused_logits_are_the_composed_logits() -> None:
    fused, composed = make_pair(tied=False)
    idx, _ = batch(fused.config, B=2, T=5, seed=9)
    np.testing.assert_allclose(fused._fused_step().logits(idx), composed.logits(idx), rtol=FUSED_RTOL64, atol=1e-12)
