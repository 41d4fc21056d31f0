"""Layer norm, embedding, positional encoding, residual and dropout: three-way checks,
edge cases (constant rows, repeated tokens), properties and bad input (both forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import EXACT, NUMERIC
from nn.embedding import Embedding, embedding_backward, embedding_forward, embedding_loops
from nn.normalization import LayerNorm, layer_norm_backward, layer_norm_forward, layer_norm_loops
from nn.positions import positional_encoding
from nn.registry import assert_three_way, check_piece, get_piece
from nn.residual import (
    dropout_backward,
    dropout_forward,
    dropout_loops,
    dropout_mask,
    residual_backward,
    residual_forward,
    residual_loops,
)

MY_PIECES = ("layer_norm", "embedding", "residual", "dropout")
#: sums and products of a few float64 numbers computed in a different order: rounding only.
ROUNDING_RTOL = 1e-12
#: sin/cos of the same float64 argument computed by math and by numpy: a few ulps.
TRIG_ATOL = 1e-14
#: a constant row normalizes to xhat = 0 exactly, so y = beta up to one rounding of beta.
CONSTANT_ROW_ATOL = 1e-15
#: the mean of C = 9 normalized entries of O(1): C roundings of ~1e-16 each, summed.
ROW_MEAN_ATOL = 1e-14
#: dx from the closed form vs an explicit C x C Jacobian built entry by entry: the two sum
#: O(C^2) products of O(rstd^3) terms in different orders (a few ulps of O(10) sums).
JACOBIAN_RTOL = 1e-10
JACOBIAN_ATOL = 1e-12


# ------------------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", MY_PIECES)
def test_registered_with_several_cases_incl_batch1(name: str) -> None:
    piece = get_piece(name)
    assert len(piece.cases) >= 3
    batch_sizes = set()
    for case in piece.cases:
        inputs, static = case.make(np.random.default_rng(0))
        # The batch axis leads the ids for embedding (W is a table), the first input otherwise.
        first = static["ids"] if name == "embedding" else next(iter(inputs.values()))
        batch_sizes.add(first.shape[0])
    assert 1 in batch_sizes, f"{name} has no batch-1 case"


@pytest.mark.parametrize("name", MY_PIECES)
def test_three_way_all_cases(name: str) -> None:
    for report in check_piece(get_piece(name)):
        assert report.passed, str(report)


# ------------------------------------------------------------------------------ bad input, both forms
# (loops form, args, kwargs, the exact message, whether the manual forward -- given the same
# arguments as arrays -- must say the same; ragged lists and non-numbers never become arrays).
LOOPS_BAD_INPUT = [
    (
        layer_norm_loops,
        ([[1.0, 2.0, 3.0]], [1.0, 1.0], [0.0, 0.0, 0.0]),
        {},
        "layer_norm: gamma must have shape (C,) = (3,) to match x (1, 3), got (2,)",
        True,
    ),
    (
        layer_norm_loops,
        ([[1.0, 2.0, 3.0]], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        {},
        "layer_norm: gamma must have shape (C,) = (3,) to match x (1, 3), got (4,)",
        True,
    ),
    (
        layer_norm_loops,
        ([[1.0, 2.0, 3.0]], [1.0, 1.0, 1.0], [[0.0, 0.0, 0.0]]),
        {},
        "layer_norm: beta must have shape (C,) = (3,) to match x (1, 3), got (1, 3)",
        True,
    ),
    (
        layer_norm_loops,
        ([[1.0, 2.0, 3.0], [4.0, 5.0]], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        {},
        "layer_norm: x is ragged: expected shape (2, 3), but entry (1,) has length 2",
        False,
    ),
    (
        layer_norm_loops,
        ([[1.0, "2", 3.0]], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        {},
        "layer_norm: x must hold numbers or Values, got str at index (0, 1)",
        False,
    ),
    (
        layer_norm_loops,
        ([[1.0, 2.0]], [1.0, 1.0], [0.0, 0.0]),
        {"eps": 0.0},
        "layer_norm: eps must be > 0 (it keeps a constant row from dividing by zero), got 0.0",
        True,
    ),
    (
        layer_norm_loops,
        ([[]], [], []),
        {},
        "layer_norm: x needs at least one entry along its last axis (C), got shape (1, 0)",
        True,
    ),
    (
        residual_loops,
        ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]]),
        {},
        "residual: f is ragged: expected shape (2, 2), but entry (1,) has length 1",
        False,
    ),
    (
        residual_loops,
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [1.0, 2.0, 3.0]),
        {},
        "residual: x and f must have the same shape: x (2, 3), f (3,)",
        True,
    ),
    (
        residual_loops,
        ([[1.0, None]], [[1.0, 2.0]]),
        {},
        "residual: x must hold numbers or Values, got NoneType at index (0, 1)",
        False,
    ),
    (
        embedding_loops,
        ([[1.0, 2.0], [3.0]], np.array([[0, 1]])),
        {},
        "embedding: W is ragged: expected shape (2, 2), but entry (1,) has length 1",
        False,
    ),
    (
        embedding_loops,
        ([1.0, 2.0, 3.0, 4.0], np.array([[0, 1]])),
        {},
        "embedding: W must have shape (V, C), got shape (4,)",
        True,
    ),
    (
        embedding_loops,
        ([[1.0, 2.0], [3.0, 4.0]], np.array([[0, 2]])),
        {},
        "embedding: ids out of range [0, 2): [2] at [[0, 1]]",
        True,
    ),
    (
        dropout_loops,
        ([[1.0, "a"]], 0.5, 0),
        {},
        "dropout: x must hold numbers or Values, got str at index (0, 1)",
        False,
    ),
    (
        dropout_loops,
        ([[1.0, 2.0], [3.0]], 0.5, 0),
        {"training": False},
        "dropout: x is ragged: expected shape (2, 2), but entry (1,) has length 1",
        False,
    ),
    (dropout_loops, ([[1.0, 2.0]], 1.0, 0), {}, "dropout: p must be a probability in [0, 1), got 1.0", True),
]
FORWARD_OF = {
    layer_norm_loops: layer_norm_forward,
    residual_loops: residual_forward,
    embedding_loops: embedding_forward,
    dropout_loops: dropout_forward,
}


@pytest.mark.parametrize("fn,args,kwargs,message,both", LOOPS_BAD_INPUT, ids=[row[3][:60] for row in LOOPS_BAD_INPUT])
def test_loops_forms_refuse_bad_input_naming_piece_argument_and_shapes(fn, args, kwargs, message, both) -> None:
    with pytest.raises(ValueError) as err:
        fn(*args, **kwargs)
    assert str(err.value) == message
    if both:
        with pytest.raises(ValueError) as err:
            FORWARD_OF[fn](*(np.asarray(a, dtype=np.float64) if isinstance(a, list) else a for a in args), **kwargs)
        assert str(err.value) == message, "the manual form's message differs"


@pytest.mark.parametrize("name", MY_PIECES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_inputs_are_refused_by_both_forms(name: str, bad: float) -> None:
    piece = get_piece(name)
    inputs, static = piece.cases[1].make(np.random.default_rng(0))
    for arg in inputs:
        poisoned = {k: v.copy() for k, v in inputs.items()}
        poisoned[arg].reshape(-1)[-1] = bad
        index = tuple(int(i) for i in np.unravel_index(poisoned[arg].size - 1, poisoned[arg].shape))
        for form, fn in (("forward", piece.forward), ("loops", piece.loops)):
            with pytest.raises(ValueError) as err:
                fn(*poisoned.values(), **static)
            assert str(err.value) == f"{name}: {arg} has non-finite values ({bad} at index {index})", form


def test_dropout_backward_checks_dout_in_evaluation_mode_too() -> None:
    _, cache = dropout_forward(np.ones((2, 3)), p=0.5, seed=0, training=False)
    with pytest.raises(ValueError, match=r"^dropout: dout has shape \(3, 2\) but the output has shape \(2, 3\)$"):
        dropout_backward(np.ones((3, 2)), cache)
    with pytest.raises(ValueError, match=r"^dropout: dout has non-finite values \(nan at index \(1, 0\)\)$"):
        dropout_backward(np.array([[1.0, 1.0, 1.0], [math.nan, 1.0, 1.0]]), cache)


# ------------------------------------------------------------------------------ layer norm
def test_layer_norm_constant_row_has_finite_grads_matching_numeric() -> None:
    rng = np.random.default_rng(1)
    x = np.full((2, 6), -1.25)  # two constant rows: var = 0, only eps keeps rstd finite
    x[1] = rng.standard_normal(6)
    gamma, beta = 1.0 + rng.standard_normal(6) * 0.2, rng.standard_normal(6) * 0.2
    out, cache = layer_norm_forward(x, gamma, beta, eps=1e-5)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], beta, rtol=0, atol=CONSTANT_ROW_ATOL)  # xhat = 0 on a constant row
    dx, dgamma, dbeta = layer_norm_backward(rng.standard_normal(x.shape), cache)
    assert all(np.all(np.isfinite(g)) for g in (dx, dgamma, dbeta))
    report = assert_three_way(
        layer_norm_loops,
        layer_norm_forward,
        layer_norm_backward,
        {"x": x, "gamma": gamma, "beta": beta},
        {"eps": 1e-5},
        name="layer_norm constant row",
    )
    assert report.passed


def test_layer_norm_normalizes_rows_and_uses_biased_variance() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 9)) * 3 + 2
    C = x.shape[-1]
    out, cache = layer_norm_forward(x, np.ones(C), np.zeros(C), eps=1e-5)
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, rtol=0, atol=ROW_MEAN_ATOL)
    # Biased variance: var(out) = var / (var + eps), not 1 and not the n-1 version.
    var = x.var(axis=-1)  # numpy's default ddof=0 is the biased variance
    np.testing.assert_allclose(out.var(axis=-1), var / (var + 1e-5), rtol=ROUNDING_RTOL)
    np.testing.assert_allclose(cache.mean[:, 0], x.mean(axis=-1), rtol=ROUNDING_RTOL)
    np.testing.assert_allclose(cache.rstd[:, 0], 1 / np.sqrt(var + 1e-5), rtol=ROUNDING_RTOL)


def test_layer_norm_eps_is_a_keyword_that_matters() -> None:
    x = np.array([[0.0, 1e-3]])
    a, _ = layer_norm_forward(x, np.ones(2), np.zeros(2), eps=1e-5)
    b, _ = layer_norm_forward(x, np.ones(2), np.zeros(2), eps=1e-8)
    assert abs(a[0, 1]) < abs(b[0, 1])  # larger eps shrinks small-variance rows more


def test_layer_norm_backward_formula_matches_explicit_jacobian() -> None:
    # Independent check of dx = rstd (g - mean g - xhat mean(g xhat)): build the C x C
    # Jacobian of xhat from its definition and contract it with g.
    rng = np.random.default_rng(3)
    C, eps = 5, 1e-5
    x, gamma, beta, dout = (
        rng.standard_normal(C),
        rng.standard_normal(C),
        rng.standard_normal(C),
        rng.standard_normal(C),
    )
    _, cache = layer_norm_forward(x[None], gamma, beta, eps=eps)
    dx, _, _ = layer_norm_backward(dout[None], cache)
    mu, var = x.mean(), x.var()
    r = 1 / math.sqrt(var + eps)
    J = np.empty((C, C))  # J[j, i] = d xhat_j / d x_i
    for j in range(C):
        for i in range(C):
            J[j, i] = r * ((i == j) - 1 / C) - r**3 * (x[j] - mu) * (x[i] - mu) / C
    np.testing.assert_allclose(dx[0], (dout * gamma) @ J, rtol=JACOBIAN_RTOL, atol=JACOBIAN_ATOL)


@pytest.mark.parametrize(
    "shapes,needle",
    [
        (((2, 4), (3,), (4,)), "gamma"),
        (((2, 4), (4,), (4, 1)), "beta"),
    ],
)
def test_layer_norm_shape_errors_name_argument_and_shapes(shapes, needle) -> None:
    x, g, b = (np.ones(s) for s in shapes)
    with pytest.raises(ValueError) as err:
        layer_norm_forward(x, g, b)
    msg = str(err.value)
    assert "layer_norm" in msg and needle in msg and str(shapes[0]) in msg


def test_layer_norm_rejects_non_finite_and_bad_eps() -> None:
    x = np.ones((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        layer_norm_forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="eps"):
        layer_norm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), eps=0.0)


def test_layer_norm_class_accumulates_grads() -> None:
    rng = np.random.default_rng(4)
    ln = LayerNorm(5)
    ln.params["gamma"][:] = rng.standard_normal(5)
    x, dout = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    ln.forward(x)
    dx = ln.backward(dout)
    _, cache = layer_norm_forward(x, ln.params["gamma"], ln.params["beta"])
    ref_dx, ref_dgamma, ref_dbeta = layer_norm_backward(dout, cache)
    np.testing.assert_array_equal(dx, ref_dx)
    ln.forward(x)
    ln.backward(dout)  # a second backward adds, it does not overwrite
    np.testing.assert_allclose(ln.grads["gamma"], 2 * ref_dgamma, rtol=ROUNDING_RTOL)
    np.testing.assert_allclose(ln.grads["beta"], 2 * ref_dbeta, rtol=ROUNDING_RTOL)
    assert ln.num_parameters() == 10


# ------------------------------------------------------------------------------ embedding
def test_embedding_repeated_ids_scatter_add() -> None:
    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 3))
    ids = np.array([[2, 2, 0], [2, 1, 0]])  # token 2 three times, 0 twice, 3 never
    out, cache = embedding_forward(W, ids)
    np.testing.assert_array_equal(out, W[ids])
    dout = rng.standard_normal((2, 3, 3))
    (dW,) = embedding_backward(dout, cache)
    expected = np.zeros_like(W)
    for b in range(2):
        for t in range(3):
            expected[ids[b, t]] += dout[b, t]
    np.testing.assert_allclose(dW, expected, rtol=ROUNDING_RTOL)
    np.testing.assert_array_equal(dW[3], 0.0)
    assert_three_way(
        embedding_loops, embedding_forward, embedding_backward, {"W": W}, {"ids": ids}, name="embedding repeats"
    )


@pytest.mark.parametrize(
    "ids,needle",
    [
        (np.array([[0, 4]]), "out of range"),
        (np.array([[-1, 0]]), "out of range"),
        (np.array([[0.5, 1.0]]), "non-integer"),
        (np.array([[True, False]]), "integer token ids"),
    ],
)
def test_embedding_bad_ids_are_named(ids, needle) -> None:
    with pytest.raises(ValueError) as err:
        embedding_forward(np.zeros((4, 2)), ids)
    assert needle in str(err.value) and "embedding" in str(err.value)
    if needle == "out of range":
        assert str(int(ids[ids.astype(int) != 0][0])) in str(err.value)  # the offending id itself


def test_embedding_refuses_float_ids_even_integral() -> None:
    # As F.embedding and the losses' targets: a token id is an integer, 2.0 is a caller's slip.
    with pytest.raises(ValueError, match="float64"):
        embedding_forward(np.zeros((3, 2)), np.array([[2.0, 0.0]]))


def test_embedding_class_accumulates() -> None:
    emb = Embedding(5, 3, np.random.default_rng(0))
    ids = np.array([[1, 1, 4]])
    dout = np.ones((1, 3, 3))
    out = emb.forward(ids)
    np.testing.assert_array_equal(out, emb.params["W"][ids])
    assert emb.backward(dout) is None
    emb.forward(ids)
    emb.backward(dout)
    np.testing.assert_array_equal(emb.grads["W"][1], 4.0)  # twice per call, two calls
    np.testing.assert_array_equal(emb.grads["W"][0], 0.0)


# ------------------------------------------------------------------------------ positional encoding
@pytest.mark.parametrize("T,C", [(1, 1), (7, 6), (9, 5), (50, 16)])
def test_positional_encoding_matches_paper_formula(T: int, C: int) -> None:
    pe = positional_encoding(T, C)
    assert pe.shape == (T, C)
    for pos in sorted({0, min(1, T - 1), T // 2, T - 1}):
        for col in range(C):
            i = col // 2
            angle = pos / 10000 ** (2 * i / C)
            want = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert abs(pe[pos, col] - want) <= TRIG_ATOL, (pos, col)


def test_positional_encoding_rejects_bad_sizes() -> None:
    for T, C in [(0, 4), (3, 0), (2.5, 4)]:
        with pytest.raises(ValueError, match="positive int"):
            positional_encoding(T, C)


# ------------------------------------------------------------------------------ residual
def test_residual_is_sum_and_passes_gradient_to_both() -> None:
    rng = np.random.default_rng(6)
    x, f, dout = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    out, cache = residual_forward(x, f)
    np.testing.assert_array_equal(out, x + f)
    dx, df = residual_backward(dout, cache)
    np.testing.assert_array_equal(dx, dout)
    np.testing.assert_array_equal(df, dout)
    assert dx is not df


def test_residual_shape_mismatch() -> None:
    with pytest.raises(ValueError) as err:
        residual_forward(np.ones((2, 3)), np.ones((3,)))
    assert "residual" in str(err.value) and "(2, 3)" in str(err.value) and "(3,)" in str(err.value)
    with pytest.raises(ValueError, match="residual"):
        residual_loops([[1.0, 2.0]], [[1.0]])


# ------------------------------------------------------------------------------ dropout
#: the kept fraction of n Bernoulli(1-p) draws has std sqrt(p(1-p)/n) = 0.0015 at n = 1e5,
#: so 0.01 is more than 6 standard deviations.
FRACTION_ATOL = 0.01


def test_dropout_identity_at_eval_and_p0() -> None:
    x = np.random.default_rng(7).standard_normal((3, 4))
    for kwargs in ({"p": 0.5, "seed": 1, "training": False}, {"p": 0.0, "seed": 1, "training": True}):
        out, cache = dropout_forward(x, **kwargs)
        np.testing.assert_array_equal(out, x)
        (dx,) = dropout_backward(np.ones_like(x), cache)
        np.testing.assert_array_equal(dx, 1.0)
        np.testing.assert_array_equal(np.array(dropout_loops(x.tolist(), **kwargs)), x)


def test_dropout_scaling_fraction_and_zero_grads() -> None:
    p = 0.3
    x = np.random.default_rng(8).standard_normal((100, 1000)) + 5.0  # nonzero everywhere
    out, cache = dropout_forward(x, p=p, seed=42, training=True)
    kept = out != 0
    assert abs((~kept).mean() - p) < FRACTION_ATOL
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=ROUNDING_RTOL)
    (dx,) = dropout_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx[~kept], 0.0)
    np.testing.assert_allclose(dx[kept], 1 / (1 - p), rtol=ROUNDING_RTOL)


def test_dropout_loops_and_numpy_share_the_mask() -> None:
    x = np.random.default_rng(9).standard_normal((3, 7))
    out, _ = dropout_forward(x, p=0.5, seed=3)
    np.testing.assert_array_equal(np.array(dropout_loops(x.tolist(), p=0.5, seed=3)), out)
    np.testing.assert_array_equal(out, x * dropout_mask(x.shape, 0.5, 3))
    other, _ = dropout_forward(x, p=0.5, seed=4)
    assert not np.array_equal(out, other)  # the seed picks the mask


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_rejects_p_outside_unit_interval(p: float) -> None:
    with pytest.raises(ValueError, match="p must be"):
        dropout_forward(np.ones(3), p=p, seed=0)


def test_named_tolerances_are_the_engine_ones() -> None:
    # The registry checks use engine's named tolerances unless a piece says why not.
    for name in MY_PIECES:
        piece = get_piece(name)
        assert piece.exact == EXACT and piece.numeric == NUMERIC


def test_embedding_backward_one_hot_product_equals_the_scatter_add(monkeypatch) -> None:
    """Both ways of summing repeated ids (the product with one-hot, np.add.at past ONEHOT_MAX) agree."""
    import nn.embedding as emb

    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 3))
    ids = np.array([[0, 4, 4], [2, 0, 4]])  # repeated ids collect one term per occurrence
    _, cache = emb.embedding_forward(W, ids)
    dout = rng.standard_normal((2, 3, 3))
    (by_product,) = emb.embedding_backward(dout, cache)
    monkeypatch.setattr(emb, "ONEHOT_MAX", 0)
    (by_scatter,) = emb.embedding_backward(dout, cache)
    np.testing.assert_allclose(by_product, by_scatter, rtol=1e-15, atol=1e-15)  # the same sums, other order
