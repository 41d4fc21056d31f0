"""The fast attention kernel (nn._attention_fast) against the reference pair (nn.attention).

The registry checks both three ways on the same small cases; here the two manual forms are
compared with each other over many shapes (leading axes, Tq != Tk, d != dv, one position),
masks (none, causal with offsets, padding, both, a per-head mask), score sizes on both sides
of the fast kernel's shift-free limit, and float32 and float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import nn._attention_fast as fast_module
from nn._attention_fast import attention_fast_backward, attention_fast_forward
from nn.attention import attention_backward, attention_forward
from nn.masks import causal_mask, padding_mask

# The two forms do the same float arithmetic in another order (transposed scores, a skipped
# max-shift, the row sum as dO . O, 1/sqrt(d) folded into q first). In float64 that is a few
# ulps of O(1)-O(10) numbers (seen <= 2e-15); 1e-12 leaves a wide margin.
FLOAT64_RTOL = 1e-12
FLOAT64_ATOL = 1e-12
# float32: the same reorderings at 2^-24 relative per rounding, through ~10 roundings of
# O(1)-O(10) values (seen <= 4e-6)
FLOAT32_RTOL = 1e-4
FLOAT32_ATOL = 1e-4
# scores in the hundreds (the per-row-max path): the gradients grow with the scores, and
# an ulp of a score enters exp() unscaled
LARGE_SCORE_ATOL = 1e-9

SHAPES = [  # (lead, Tq, Tk, d, dv)
    ((), 1, 1, 1, 1),
    ((), 5, 7, 3, 2),
    ((3,), 4, 4, 8, 8),
    ((2,), 1, 6, 4, 3),
    ((2, 3), 5, 5, 4, 6),
    ((4, 2), 3, 7, 2, 5),
    ((1, 1, 2), 4, 3, 3, 3),
    ((16, 4), 64, 64, 16, 16),  # the benchmark's shape: several chunks of CHUNK_BYTES
]


def _mask(kind: str, lead: tuple[int, ...], Tq: int, Tk: int, rng: np.random.Generator) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(Tq, Tk)
    if kind == "causal_offset":
        return causal_mask(Tq, Tk, offset=max(Tk - Tq, 0))
    # padding: B sequences of random lengths, broadcast over every other leading axis
    lengths = rng.integers(1, Tk + 1, size=lead[0] if lead else 1)
    pad = padding_mask(lengths, Tk, heads=False)  # (B, 1, Tk)
    pad = pad.reshape((pad.shape[0],) + (1,) * len(lead) + (Tk,)) if lead else pad[0]  # (B, 1, .., 1, Tk) or (1, Tk)
    if kind == "padding":
        return pad
    if kind == "padding&causal":
        return pad & causal_mask(Tq, Tk)  # key 0 stays allowed for every query
    # "random": any pattern, full shape, every query row keeps one key
    m = rng.random(lead + (Tq, Tk)) < 0.6
    m[..., 0] |= ~m.any(axis=-1)
    return m


def _inputs(lead, Tq, Tk, d, dv, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    q = (scale * rng.standard_normal(lead + (Tq, d))).astype(dtype)
    k = (scale * rng.standard_normal(lead + (Tk, d))).astype(dtype)
    v = rng.standard_normal(lead + (Tk, dv)).astype(dtype)
    dout = rng.standard_normal(lead + (Tq, dv)).astype(dtype)
    return q, k, v, dout, rng


def _compare(q, k, v, dout, mask, rtol, atol) -> None:
    out_ref, c_ref = attention_forward(q, k, v, mask=mask)
    out_fast, c_fast = attention_fast_forward(q, k, v, mask=mask)
    assert out_fast.dtype == out_ref.dtype == q.dtype
    np.testing.assert_allclose(out_fast, out_ref, rtol=rtol, atol=atol, err_msg="out")
    np.testing.assert_allclose(c_fast.weights, c_ref.weights, rtol=rtol, atol=atol, err_msg="weights")
    if mask is not None:
        excluded = ~np.broadcast_to(mask, c_ref.weights.shape)
        assert np.all(c_ref.weights[excluded] == 0.0) and np.all(c_fast.weights[excluded] == 0.0)
    for name, g_fast, g_ref in zip(
        ("dq", "dk", "dv"), attention_fast_backward(dout, c_fast), attention_backward(dout, c_ref)
    ):
        assert g_fast.dtype == g_ref.dtype == q.dtype, name
        np.testing.assert_allclose(g_fast, g_ref, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "causal_offset", "padding", "padding&causal", "random"])
@pytest.mark.parametrize("lead, Tq, Tk, d, dv", SHAPES)
def test_fast_kernel_matches_the_reference(lead, Tq, Tk, d, dv, mask_kind: str, dtype) -> None:
    q, k, v, dout, rng = _inputs(lead, Tq, Tk, d, dv, dtype, 1.0, seed=len(lead) * 100 + Tq * 10 + Tk)
    mask = _mask(mask_kind, lead, Tq, Tk, rng)
    tol = (FLOAT64_RTOL, FLOAT64_ATOL) if dtype == np.float64 else (FLOAT32_RTOL, FLOAT32_ATOL)
    _compare(q, k, v, dout, mask, *tol)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding", "random"])
def test_fast_kernel_matches_the_reference_on_large_scores(mask_kind: str) -> None:
    """Scores in the hundreds: beyond the shift-free limit, the fast kernel takes its per-row-max path."""
    lead, Tq, Tk, d, dv = (3, 2), 4, 6, 4, 3
    q, k, v, dout, rng = _inputs(lead, Tq, Tk, d, dv, np.float64, 15.0, seed=7)
    q[1] *= 3.0  # one batch entry far beyond float64's limit of 354.9
    mask = _mask(mask_kind, lead, Tq, Tk, rng)
    _compare(q, k, v, dout, mask, FLOAT64_RTOL, LARGE_SCORE_ATOL)


@pytest.mark.parametrize("chunk_bytes", [1, 300, 10**9])
def test_fast_kernel_matches_the_reference_for_any_chunking(monkeypatch, chunk_bytes: int) -> None:
    q, k, v, dout, rng = _inputs((5, 2), 3, 4, 3, 2, np.float64, 1.0, seed=11)
    monkeypatch.setattr(fast_module, "CHUNK_BYTES", chunk_bytes)
    _compare(q, k, v, dout, padding_mask([4, 3, 1, 2, 4]) & causal_mask(3, 4, offset=1), FLOAT64_RTOL, FLOAT64_ATOL)


def test_both_forms_refuse_the_same_bad_input_with_their_own_name() -> None:
    rng = np.random.default_rng(12)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    for forward, piece in ((attention_forward, "attention"), (attention_fast_forward, "attention_fast")):
        with pytest.raises(ValueError, match=rf"^{piece}: mask has shape \(3, 3\)"):
            forward(q, k, v, mask=causal_mask(3))
        with pytest.raises(ValueError, match=rf"^{piece}: q has shape \(2, 3, 4\) and k has shape \(2, 5, 3\)"):
            forward(q, k[..., :3], v)
    _, cache = attention_fast_forward(q, k, v)
    with pytest.raises(ValueError, match=r"^attention_fast: dout has shape \(2, 3\)"):
        attention_fast_backward(np.ones((2, 3)), cache)
