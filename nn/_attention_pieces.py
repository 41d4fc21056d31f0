"""The attention family's registry entries: cases and torch forms for "attention",
"attention_fast", "mha", "mha_nobias" and "self_attention".

They live here, in one support module, so that `nn.attention`, `nn._attention_fast` and
`nn.mha` read as their math (legend, loops form, manual pair, class) and so that the fast
kernel is registered with exactly the reference's cases. `nn.registry.load_package` imports
every module of `nn`, this one included, so importing `nn` (through `all_pieces`) still
registers every piece.
"""

# Shape legend: as in nn/attention.py (q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv)) and
# nn/mha.py (xq (B, Tq, C), xkv (B, Tk, C), W* (C, C), b* (C,), H heads).

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from nn._attention_fast import attention_fast_backward, attention_fast_forward
from nn.attention import attention_backward, attention_forward, attention_loops
from nn.masks import causal_mask, padding_mask
from nn.mha import (
    BIAS_NAMES,
    WEIGHT_NAMES,
    mha_backward,
    mha_forward,
    mha_loops,
    mha_nobias_backward,
    mha_nobias_forward,
    mha_nobias_loops,
    self_attention_backward,
    self_attention_forward,
    self_attention_loops,
)
from nn.registry import Case, Piece, register

Make = Callable[[np.random.Generator], tuple[dict[str, np.ndarray], dict[str, Any]]]


# ---------------------------------------------------------------------------- cases
def _attention_case(
    q_shape: tuple[int, ...], Tk: int, dv: int, mask_fn: Callable[[], np.ndarray] | None = None
) -> Make:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        lead, d = q_shape[:-2], q_shape[-1]
        inputs = {
            "q": rng.standard_normal(q_shape),
            "k": rng.standard_normal(lead + (Tk, d)),
            "v": rng.standard_normal(lead + (Tk, dv)),
        }
        return inputs, ({} if mask_fn is None else {"mask": mask_fn()})

    return make


ATTENTION_CASES = (
    Case("no_mask", _attention_case((2, 3, 4), Tk=5, dv=3)),
    Case("causal", _attention_case((1, 4, 3), Tk=4, dv=3, mask_fn=lambda: causal_mask(4))),
    Case("padding", _attention_case((2, 3, 4), Tk=4, dv=2, mask_fn=lambda: padding_mask([4, 2], heads=False))),
    Case("T1", _attention_case((1, 1, 2), Tk=1, dv=2)),
    Case("odd_2d", _attention_case((3, 5), Tk=7, dv=3)),
    Case("heads_causal_4d", _attention_case((2, 2, 3, 2), Tk=3, dv=2, mask_fn=lambda: causal_mask(3))),
)


def _mha_case(
    B: int, Tq: int, Tk: int, C: int, H: int, *, self_attn: bool = False, bias: bool = True, mask: str = ""
) -> Make:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        xq = rng.standard_normal((B, Tq, C))
        # self-attention: the same values in two separate inputs, so each gradient is checked
        xkv = xq.copy() if self_attn else rng.standard_normal((B, Tk, C))
        inputs = {"xq": xq, "xkv": xkv}
        inputs.update({n: rng.standard_normal((C, C)) / math.sqrt(C) for n in WEIGHT_NAMES})
        if bias:
            inputs.update({n: 0.1 * rng.standard_normal(C) for n in BIAS_NAMES})
        static: dict[str, Any] = {"n_heads": H}
        if mask == "causal":
            static["mask"] = causal_mask(Tq, Tk)
        elif mask == "padding":
            static["mask"] = padding_mask(np.arange(Tk, Tk - B, -1) if B <= Tk else np.full(B, Tk), Tk)
        return inputs, static

    return make


def _self_attention_case(B: int, T: int, C: int, H: int) -> Make:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        inputs = {"x": rng.standard_normal((B, T, C))}
        inputs.update({n: rng.standard_normal((C, C)) / math.sqrt(C) for n in WEIGHT_NAMES})
        inputs.update({n: 0.1 * rng.standard_normal(C) for n in BIAS_NAMES})
        return inputs, {"n_heads": H, "mask": causal_mask(T)}

    return make


# ---------------------------------------------------------------------------- torch referees
# The same functions in torch ops, for tests/nn/test_torch_referee.py (see `nn.registry.Piece`):
# the caller passes the torch module in (nothing here imports it) and the boolean masks as
# bool tensors. torch's scaled_dot_product_attention takes a boolean attn_mask with our
# meaning (True = may attend) and broadcasts it against the scores (..., Tq, Tk) as we do.
def _attention_torch(torch: Any, q: Any, k: Any, v: Any, mask: Any = None) -> Any:
    """softmax(q k^T / sqrt(d) | mask) v by F.scaled_dot_product_attention."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _mha_torch(
    torch: Any,
    xq: Any,
    xkv: Any,
    Wq: Any,
    Wk: Any,
    Wv: Any,
    Wo: Any,
    bq: Any = None,
    bk: Any = None,
    bv: Any = None,
    bo: Any = None,
    *,
    n_heads: int,
    mask: Any = None,
) -> Any:
    """Multi-head attention from torch matmuls and F.scaled_dot_product_attention, per head."""
    B, Tq, C = xq.shape
    Tk = xkv.shape[1]
    D = C // n_heads

    def heads(x: Any, W: Any, b: Any, T: int) -> Any:
        y = x @ W if b is None else x @ W + b  # (B, T, C)
        return y.reshape(B, T, n_heads, D).transpose(1, 2)  # (B, H, T, D)

    Oh = torch.nn.functional.scaled_dot_product_attention(
        heads(xq, Wq, bq, Tq), heads(xkv, Wk, bk, Tk), heads(xkv, Wv, bv, Tk), attn_mask=mask
    )  # (B, H, Tq, D)
    O = Oh.transpose(1, 2).reshape(B, Tq, C)  # heads side by side
    return O @ Wo if bo is None else O @ Wo + bo  # (B, Tq, C)


def _mha_nobias_torch(
    torch: Any, xq: Any, xkv: Any, Wq: Any, Wk: Any, Wv: Any, Wo: Any, *, n_heads: int, mask: Any = None
) -> Any:
    return _mha_torch(torch, xq, xkv, Wq, Wk, Wv, Wo, n_heads=n_heads, mask=mask)


def _self_attention_torch(
    torch: Any,
    x: Any,
    Wq: Any,
    Wk: Any,
    Wv: Any,
    Wo: Any,
    bq: Any = None,
    bk: Any = None,
    bv: Any = None,
    bo: Any = None,
    *,
    n_heads: int,
    mask: Any = None,
) -> Any:
    # one leaf x feeds all three projections: autograd sums the three paths into x.grad
    return _mha_torch(torch, x, x, Wq, Wk, Wv, Wo, bq, bk, bv, bo, n_heads=n_heads, mask=mask)


# ---------------------------------------------------------------------------- pieces
# The reference pair and the fast kernel: one loops form, one set of cases, one torch form.
for _name, _forward, _backward, _description in (
    (
        "attention",
        attention_forward,
        attention_backward,
        "scaled dot-product attention softmax(q k^T / sqrt(d) | mask) v, masks by exclusion (reference)",
    ),
    (
        "attention_fast",
        attention_fast_forward,
        attention_fast_backward,
        "the cache-tuned attention kernel (transposed scores, chunked) that mha runs on",
    ),
):
    register(
        Piece(
            name=_name,
            loops=attention_loops,
            forward=_forward,
            backward=_backward,
            cases=ATTENTION_CASES,
            description=_description,
            torch=_attention_torch,
            tags=("attention",),
        )
    )

register(
    Piece(
        name="mha",
        loops=mha_loops,
        forward=mha_forward,
        backward=mha_backward,
        cases=(
            Case("self_causal", _mha_case(2, 4, 4, 4, 2, self_attn=True, mask="causal")),
            Case("cross_padding", _mha_case(2, 2, 5, 6, 3, mask="padding")),
            Case("T1", _mha_case(1, 1, 1, 2, 2)),
            Case("odd", _mha_case(3, 3, 5, 6, 2)),
        ),
        description="multi-head attention with projections Wq Wk Wv Wo and biases (y = x @ W + b)",
        torch=_mha_torch,
        tags=("attention",),
    )
)

register(
    Piece(
        name="mha_nobias",
        loops=mha_nobias_loops,
        forward=mha_nobias_forward,
        backward=mha_nobias_backward,
        cases=(
            Case("self_causal", _mha_case(1, 3, 3, 4, 2, self_attn=True, bias=False, mask="causal")),
            Case("cross", _mha_case(2, 3, 2, 3, 1, bias=False)),
        ),
        description="multi-head attention without biases",
        torch=_mha_nobias_torch,
        tags=("attention",),
    )
)

register(
    Piece(
        name="self_attention",
        loops=self_attention_loops,
        forward=self_attention_forward,
        backward=self_attention_backward,
        cases=(Case("causal", _self_attention_case(2, 3, 4, 2)),),
        description="causal multi-head self-attention, x feeding queries, keys and values (dx = dxq + dxkv)",
        torch=_self_attention_torch,
        tags=("attention",),
    )
)
