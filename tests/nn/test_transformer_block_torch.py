"""`TransformerBlock` against `torch.nn.TransformerEncoderLayer`, weights copied in, float64.

torch's layer is the paper's block (post-norm) or, with norm_first=True, the pre-norm one; with
dropout 0 it is deterministic. Its weights are stored (out, in), ours (in, out), so each copy
is a transpose; the three input projections are stacked in `in_proj_weight` as [Wq; Wk; Wv].
Compared: the output, dL/dx and the gradient of EVERY parameter, for L = sum(y * R).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from nn.masks import padding_mask
from nn.transformer_block import TransformerBlock

torch = pytest.importorskip("torch")

B, T, C, H, F = 3, 5, 8, 2, 12
#: Forward: the same float64 formulas summed in other orders (BLAS blocking, fused attention);
#: seen <= 1.4e-15 absolute (all CONFIGS) on outputs of size ~1. 1e-12 leaves a wide margin;
#: a formula slip shows at 1e-3 and above.
FWD_ATOL = 1e-12
FWD_RTOL = 1e-12
#: Gradients pass back through two norms, softmax and the FFN, each adding rounding; seen
#: <= 1.2e-14 absolute (all CONFIGS) on gradients of size ~1-10. 1e-10 keeps a ~10^4 margin.
GRAD_ATOL = 1e-10
GRAD_RTOL = 1e-10

CONFIGS = list(itertools.product([False, True], ["relu", "gelu"], ["none", "causal", "padding"], [True, False]))


def _ids(c: tuple[Any, ...]) -> str:
    norm_first, act, mask, bias = c
    return f"{'pre' if norm_first else 'post'}-{act}-{mask}-{'bias' if bias else 'nobias'}"


def _random_block(norm_first: bool, activation: str, causal: bool, bias: bool, seed: int = 0) -> TransformerBlock:
    """A block whose every parameter is random (gains near 1, biases and shifts non-zero)."""
    rng = np.random.default_rng(seed)
    block = TransformerBlock(
        C, H, d_ff=F, activation=activation, norm_first=norm_first, bias=bias, causal=causal, rng=rng
    )
    state = {}
    for name, p in block.named_parameters():
        if name.startswith("W"):
            state[name] = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
        elif name.startswith("gamma"):
            state[name] = 1.0 + 0.3 * rng.standard_normal(p.shape)
        else:
            state[name] = 0.3 * rng.standard_normal(p.shape)
    block.load_state_dict(state)
    return block


def _torch_layer(block: TransformerBlock) -> Any:
    layer = torch.nn.TransformerEncoderLayer(
        d_model=C,
        nhead=H,
        dim_feedforward=F,
        dropout=0.0,
        activation=block.activation,
        layer_norm_eps=block.eps,
        batch_first=True,
        norm_first=block.norm_first,
        bias=block.bias,
        dtype=torch.float64,
    )
    p = {n: torch.from_numpy(a.copy()) for n, a in block.named_parameters()}
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([p["Wq"].T, p["Wk"].T, p["Wv"].T], dim=0))  # (3C, C)
        layer.self_attn.out_proj.weight.copy_(p["Wo"].T)
        layer.linear1.weight.copy_(p["W1"].T)  # (F, C)
        layer.linear2.weight.copy_(p["W2"].T)  # (C, F)
        layer.norm1.weight.copy_(p["gamma1"])
        layer.norm2.weight.copy_(p["gamma2"])
        if block.bias:
            layer.self_attn.in_proj_bias.copy_(torch.cat([p["bq"], p["bk"], p["bv"]]))
            layer.self_attn.out_proj.bias.copy_(p["bo"])
            layer.linear1.bias.copy_(p["b1"])
            layer.linear2.bias.copy_(p["b2"])
            layer.norm1.bias.copy_(p["beta1"])
            layer.norm2.bias.copy_(p["beta2"])
    return layer


def _torch_grads(layer: Any, bias: bool) -> dict[str, np.ndarray]:
    """The torch layer's parameter gradients under our names and layouts (in, out)."""
    attn = layer.self_attn
    dW_in = attn.in_proj_weight.grad.numpy()  # (3C, C)
    grads = {
        "Wq": dW_in[:C].T,
        "Wk": dW_in[C : 2 * C].T,
        "Wv": dW_in[2 * C :].T,
        "Wo": attn.out_proj.weight.grad.numpy().T,
        "W1": layer.linear1.weight.grad.numpy().T,
        "W2": layer.linear2.weight.grad.numpy().T,
        "gamma1": layer.norm1.weight.grad.numpy(),
        "gamma2": layer.norm2.weight.grad.numpy(),
    }
    if bias:
        db_in = attn.in_proj_bias.grad.numpy()
        grads.update(
            {
                "bq": db_in[:C],
                "bk": db_in[C : 2 * C],
                "bv": db_in[2 * C :],
                "bo": attn.out_proj.bias.grad.numpy(),
                "b1": layer.linear1.bias.grad.numpy(),
                "b2": layer.linear2.bias.grad.numpy(),
                "beta1": layer.norm1.bias.grad.numpy(),
                "beta2": layer.norm2.bias.grad.numpy(),
            }
        )
    return grads


@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_block_matches_torch_encoder_layer(config: tuple[bool, str, str, bool]) -> None:
    norm_first, activation, mask_kind, bias = config
    block = _random_block(norm_first, activation, causal=mask_kind == "causal", bias=bias)
    layer = _torch_layer(block)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, C))
    R = rng.standard_normal((B, T, C))  # L = sum(y * R), so dL/dy = R
    lengths = np.array([T, T - 2, 1])
    mask = padding_mask(lengths, T) if mask_kind == "padding" else None

    y = block.forward(x, mask=mask)
    dx = block.backward(R)

    xt = torch.tensor(x, requires_grad=True)
    kwargs: dict[str, Any] = {}
    if mask_kind == "causal":  # torch's boolean masks are True where attention is NOT allowed
        kwargs["src_mask"] = ~torch.ones(T, T, dtype=torch.bool).tril()
    elif mask_kind == "padding":
        kwargs["src_key_padding_mask"] = torch.from_numpy(np.arange(T)[None, :] >= lengths[:, None])
    yt = layer(xt, **kwargs)
    (yt * torch.from_numpy(R)).sum().backward()

    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=FWD_RTOL, atol=FWD_ATOL, err_msg="output")
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg="dx")
    theirs = _torch_grads(layer, bias)
    ours = dict(block.named_grads())
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for name, g in ours.items():
        np.testing.assert_allclose(g, theirs[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=f"d{name}")
