"""Attention against PyTorch (the referee, float64), beyond the registered cases that
tests/nn/test_torch_referee.py compares with each piece's torch form: torch's own `is_causal`
against our `causal_mask` (also with Tq != Tk), combined padding & causal masks, scores in
the thousands, and torch.nn.MultiheadAttention with our weights copied in (its attn_mask and
key_padding_mask, its fused in_proj), forward, weights and every gradient."""

from __future__ import annotations

import numpy as np
import pytest

from nn.attention import attention_backward, attention_forward
from nn.masks import causal_mask, padding_mask
from nn.mha import (
    attention_weights,
    mha_backward,
    mha_forward,
    mha_nobias_backward,
    mha_nobias_forward,
    self_attention_backward,
    self_attention_forward,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

# Same math in float64 by two libraries: only the order of rounding differs.
#: forward values: a few ulps of O(1) numbers (seen <= 3e-14 relative); 1e-12 is a wide margin
FWD_RTOL = 1e-12
#: outputs and weights near 0 (masked neighbours, tiny probabilities): ~1e-16 of absolute rounding
FWD_ATOL = 1e-13
#: gradients pass through the softmax Jacobian and three projections, which magnify the
#: forward's rounding (seen <= 3e-13 relative on entries above 1e-3); 1e-10 keeps a 300x margin
GRAD_RTOL = 1e-10
#: gradient entries that cancel to ~0: a few ulps of the O(1)-O(10) terms that cancel
GRAD_ATOL = 1e-12
#: gradients of near-one-hot softmaxes times scores ~1e3: absolute rounding ~1e-13 * 1e3 = 1e-10
HUGE_SCORE_GRAD_ATOL = 1e-9


def _t(a: np.ndarray, grad: bool = True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _close(ours: np.ndarray, theirs, what: str, rtol: float = GRAD_RTOL, atol: float = GRAD_ATOL) -> None:
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------- SDPA
@pytest.mark.parametrize(
    "lead, Tq, Tk, d, dv, mask_kind",
    [
        ((2,), 4, 4, 3, 2, "none"),
        ((2, 3), 5, 5, 4, 4, "causal"),
        ((1,), 3, 6, 2, 3, "causal"),  # Tq != Tk: both top-left aligned
        ((3,), 2, 5, 4, 2, "padding"),
        ((2, 2), 4, 4, 8, 3, "padding&causal"),
        ((), 1, 1, 2, 2, "none"),
    ],
)
def test_attention_matches_sdpa(lead, Tq, Tk, d, dv, mask_kind: str) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal(lead + (Tq, d)),
        rng.standard_normal(lead + (Tk, d)),
        rng.standard_normal(lead + (Tk, dv)),
    )
    B = lead[0] if lead else 1
    lengths = np.maximum(Tk - np.arange(B), 1) if lead else np.array([Tk])
    heads = len(lead) == 2
    mask = {
        "none": None,
        "causal": causal_mask(Tq, Tk),
        "padding": padding_mask(lengths, Tk, heads=heads) if lead else None,
        "padding&causal": padding_mask(lengths, Tk, heads=heads) & causal_mask(Tq, Tk),
    }[mask_kind]
    out, cache = attention_forward(q, k, v, mask=mask)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv_ = attention_backward(dout, cache)

    qt, kt, vt = _t(q), _t(k), _t(v)
    if mask_kind == "causal":
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    else:
        ref = F.scaled_dot_product_attention(
            qt, kt, vt, attn_mask=None if mask is None else torch.from_numpy(np.asarray(mask))
        )
    ref.backward(torch.from_numpy(dout))
    _close(out, ref, "out", FWD_RTOL, FWD_ATOL)
    _close(dq, qt.grad, "dq")
    _close(dk, kt.grad, "dk")
    _close(dv_, vt.grad, "dv")


def test_attention_matches_sdpa_with_huge_logits() -> None:
    """Scores in the thousands (our per-row-max path) against torch."""
    rng = np.random.default_rng(1)
    q, k, v = 40 * rng.standard_normal((2, 5, 4)), 40 * rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    out, cache = attention_forward(q, k, v, mask=causal_mask(5))
    dout = rng.standard_normal(out.shape)
    grads = attention_backward(dout, cache)
    qt, kt, vt = _t(q), _t(k), _t(v)
    ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    ref.backward(torch.from_numpy(dout))
    _close(out, ref, "out", FWD_RTOL, FWD_ATOL)
    for ours, t, name in zip(grads, (qt, kt, vt), "qkv"):
        _close(ours, t.grad, "d" + name, GRAD_RTOL, HUGE_SCORE_GRAD_ATOL)


# ---------------------------------------------------------------------------- nn.MultiheadAttention
def _torch_mha(p: dict[str, np.ndarray], C: int, H: int, bias: bool):
    """torch's layer with our weights: it computes x @ W^T, so its weights are ours transposed;
    in_proj_weight stacks [Wq^T; Wk^T; Wv^T] as (3C, C)."""
    m = torch.nn.MultiheadAttention(C, H, bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.from_numpy(np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T], axis=0)))
        m.out_proj.weight.copy_(torch.from_numpy(p["Wo"].T))
        if bias:
            m.in_proj_bias.copy_(torch.from_numpy(np.concatenate([p["bq"], p["bk"], p["bv"]])))
            m.out_proj.bias.copy_(torch.from_numpy(p["bo"]))
    return m


def _params(rng: np.random.Generator, C: int, bias: bool = True) -> dict[str, np.ndarray]:
    p = {n: rng.standard_normal((C, C)) / np.sqrt(C) for n in ("Wq", "Wk", "Wv", "Wo")}
    if bias:
        p.update({n: 0.1 * rng.standard_normal(C) for n in ("bq", "bk", "bv", "bo")})
    return p


def _compare_param_grads(m, grads: dict[str, np.ndarray], C: int, bias: bool) -> None:
    gW = m.in_proj_weight.grad.numpy()  # (3C, C) = [dWq^T; dWk^T; dWv^T]
    _close(grads["Wq"], gW[:C].T, "dWq")
    _close(grads["Wk"], gW[C : 2 * C].T, "dWk")
    _close(grads["Wv"], gW[2 * C :].T, "dWv")
    _close(grads["Wo"], m.out_proj.weight.grad.numpy().T, "dWo")
    if bias:
        gb = m.in_proj_bias.grad.numpy()
        _close(grads["bq"], gb[:C], "dbq")
        _close(grads["bk"], gb[C : 2 * C], "dbk")
        _close(grads["bv"], gb[2 * C :], "dbv")
        _close(grads["bo"], m.out_proj.bias.grad.numpy(), "dbo")


@pytest.mark.parametrize("B, T, C, H", [(2, 5, 6, 3), (1, 1, 4, 2), (3, 4, 8, 1)])
def test_causal_self_attention_matches_torch_mha(B: int, T: int, C: int, H: int) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, C))
    p = _params(rng, C)
    mask = causal_mask(T)
    out, cache = self_attention_forward(x, *p.values(), n_heads=H, mask=mask)
    dout = rng.standard_normal(out.shape)
    dx, *rest = self_attention_backward(dout, cache)

    m = _torch_mha(p, C, H, bias=True)
    xt = _t(x)
    # torch's boolean attn_mask is True where attention is NOT allowed: the complement of ours
    ref, ref_w = m(xt, xt, xt, attn_mask=torch.from_numpy(~mask), need_weights=True, average_attn_weights=False)
    ref.backward(torch.from_numpy(dout))
    _close(out, ref, "out", FWD_RTOL, FWD_ATOL)
    _close(attention_weights(cache), ref_w, "weights", FWD_RTOL, FWD_ATOL)
    _close(dx, xt.grad, "dx")  # torch sums the three uses of x, as we do
    _compare_param_grads(m, dict(zip(("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"), rest)), C, bias=True)


def test_cross_attention_with_padding_matches_torch_mha() -> None:
    rng = np.random.default_rng(3)
    B, Tq, Tk, C, H = 3, 2, 5, 6, 2
    xq, xkv = rng.standard_normal((B, Tq, C)), rng.standard_normal((B, Tk, C))
    p = _params(rng, C)
    lengths = np.array([5, 3, 1])
    out, cache = mha_forward(xq, xkv, *p.values(), n_heads=H, mask=padding_mask(lengths, Tk))
    dout = rng.standard_normal(out.shape)
    dxq, dxkv, *rest = mha_backward(dout, cache)

    m = _torch_mha(p, C, H, bias=True)
    xqt, xkvt = _t(xq), _t(xkv)
    key_padding = torch.from_numpy(np.arange(Tk)[None, :] >= lengths[:, None])  # True = ignore
    ref, ref_w = m(xqt, xkvt, xkvt, key_padding_mask=key_padding, need_weights=True, average_attn_weights=False)
    ref.backward(torch.from_numpy(dout))
    _close(out, ref, "out", FWD_RTOL, FWD_ATOL)
    _close(attention_weights(cache), ref_w, "weights", FWD_RTOL, FWD_ATOL)
    _close(dxq, xqt.grad, "dxq")
    _close(dxkv, xkvt.grad, "dxkv")  # key and value paths, summed by torch on the shared leaf
    _compare_param_grads(m, dict(zip(("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"), rest)), C, bias=True)


def test_mha_without_biases_matches_torch_mha() -> None:
    rng = np.random.default_rng(4)
    B, Tq, Tk, C, H = 2, 3, 4, 4, 2
    xq, xkv = rng.standard_normal((B, Tq, C)), rng.standard_normal((B, Tk, C))
    p = _params(rng, C, bias=False)
    out, cache = mha_nobias_forward(xq, xkv, *p.values(), n_heads=H, mask=causal_mask(Tq, Tk))
    dout = rng.standard_normal(out.shape)
    dxq, dxkv, *rest = mha_nobias_backward(dout, cache)

    m = _torch_mha(p, C, H, bias=False)
    xqt, xkvt = _t(xq), _t(xkv)
    ref, _ = m(xqt, xkvt, xkvt, attn_mask=torch.from_numpy(~causal_mask(Tq, Tk)), need_weights=False)
    ref.backward(torch.from_numpy(dout))
    _close(out, ref, "out", FWD_RTOL, FWD_ATOL)
    _close(dxq, xqt.grad, "dxq")
    _close(dxkv, xkvt.grad, "dxkv")
    _compare_param_grads(m, dict(zip(("Wq", "Wk", "Wv", "Wo"), rest)), C, bias=False)
