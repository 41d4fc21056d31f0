"""Attention: the three-way checks, masks, causality, stability, float32, errors, pictures."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from engine import Value
from engine.gradcheck import _flatten, to_values
from nn._attention_fast import attention_fast_backward, attention_fast_forward
from nn.attention import attention_backward, attention_forward, attention_loops
from nn.masks import causal_mask, padding_mask
from nn.mha import (
    attention_weights,
    init_mha_params,
    mha_backward,
    mha_forward,
    mha_loops,
    mha_nobias_backward,
    mha_nobias_forward,
    self_attention_backward,
    self_attention_forward,
)
from nn.registry import all_pieces, check_piece, get_piece

# graph vs manual in float64: the same arithmetic, only the rounding order differs
EXACT_RTOL = 1e-10
EXACT_ATOL = 1e-12
# two float64 evaluations of the same thing that may take different rounding paths
# (fused vs separate projections, shifted vs unshifted softmax): a few ulps of O(1) numbers
REPEAT_ATOL = 1e-13
# float32 against float64: ~10 roundings of relative size 6e-8 (2^-24) through O(1) values
FLOAT32_RTOL = 2e-5
FLOAT32_ATOL = 2e-5
# a few roundings of O(1) values (an ulp of 1.0 is 2.2e-16): row sums of the weights, a
# weight of exactly 1.0 times a value row, a two-key softmax worked by hand
FEW_ULPS = 1e-15
# graph vs manual with scores in the thousands: an ulp of a score (~2e-13) enters exp()
# unscaled, so the weights carry ~1e-13 relative error, and gradients of O(1e3) (dq = s dS K
# with K ~ 30) turn that into ~1e-10 absolute; 1e-9 keeps a margin (seen 3e-15 with this seed)
LARGE_SCORE_GRAD_ATOL = 1e-9
# gradients of two float64 computations that only split or fuse the same matrix products
# differently (batch chunks; fused [Wq | Wk | Wv] vs separate projections): BLAS may block the
# sums differently, a few ulps of O(10) sums (seen <= 7e-16)
REBLOCKED_GRAD_ATOL = 1e-12
# "one-hot up to rounding": here the runner-up score trails the top by hundreds, so its
# weight underflows; what is left is float32's rounding of the top weight (6e-8)
ONE_HOT_TOL = 1e-6

ATTENTION_PIECES = ("attention", "attention_fast", "mha", "mha_nobias", "self_attention")
# the reference manual pair and the fast kernel: the stability tests hold for both
MANUAL_FORMS = pytest.mark.parametrize(
    "forward, backward",
    [(attention_forward, attention_backward), (attention_fast_forward, attention_fast_backward)],
    ids=["reference", "fast"],
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _graph_grads(fn, arrays: dict[str, np.ndarray], R: np.ndarray, **static):
    """Run the loops form `fn` on Values, backprop sum(out * R); return (out floats, grads, leaves)."""
    leaves = {n: to_values(a, n) for n, a in arrays.items()}
    out = fn(*leaves.values(), **static)
    flat = _flatten(out)
    total = flat[0] * float(R.flat[0])
    for x, r in zip(flat[1:], R.reshape(-1)[1:].tolist()):
        total = total + x * r
    total.backward()
    grads = {n: np.array([v.grad for v in _flatten(leaves[n])]).reshape(arrays[n].shape) for n in arrays}
    return np.array([x.data for x in flat]).reshape(R.shape), grads, leaves


# ---------------------------------------------------------------------------- three ways
@pytest.mark.parametrize(
    "piece_name, case_name",
    [(p, c.name) for p in ATTENTION_PIECES for c in get_piece(p).cases],
)
def test_three_way(piece_name: str, case_name: str) -> None:
    piece = get_piece(piece_name)
    case = next(c for c in piece.cases if c.name == case_name)
    (report,) = check_piece(piece, case)
    assert report.passed, str(report)


def test_registry_has_required_pieces_and_cases() -> None:
    assert {"attention", "attention_fast", "mha"} <= {p.name for p in all_pieces()}
    assert get_piece("attention_fast").cases == get_piece("attention").cases
    assert get_piece("attention_fast").loops is get_piece("attention").loops
    assert {"no_mask", "causal", "padding", "T1"} <= {c.name for c in get_piece("attention").cases}
    assert {"self_causal", "T1"} <= {c.name for c in get_piece("mha").cases}
    assert any("cross" in c.name for c in get_piece("mha").cases)


@MANUAL_FORMS
def test_large_scores_three_way(forward, backward) -> None:
    """Scores beyond the fast kernel's shift-free range (its per-row-max path); graph and manual still agree."""
    rng = _rng(1)
    q = rng.standard_normal((2, 3, 4)) * 30.0  # scores ~ 30*30*2/2 = hundreds, above float64's 354 sometimes
    q[0, 0] *= 10.0  # make sure: one query's scores are in the thousands
    k = rng.standard_normal((2, 5, 4)) * 30.0
    v = rng.standard_normal((2, 5, 3))
    mask = causal_mask(3, 5, offset=2)
    out, cache = forward(q, k, v, mask=mask)
    assert np.abs(attention_weights(cache)).max() <= 1.0 and np.isfinite(out).all()
    R = rng.standard_normal(out.shape)
    g_out, g, _ = _graph_grads(attention_loops, {"q": q, "k": k, "v": v}, R, mask=mask)
    np.testing.assert_allclose(out, g_out, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    for name, dmanual in zip("qkv", backward(R, cache)):
        np.testing.assert_allclose(dmanual, g[name], rtol=EXACT_RTOL, atol=LARGE_SCORE_GRAD_ATOL, err_msg=name)


# ---------------------------------------------------------------------------- masks
def test_causal_mask_values() -> None:
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # top-left aligned like torch's is_causal; offset shifts it (queries = the last Tq positions)
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]
    assert causal_mask(2, 4, offset=2).tolist() == [[True, True, True, False], [True, True, True, True]]
    with pytest.raises(ValueError, match="Tq"):
        causal_mask(0)


def test_padding_mask_shapes_and_combination() -> None:
    m = padding_mask([3, 1])
    assert m.shape == (2, 1, 1, 3) and m.dtype == np.bool_
    assert m[:, 0, 0].tolist() == [[True, True, True], [True, False, False]]
    assert padding_mask([3, 1], heads=False).shape == (2, 1, 3)
    valid = np.array([[True, True, False, False]])
    assert np.array_equal(padding_mask(valid)[0, 0, 0], valid[0])
    both = padding_mask([3, 2]) & causal_mask(3)  # (B, 1, T, T)
    assert both.shape == (2, 1, 3, 3)
    assert both[1, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    with pytest.raises(ValueError, match="length"):
        padding_mask([4, 0])
    with pytest.raises(ValueError, match="Tk"):
        padding_mask([2, 3], Tk=2)


def test_masked_positions_get_exactly_zero_weight_and_gradient() -> None:
    rng = _rng(2)
    B, Tq, Tk, d = 2, 3, 5, 4
    q, k, v = rng.standard_normal((B, Tq, d)), rng.standard_normal((B, Tk, d)), rng.standard_normal((B, Tk, 2))
    lengths = [5, 3]
    mask = padding_mask(lengths, heads=False)  # (B, 1, Tk)
    out, cache = attention_forward(q, k, v, mask=mask)
    P = attention_weights(cache)
    assert np.all(P[1, :, 3:] == 0.0)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=0, atol=FEW_ULPS)
    R = rng.standard_normal(out.shape)
    dq, dk, dv = attention_backward(R, cache)
    assert np.all(dk[1, 3:] == 0.0) and np.all(dv[1, 3:] == 0.0)
    assert np.any(dk[0, 3:] != 0.0)  # the unpadded sequence does use those positions
    # the graph path: no edge reaches a padded key, so its leaves' gradients stay 0.0 exactly
    _, g, leaves = _graph_grads(attention_loops, {"q": q, "k": k, "v": v}, R, mask=mask)
    assert np.all(g["k"][1, 3:] == 0.0) and np.all(g["v"][1, 3:] == 0.0)
    _, w = attention_loops(leaves["q"], leaves["k"], leaves["v"], mask=mask, return_weights=True)
    assert all(w[1][i][j] == 0.0 and not isinstance(w[1][i][j], Value) for i in range(Tq) for j in (3, 4))
    # and what sits at the padded keys does not matter at all
    k2, v2 = k.copy(), v.copy()
    k2[1, 3:] = 50.0
    v2[1, 3:] = -7.0
    out2, _ = attention_forward(q, k2, v2, mask=mask)
    np.testing.assert_allclose(out2, out, rtol=0, atol=REPEAT_ATOL)


def test_padded_keys_get_exactly_zero_gradient_in_mha() -> None:
    rng = _rng(24)
    xq, xkv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    p = init_mha_params(4, 2, rng)
    out, cache = mha_forward(xq, xkv, *p.values(), n_heads=2, mask=padding_mask([5, 2]))
    assert np.all(attention_weights(cache)[1, :, :, 2:] == 0.0)
    dxq, dxkv, *_ = mha_backward(rng.standard_normal(out.shape), cache)
    assert np.all(dxkv[1, 2:] == 0.0) and np.all(dxkv[0] != 0.0)


@MANUAL_FORMS
def test_masked_zero_gradient_on_the_large_score_path_too(forward, backward) -> None:
    rng = _rng(3)
    q, k, v = 100 * rng.standard_normal((4, 3)), 100 * rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    out, cache = forward(q, k, v, mask=causal_mask(4))
    assert np.all(np.triu(attention_weights(cache), 1) == 0.0)
    dq, dk, dv = backward(np.ones_like(out), cache)
    assert all(np.isfinite(g).all() for g in (dq, dk, dv))
    # with dout only on the first query, nothing reaches keys 1..3 (all masked for query 0)
    dout = np.zeros_like(out)
    dout[0] = 1.0
    _, dk0, dv0 = backward(dout, cache)
    assert np.all(dk0[1:] == 0.0) and np.all(dv0[1:] == 0.0)


def test_fully_masked_row_raises_naming_the_row() -> None:
    rng = _rng(4)
    q, k, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))
    mask = np.ones((2, 3, 3), dtype=bool)
    mask[1, 2] = False
    with pytest.raises(ValueError, match=r"query row \[1, 2\]"):
        attention_forward(q, k, v, mask=mask)
    with pytest.raises(ValueError, match=r"query row \[1, 2\]"):
        attention_loops(q.tolist(), k.tolist(), v.tolist(), mask=mask)
    with pytest.raises(ValueError, match="no key"):
        causal_mask_bad = causal_mask(3, 3, offset=-1)  # query 0 sees nothing
        attention_forward(q, k, v, mask=causal_mask_bad)
    x = rng.standard_normal((1, 3, 4))
    p = init_mha_params(4, 2, rng)
    with pytest.raises(ValueError, match="mha: the mask leaves query row"):
        mha_forward(x, x, *p.values(), n_heads=2, mask=causal_mask(3, offset=-1))


# ---------------------------------------------------------------------------- causality
def _self_attention_inputs(seed: int, B: int = 2, T: int = 5, C: int = 6, H: int = 3):
    rng = _rng(seed)
    x = rng.standard_normal((B, T, C))
    p = init_mha_params(C, H, rng)
    for n in ("bq", "bk", "bv", "bo"):
        p[n] = 0.1 * rng.standard_normal(C)
    return x, p


@pytest.mark.parametrize("t", [1, 3, 4])
def test_causal_future_token_changes_no_earlier_output_manual(t: int) -> None:
    x, p = _self_attention_inputs(5)
    mask = causal_mask(x.shape[1])
    out, _ = self_attention_forward(x, *p.values(), n_heads=3, mask=mask)
    x2 = x.copy()
    x2[:, t] += 3.0
    out2, _ = self_attention_forward(x2, *p.values(), n_heads=3, mask=mask)
    np.testing.assert_allclose(out2[:, :t], out[:, :t], rtol=0, atol=REPEAT_ATOL)
    assert np.abs(out2[:, t:] - out[:, t:]).min() > 0.0  # the token itself and later ones do change


@pytest.mark.parametrize("t", [1, 3])
def test_causal_future_token_changes_no_earlier_output_loops(t: int) -> None:
    x, p = _self_attention_inputs(6, B=1, T=4, C=4, H=2)
    mask = causal_mask(4)
    plist = [a.tolist() for a in p.values()]
    out = np.array(mha_loops(x.tolist(), x.tolist(), *plist, n_heads=2, mask=mask))
    x2 = x.copy()
    x2[:, t] -= 2.0
    out2 = np.array(mha_loops(x2.tolist(), x2.tolist(), *plist, n_heads=2, mask=mask))
    # the loops never touch a masked key, so earlier outputs are bit-for-bit the same
    assert np.array_equal(out2[:, :t], out[:, :t])
    assert not np.array_equal(out2[:, t], out[:, t])


def test_causal_gradient_of_an_output_reaches_no_later_input() -> None:
    x, p = _self_attention_inputs(7)
    T = x.shape[1]
    out, cache = self_attention_forward(x, *p.values(), n_heads=3, mask=causal_mask(T))
    for i in range(T):
        dout = np.zeros_like(out)
        dout[:, i] = 1.0
        dx = self_attention_backward(dout, cache)[0]
        assert np.all(dx[:, i + 1 :] == 0.0), f"output {i} depends on a later input"
        assert np.all(np.abs(dx[:, : i + 1]).sum(-1) > 0.0)


# ---------------------------------------------------------------------------- stability
@MANUAL_FORMS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_logits_stay_finite_and_one_hot(forward, backward, dtype) -> None:
    rng = _rng(8)
    q = (rng.standard_normal((2, 4, 3)) * 1e4).astype(dtype)
    k = rng.standard_normal((2, 6, 3)).astype(dtype)
    v = rng.standard_normal((2, 6, 2)).astype(dtype)
    out, cache = forward(q, k, v)
    assert out.dtype == dtype
    P = attention_weights(cache)
    assert np.isfinite(out).all() and np.isfinite(P).all()
    scores = np.einsum("bid,bjd->bij", q.astype(np.float64), k.astype(np.float64))
    top = scores.argmax(-1)
    np.testing.assert_array_equal(P.argmax(-1), top)
    assert P.max(-1).min() > 1 - ONE_HOT_TOL
    np.testing.assert_allclose(out, np.take_along_axis(v, top[..., None], axis=1), rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
    grads = backward(np.ones_like(out), cache)
    assert all(np.isfinite(g).all() for g in grads)
    # the loops form agrees (float64)
    if dtype == np.float64:
        lo = np.array(attention_loops(q.tolist(), k.tolist(), v.tolist()))
        np.testing.assert_allclose(lo, out, rtol=EXACT_RTOL, atol=EXACT_ATOL)


@MANUAL_FORMS
def test_huge_logits_with_mask(forward, backward) -> None:
    rng = _rng(9)
    q, k, v = rng.standard_normal((5, 3)) * 1e4, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    out, cache = forward(q, k, v, mask=causal_mask(5))
    assert np.isfinite(out).all()
    assert np.all(np.triu(attention_weights(cache), 1) == 0.0)
    np.testing.assert_allclose(out[0], v[0], rtol=0, atol=FEW_ULPS)  # the first query sees only key 0
    assert all(np.isfinite(g).all() for g in backward(np.ones_like(out), cache))


# ---------------------------------------------------------------------------- chunking
@pytest.mark.parametrize("chunk_bytes", [1, 200, 10**9])
def test_chunked_manual_path_gives_the_same_results(monkeypatch, chunk_bytes: int) -> None:
    """The fast kernel walks the batch in cache-sized chunks; chunk boundaries change nothing,
    with a per-batch padding mask and with one batch entry on the large-score path."""
    import nn._attention_fast as attention_module

    rng = _rng(22)
    B, H, Tq, Tk, d = 5, 2, 3, 4, 3
    q, k, v = rng.standard_normal((B, H, Tq, d)), rng.standard_normal((B, H, Tk, d)), rng.standard_normal((B, H, Tk, 2))
    q[3] *= 300.0  # batch entry 3: scores beyond the shift-free range
    mask = padding_mask([4, 3, 1, 2, 4]) & causal_mask(Tq, Tk, offset=1)
    R = rng.standard_normal((B, H, Tq, 2))
    ref_out, ref_cache = attention_fast_forward(q, k, v, mask=mask)  # default chunking
    ref_grads = attention_fast_backward(R, ref_cache)
    monkeypatch.setattr(attention_module, "CHUNK_BYTES", chunk_bytes)
    out, cache = attention_fast_forward(q, k, v, mask=mask)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=REPEAT_ATOL)
    for g, g_ref in zip(attention_fast_backward(R, cache), ref_grads):
        np.testing.assert_allclose(g, g_ref, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    lo = np.array(attention_loops(q.tolist(), k.tolist(), v.tolist(), mask=mask))
    np.testing.assert_allclose(lo, out, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    x, p = _self_attention_inputs(23, B=5, T=4, C=6)
    m = padding_mask([4, 1, 2, 3, 4]) & causal_mask(4)
    o1, c1 = self_attention_forward(x, *p.values(), n_heads=3, mask=m)
    monkeypatch.setattr(attention_module, "CHUNK_BYTES", 10**9)
    o2, c2 = self_attention_forward(x, *p.values(), n_heads=3, mask=m)
    np.testing.assert_allclose(o1, o2, rtol=0, atol=REPEAT_ATOL)
    dout = rng.standard_normal(o1.shape)
    for g1, g2 in zip(self_attention_backward(dout, c1), self_attention_backward(dout, c2)):
        np.testing.assert_allclose(g1, g2, rtol=0, atol=REBLOCKED_GRAD_ATOL)


# ---------------------------------------------------------------------------- float32
@MANUAL_FORMS
def test_float32_attention_keeps_dtype_and_matches_float64(forward, backward) -> None:
    rng = _rng(10)
    q, k, v = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 2, 7, 4)), rng.standard_normal((2, 2, 7, 3))
    mask = causal_mask(5, 7, offset=2)
    out64, c64 = forward(q, k, v, mask=mask)
    out32, c32 = forward(*(a.astype(np.float32) for a in (q, k, v)), mask=mask)
    assert out32.dtype == np.float32 and attention_weights(c32).dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
    R = rng.standard_normal(out64.shape)
    for g32, g64 in zip(backward(R.astype(np.float32), c32), backward(R, c64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


def test_float32_mha_keeps_dtype_and_matches_float64() -> None:
    x, p = _self_attention_inputs(11, B=3, T=6, C=6)
    mask = padding_mask([6, 4, 1]) & causal_mask(6)
    out64, c64 = self_attention_forward(x, *p.values(), n_heads=3, mask=mask)
    out32, c32 = self_attention_forward(
        x.astype(np.float32), *(a.astype(np.float32) for a in p.values()), n_heads=3, mask=mask
    )
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)
    R = _rng(12).standard_normal(out64.shape)
    for g32, g64 in zip(self_attention_backward(R.astype(np.float32), c32), self_attention_backward(R, c64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


# ---------------------------------------------------------------------------- MHA variants
def test_self_attention_equals_mha_with_separate_inputs() -> None:
    """The fused self-attention path (xq is xkv) and the separate path agree; dx = dxq + dxkv."""
    x, p = _self_attention_inputs(13)
    mask = causal_mask(x.shape[1])
    out_s, c_s = self_attention_forward(x, *p.values(), n_heads=3, mask=mask)
    out_m, c_m = mha_forward(x, x.copy(), *p.values(), n_heads=3, mask=mask)
    np.testing.assert_allclose(out_s, out_m, rtol=0, atol=REPEAT_ATOL)
    R = _rng(14).standard_normal(out_s.shape)
    dx, *rest_s = self_attention_backward(R, c_s)
    dxq, dxkv, *rest_m = mha_backward(R, c_m)
    np.testing.assert_allclose(dx, dxq + dxkv, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    for a, b in zip(rest_s, rest_m):
        np.testing.assert_allclose(a, b, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    # mha_forward with the same object twice takes the fused path; its backward still splits dx
    _, c_same = mha_forward(x, x, *p.values(), n_heads=3, mask=mask)
    dxq2, dxkv2, *_ = mha_backward(R, c_same)
    np.testing.assert_allclose(dxq2, dxq, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    np.testing.assert_allclose(dxkv2, dxkv, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    with pytest.raises(ValueError, match="cross-attention"):
        self_attention_backward(R, c_m)


def test_mha_without_biases_equals_zero_biases() -> None:
    rng = _rng(15)
    xq, xkv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    p = init_mha_params(4, 2, rng, bias=True)
    assert set(p) == {"Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"} and not p["bq"].any()
    W = [p[n] for n in ("Wq", "Wk", "Wv", "Wo")]
    out_b, c_b = mha_forward(xq, xkv, *W, p["bq"], p["bk"], p["bv"], p["bo"], n_heads=2)
    out_n, c_n = mha_nobias_forward(xq, xkv, *W, n_heads=2)
    np.testing.assert_allclose(out_n, out_b, rtol=0, atol=REPEAT_ATOL)
    R = rng.standard_normal(out_b.shape)
    g_b, g_n = mha_backward(R, c_b), mha_nobias_backward(R, c_n)
    assert len(g_n) == 6 and mha_backward(R, c_n)[6:] == (None, None, None, None)
    for a, b in zip(g_b[:6], g_n):
        np.testing.assert_allclose(a, b, rtol=0, atol=REBLOCKED_GRAD_ATOL)
    # one bias only
    _, c_one = mha_forward(xq, xkv, *W, None, None, p["bv"], None, n_heads=2)
    g_one = mha_backward(R, c_one)
    assert g_one[6] is None and g_one[7] is None and g_one[9] is None
    np.testing.assert_allclose(g_one[8], g_b[8], rtol=0, atol=REBLOCKED_GRAD_ATOL)
    assert set(init_mha_params(4, 2, rng, bias=False)) == {"Wq", "Wk", "Wv", "Wo"}


def test_weights_accessor_and_loops_return_weights_agree() -> None:
    rng = _rng(16)
    xq, xkv = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 3, 4))
    p = init_mha_params(4, 2, rng)
    out, cache = mha_forward(xq, xkv, *p.values(), n_heads=2)
    P = attention_weights(cache)
    assert P.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=0, atol=FEW_ULPS)
    lo_out, lo_w = mha_loops(
        xq.tolist(), xkv.tolist(), *(a.tolist() for a in p.values()), n_heads=2, return_weights=True
    )
    np.testing.assert_allclose(np.array(lo_w), P, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    np.testing.assert_allclose(np.array(lo_out), out, rtol=EXACT_RTOL, atol=EXACT_ATOL)


def test_loops_form_handles_2d_3d_4d_nesting() -> None:
    rng = _rng(17)
    for lead in [(), (2,), (2, 3)]:
        q, k, v = (
            rng.standard_normal(lead + (3, 2)),
            rng.standard_normal(lead + (4, 2)),
            rng.standard_normal(lead + (4, 1)),
        )
        out, _ = attention_forward(q, k, v)
        np.testing.assert_allclose(
            np.array(attention_loops(q.tolist(), k.tolist(), v.tolist())), out, rtol=EXACT_RTOL, atol=EXACT_ATOL
        )


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "shapes, match",
    [
        (((2, 3, 4), (2, 5, 3), (2, 5, 2)), r"q has shape \(2, 3, 4\) and k has shape \(2, 5, 3\)"),
        (((2, 3, 4), (2, 5, 4), (2, 4, 2)), r"k has shape \(2, 5, 4\) and v has shape \(2, 4, 2\)"),
        (((2, 3, 4), (1, 5, 4), (1, 5, 2)), r"leading axes"),
        (((4,), (5, 4), (5, 2)), r"q must have shape"),
    ],
)
def test_attention_shape_errors(shapes, match) -> None:
    rng = _rng(18)
    q, k, v = (rng.standard_normal(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        attention_forward(q, k, v)
    with pytest.raises(ValueError, match=match):
        attention_loops(q.tolist(), k.tolist(), v.tolist())


def test_mask_and_value_errors() -> None:
    rng = _rng(19)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\).*\(2, 3, 5\)"):
        attention_forward(q, k, v, mask=causal_mask(3))
    with pytest.raises(ValueError, match="heads=False"):
        attention_forward(q, k, v, mask=padding_mask([5, 2]))  # (B, 1, 1, Tk): the multi-head layout
    with pytest.raises(ValueError, match="boolean"):
        attention_forward(q, k, v, mask=np.zeros((3, 5)))
    q_bad = q.copy()
    q_bad[1, 2, 0] = np.nan
    for form, fn, args in (
        ("forward", attention_forward, (q_bad, k, v)),
        ("loops", attention_loops, (q_bad.tolist(), k.tolist(), v.tolist())),
    ):
        with pytest.raises(ValueError) as err:
            fn(*args)
        assert str(err.value) == "attention: q has non-finite values (nan at index (1, 2, 0))", form
    with pytest.raises(ValueError, match=r"^attention: k must be an array of real numbers, got list: "):
        attention_forward(q, [[1.0, 2.0], [3.0]], v)  # ragged
    with pytest.raises(ValueError, match=r"^attention: v must be an array of real numbers, got dtype <U"):
        attention_forward(q, k, [["a", "b"]])
    out, cache = attention_forward(q, k, v)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 3\)"):
        attention_backward(np.ones((2, 3)), cache)


def test_mha_errors() -> None:
    rng = _rng(20)
    with pytest.raises(ValueError, match="d_model=6 is not divisible by n_heads=4"):
        init_mha_params(6, 4, rng)
    p = init_mha_params(6, 3, rng)
    W = [p[n] for n in ("Wq", "Wk", "Wv", "Wo")]
    x = rng.standard_normal((2, 3, 6))
    with pytest.raises(ValueError, match="not divisible by n_heads=4"):
        mha_forward(x, x, *W, n_heads=4)
    with pytest.raises(ValueError, match=r"xq has shape \(2, 3, 6\) and xkv has shape \(1, 3, 6\)"):
        mha_forward(x, x[:1], *W, n_heads=3)
    with pytest.raises(ValueError, match=r"Wk must have shape \(C, C\) = \(6, 6\).*\(6, 5\)"):
        mha_forward(x, x, W[0], W[1][:, :5], W[2], W[3], n_heads=3)
    with pytest.raises(ValueError, match=r"bo must have shape \(C,\) = \(6,\), got \(5,\)"):
        mha_forward(x, x, *W, None, None, None, np.zeros(5), n_heads=3)
    with pytest.raises(ValueError, match=r"xq must have shape \(B, Tq, C\)"):
        mha_forward(x[0], x[0], *W, n_heads=3)
    with pytest.raises(ValueError, match="n_heads must be a positive integer"):
        mha_forward(x, x, *W, n_heads=0)
    W_bad = W[0].copy()
    W_bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^mha: Wq has non-finite values \(inf at index \(0, 0\)\)$"):
        mha_forward(x, x, W_bad, *W[1:], n_heads=3)
    with pytest.raises(ValueError, match=r"^mha: Wq has non-finite values \(inf at index \(0, 0\)\)$"):
        mha_loops(x.tolist(), x.tolist(), W_bad.tolist(), *(w.tolist() for w in W[1:]), n_heads=3)
    with pytest.raises(ValueError, match="not divisible"):
        mha_loops(x.tolist(), x.tolist(), *(w.tolist() for w in W), n_heads=4)
    _, cache = mha_forward(x, x, *W, n_heads=3)
    with pytest.raises(ValueError, match=r"mha: dout has shape"):
        mha_backward(np.ones((2, 3, 5)), cache)


def test_loops_forms_check_their_nested_input_like_the_manual_forms() -> None:
    """Ragged lists, non-numbers and non-finite values are refused by name, not used or half-read."""
    rng = _rng(25)
    q, k, v = (
        rng.standard_normal((2, 3)).tolist(),
        rng.standard_normal((4, 3)).tolist(),
        rng.standard_normal((4, 2)).tolist(),
    )
    ragged_k = [row[:] for row in k]
    ragged_k[2] = ragged_k[2][:2]
    with pytest.raises(
        ValueError, match=r"^attention: k is ragged: expected shape \(4, 3\), but entry \(2,\) has length 2$"
    ):
        attention_loops(q, ragged_k, v)
    with pytest.raises(ValueError, match=r"^attention: v must hold numbers or Values, got str at index \(3, 1\)$"):
        attention_loops(q, k, v[:3] + [[0.5, "x"]])
    with pytest.raises(ValueError, match=r"^attention: v has non-finite values \(inf at index \(0, 0\)\)$"):
        attention_loops(q, k, [[math.inf, 0.0]] + v[1:])
    x = rng.standard_normal((1, 2, 4))
    p = init_mha_params(4, 2, rng)
    W = [p[n].tolist() for n in ("Wq", "Wk", "Wv", "Wo")]
    ragged_x = [[x[0, 0].tolist(), x[0, 1, :3].tolist()]]
    with pytest.raises(ValueError, match=r"^mha: xq is ragged"):
        mha_loops(ragged_x, x.tolist(), *W, n_heads=2)
    with pytest.raises(ValueError, match=r"^mha: bk has non-finite values \(nan at index \(1,\)\)$"):
        mha_loops(x.tolist(), x.tolist(), *W, [0.0] * 4, [0.0, math.nan, 0.0, 0.0], n_heads=2)
    # arrays are accepted by the loops forms too, as nested lists
    out, _ = attention_forward(np.array(q), np.array(k), np.array(v))
    np.testing.assert_allclose(
        np.array(attention_loops(np.array(q), np.array(k), np.array(v))), out, rtol=EXACT_RTOL, atol=EXACT_ATOL
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_backwards_refuse_a_non_finite_dout(dtype, bad: float) -> None:
    rng = _rng(26)
    q, k, v = (rng.standard_normal((2, 3, 2)).astype(dtype) for _ in range(3))
    out, cache = attention_forward(q, k, v)
    dout = np.ones_like(out)
    dout[1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf"^attention: dout has non-finite values \({bad} at index \(1, 2, 0\)\)$"):
        attention_backward(dout, cache)
    x = rng.standard_normal((1, 3, 4)).astype(dtype)
    params = [a.astype(dtype) for a in init_mha_params(4, 2, rng).values()]
    out, cache = self_attention_forward(x, *params, n_heads=2)
    dout = np.ones_like(out)
    dout[0, 0, 3] = bad
    for backward in (mha_backward, self_attention_backward):
        with pytest.raises(ValueError, match=r"dout has non-finite values"):
            backward(dout, cache)


# ---------------------------------------------------------------------------- pictures
# (the heatmap itself is tested in tests/viz/test_plots.py)
def test_attention_graph_is_labelled_and_grouped(tmp_path) -> None:
    from models.tour_stages.attention import attention_graph

    drawing = attention_graph()
    src = drawing.source
    for label in ("q[0,1]", "k[1,0]", "v[1,1]", "s[0,1]", "p[1,0]", "z[0]", "out[0,1]", "L"):
        assert label in src, label
    for group in ("Q", "K", "V", "scores", "softmax", "output"):
        assert f"label={group} " in src or f'label="{group}"' in src, group  # graphviz quotes only when needed
    assert drawing.save(tmp_path / "g.dot").read_text() == src
    causal = attention_graph(causal=True)  # one key for the first query: fewer nodes, still draws
    assert causal.n_values < drawing.n_values


def test_tour_stage_passes_and_writes_files(tmp_path) -> None:
    from models.tour_stages.attention import tour_stage

    echoed: list[str] = []
    assert tour_stage(tmp_path, echoed.append) is True
    text = "\n".join(echoed)
    lines = text.splitlines()
    for name in ("xq", "xkv", "Wq", "Wo", "bo"):
        assert any(line.startswith(name + " ") and line.rstrip().endswith("ok") for line in lines), name
    assert "attention_graph." in text
    assert list(tmp_path.glob("attention_graph.*"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert 'pip install -e ".[plot]"' in text
    else:
        assert (tmp_path / "attention_heads.png").exists()


def test_tour_stage_without_matplotlib_or_graphviz(monkeypatch, tmp_path) -> None:
    from models.tour_stages.attention import tour_stage

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` to be found
    echoed: list[str] = []
    assert tour_stage(tmp_path, echoed.append) is True
    text = "\n".join(echoed)
    assert 'pip install -e ".[plot]"' in text
    assert (tmp_path / "attention_graph.dot").exists() and not (tmp_path / "attention_heads.png").exists()


def test_scale_is_one_over_sqrt_d() -> None:
    """A single query against two keys, by hand: weights = softmax([q.k1, q.k2] / sqrt(d))."""
    q = np.array([[1.0, 2.0, 0.0, 1.0]])
    k = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    v = np.array([[1.0], [3.0]])
    out, cache = attention_forward(q, k, v)
    s = np.array([1.0, 3.0]) / math.sqrt(4)
    w = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(attention_weights(cache)[0], w, rtol=FEW_ULPS, atol=0)
    np.testing.assert_allclose(out[0, 0], w @ v[:, 0], rtol=FEW_ULPS, atol=0)
