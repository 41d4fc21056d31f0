"""The thin classes that own parameters: Linear, LayerNorm, Embedding and MultiHeadAttention.

Their math is the registered pieces' (checked three ways in test_registry.py); here we
check the bookkeeping: the same numbers as the pieces, gradients that accumulate, and a
finite-difference check through the class interface.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import NUMERIC, assert_gradients_close, numerical_gradient_arrays
from nn.embedding import Embedding, embedding_forward
from nn.linear import Linear, linear_forward
from nn.masks import causal_mask
from nn.mha import MultiHeadAttention, mha_backward, mha_forward, self_attention_backward, self_attention_forward
from nn.normalization import LayerNorm, layer_norm_backward, layer_norm_forward

SAME = 0.0  # the class calls the same function on the same arrays: bit-identical


def test_linear_matches_the_piece_and_accumulates() -> None:
    rng = np.random.default_rng(0)
    layer = Linear(3, 2, rng)
    x = rng.standard_normal((4, 3))
    out = layer.forward(x)
    np.testing.assert_allclose(out, linear_forward(x, layer.params["W"], layer.params["b"])[0], rtol=SAME, atol=SAME)
    dout = rng.standard_normal((4, 2))
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, dout @ layer.params["W"].T, rtol=1e-14)
    first = layer.grads["W"].copy()
    layer.backward(dout)
    np.testing.assert_allclose(layer.grads["W"], 2 * first, rtol=1e-14)
    layer.zero_grad()
    assert not layer.grads["W"].any() and not layer.grads["b"].any()


def test_linear_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    layer = Linear(3, 2, rng)
    x = rng.standard_normal((5, 3))
    R = rng.standard_normal((5, 2))
    layer.forward(x)
    layer.backward(R)

    def loss(p: dict[str, np.ndarray]) -> float:
        return float(np.sum(linear_forward(x, p["W"], p["b"])[0] * R))

    numeric = numerical_gradient_arrays(loss, layer.params)
    assert_gradients_close({"manual": layer.grads, "numeric": numeric}, pairs=[("manual", "numeric", NUMERIC)])


def test_linear_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_in"):
        Linear(0, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(2, 2).backward(np.zeros((1, 2)))


def test_linear_checkpoint_round_trip(tmp_path) -> None:
    layer = Linear(3, 2, np.random.default_rng(2))
    layer.save(tmp_path / "lin", config={"n_in": 3, "n_out": 2})
    loaded = Linear.load(tmp_path / "lin")
    for name, value in layer.named_parameters():
        assert np.array_equal(dict(loaded.named_parameters())[name], value)


def test_layer_norm_matches_the_piece_accumulates_and_returns_dx() -> None:
    rng = np.random.default_rng(5)
    ln = LayerNorm(4)
    ln.params["gamma"][...] += 0.3 * rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 4))
    out = ln.forward(x)
    ref, cache = layer_norm_forward(x, ln.params["gamma"], ln.params["beta"], eps=ln.eps)
    np.testing.assert_allclose(out, ref, rtol=SAME, atol=SAME)
    dout = rng.standard_normal(out.shape)
    dx = ln.backward(dout)
    ref_dx, ref_dgamma, ref_dbeta = layer_norm_backward(dout, cache)
    np.testing.assert_allclose(dx, ref_dx, rtol=SAME, atol=SAME)
    np.testing.assert_allclose(ln.grads["gamma"], ref_dgamma, rtol=SAME, atol=SAME)
    ln.backward(dout)
    np.testing.assert_allclose(ln.grads["beta"], 2 * ref_dbeta, rtol=SAME, atol=SAME)  # g + g is exact
    assert np.shares_memory(ln.grads["gamma"], ln.flat_grads) and ln.flat_params.shape == (8,)
    ln.zero_grad()
    assert not ln.flat_grads.any()
    with pytest.raises(RuntimeError, match="before forward"):
        LayerNorm(3).backward(np.zeros((1, 3)))


def test_embedding_accumulates_and_has_no_input_gradient() -> None:
    rng = np.random.default_rng(6)
    emb = Embedding(5, 3, rng)
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    out = emb.forward(ids)
    np.testing.assert_allclose(out, embedding_forward(emb.params["W"], ids)[0], rtol=SAME, atol=SAME)
    dout = rng.standard_normal(out.shape)
    assert emb.backward(dout) is None  # integer ids: nothing to differentiate
    first = emb.grads["W"].copy()
    np.testing.assert_allclose(first[2], dout[0, 1] + dout[0, 2], rtol=SAME, atol=SAME)  # repeated id: both rows add
    emb.backward(dout)
    np.testing.assert_allclose(emb.grads["W"], 2 * first, rtol=SAME, atol=SAME)
    assert np.shares_memory(emb.params["W"], emb.flat_params)


def test_linear_params_are_views_into_its_flat_buffer() -> None:
    layer = Linear(3, 2, np.random.default_rng(7))
    assert layer.flat_params.shape == layer.flat_grads.shape == (3 * 2 + 2,)
    layer.flat_params[:] = 0.5
    assert np.all(layer.params["W"] == 0.5) and np.all(layer.params["b"] == 0.5)


def test_mha_self_attention_matches_the_piece() -> None:
    rng = np.random.default_rng(3)
    mha = MultiHeadAttention(8, 2, rng)
    x = rng.standard_normal((2, 5, 8))
    mask = causal_mask(5)
    out = mha.forward(x, mask=mask)
    ref, cache = self_attention_forward(
        x, *(mha.params[n] for n in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")), n_heads=2, mask=mask
    )
    np.testing.assert_allclose(out, ref, rtol=SAME, atol=SAME)
    assert mha.weights.shape == (2, 2, 5, 5)
    assert np.all(mha.weights[..., ~mask] == 0.0)  # masked positions get exactly zero weight
    dout = rng.standard_normal(out.shape)
    dx = mha.backward(dout)  # the Module contract: backward(dout) -> dx
    assert mha.dxkv is None
    ref_grads = self_attention_backward(dout, cache)
    np.testing.assert_allclose(dx, ref_grads[0], rtol=SAME, atol=SAME)  # dx = dxq + dxkv, the same fused product
    for name, g in zip(("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"), ref_grads[1:]):
        np.testing.assert_allclose(mha.grads[name], g, rtol=SAME, atol=SAME, err_msg=name)
    mha.backward(dout)  # a second backward adds (+=) into the grads
    np.testing.assert_allclose(mha.grads["Wq"], 2 * ref_grads[1], rtol=1e-14)


def test_mha_cross_attention_returns_dxq_and_keeps_dxkv() -> None:
    rng = np.random.default_rng(5)
    mha = MultiHeadAttention(6, 3, rng)
    xq, xkv = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 4, 6))
    out = mha.forward(xq, xkv)
    dout = rng.standard_normal(out.shape)
    dxq = mha.backward(dout)
    _, cache = mha_forward(
        xq, xkv, *(mha.params[n] for n in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")), n_heads=3
    )
    ref = mha_backward(dout, cache)
    np.testing.assert_allclose(dxq, ref[0], rtol=SAME, atol=SAME)
    assert mha.dxkv is not None and mha.dxkv.shape == xkv.shape
    np.testing.assert_allclose(mha.dxkv, ref[1], rtol=SAME, atol=SAME)
    mha.forward(xq)  # a self-attention step afterwards forgets the cross-attention dxkv
    mha.backward(dout)
    assert mha.dxkv is None


def test_mha_cross_attention_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(4)
    mha = MultiHeadAttention(4, 2, rng, bias=False)
    assert set(mha.params) == {"Wq", "Wk", "Wv", "Wo"}
    xq, xkv = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 2, 4))
    R = rng.standard_normal((1, 3, 4))
    mha.forward(xq, xkv)
    mha.backward(R)

    def loss(p: dict[str, np.ndarray]) -> float:
        return float(np.sum(mha_forward(xq, xkv, p["Wq"], p["Wk"], p["Wv"], p["Wo"], n_heads=2)[0] * R))

    numeric = numerical_gradient_arrays(loss, mha.params)
    assert_gradients_close({"manual": mha.grads, "numeric": numeric}, pairs=[("manual", "numeric", NUMERIC)])


def test_mha_bad_heads() -> None:
    with pytest.raises(ValueError):
        MultiHeadAttention(6, 4)
