"""The Transformer block's special cases: bad input, masks that really mask, float32, the
class's bookkeeping and stacking. (Its three-way check and torch referee run from the
registry; tests/nn/test_transformer_block_torch.py compares it with torch's encoder layer.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import NUMERIC, InputError, assert_gradients_close, numerical_gradient_arrays
from nn.masks import padding_mask
from nn.module import Sequential
from nn.registry import all_pieces
from nn.transformer_block import (
    TransformerBlock,
    block_param_names,
    init_block_params,
    transformer_block_backward,
    transformer_block_forward,
)

B, T, C, H, F = 2, 4, 8, 2, 16
#: The class calls the manual pair on the same arrays, and sums of two equal terms are exact.
SAME = 0.0
#: A float32 run against the float64 run of the same block: ~7 digits through two norms,
#: attention and the FFN; seen <= 3.3e-7 on outputs of size ~3 (the class: the same path).
FLOAT32_ATOL = 1e-4
#: Changing inputs a query may not see leaves its output the same up to rounding: the matrix
#: products run over all rows at once and BLAS may round a row differently when others
#: change (seen: 4.4e-16 on outputs ~1). 1e-13 is "rounding only"; a leak is >= 1e-3.
MASKED_ATOL = 1e-13


def _block_args(norm: str = "layer", bias: bool = True, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = init_block_params(C, H, F, rng, norm=norm, bias=bias)
    return rng.standard_normal((B, T, C)), [params[n] for n in block_param_names(norm, bias)]


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda a: a.__setitem__(4, np.zeros((C, 3))),
            "transformer_block: Wo must have shape (C, C) = (8, 8) for x (2, 4, 8), got (8, 3)",
        ),
        (lambda a: a.__setitem__(6, np.zeros((F, 3))), "transformer_block: W2 must have shape (F, C) = (16, 8)"),
        (lambda a: a.__setitem__(0, np.zeros((T, C))), "transformer_block: x must have shape (B, T, C)"),
        (lambda a: a.__setitem__(8, np.ones(C + 1)), "transformer_block: gamma2 must have shape (C,) = (8,)"),
        (lambda a: a.__delitem__(slice(-1, None)), "transformer_block: beta1 and beta2 go together"),
        (lambda a: a.__delitem__(slice(-3, None)), "transformer_block: give all the biases"),
        (lambda a: a.__setitem__(5, None), "transformer_block: the parameters ['W1'] are required"),
    ],
)
def test_bad_shapes_give_one_input_error_naming_the_piece_and_argument(change, message: str) -> None:
    x, params = _block_args()
    args = [x] + params
    change(args)
    with pytest.raises(InputError) as err:
        transformer_block_forward(*args, n_heads=H)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_heads": 3}, "transformer_block: d_model C=8 is not divisible by n_heads=3"),
        ({"n_heads": H, "norm": "batch"}, "transformer_block: norm must be one of ['layer', 'rms']"),
        ({"n_heads": H, "activation": "tanh"}, "transformer_block: activation must be one of"),
        ({"n_heads": H, "causal": 1}, "transformer_block: causal must be a bool"),
        ({"n_heads": H, "mask": np.ones((3, 1, 1, T), dtype=bool)}, "transformer_block: mask has shape (3, 1, 1, 4)"),
    ],
)
def test_bad_configuration_is_one_input_error(kwargs: dict, message: str) -> None:
    x, params = _block_args()
    with pytest.raises(InputError) as err:
        transformer_block_forward(x, *params, **kwargs)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_block_does_not_see_the_future(norm_first: bool) -> None:
    x, params = _block_args(seed=1)
    y, _ = transformer_block_forward(x, *params, n_heads=H, norm_first=norm_first, causal=True)
    later = x.copy()
    later[:, 2:] = np.random.default_rng(2).standard_normal((B, T - 2, C))
    y2, _ = transformer_block_forward(later, *params, n_heads=H, norm_first=norm_first, causal=True)
    np.testing.assert_allclose(y2[:, :2], y[:, :2], atol=MASKED_ATOL)
    assert np.abs(y2[:, 2:] - y[:, 2:]).max() > 0.1  # the changed positions do change


def test_padding_mask_hides_the_padded_keys() -> None:
    x, params = _block_args("rms", bias=False, seed=3)
    mask = padding_mask(np.array([T, 2]), T)
    y, _ = transformer_block_forward(x, *params, n_heads=H, norm="rms", mask=mask)
    padded = x.copy()
    padded[1, 2:] = 100.0  # filler in the second sequence's last two positions
    y2, _ = transformer_block_forward(padded, *params, n_heads=H, norm="rms", mask=mask)
    np.testing.assert_allclose(y2[1, :2], y[1, :2], atol=MASKED_ATOL)
    np.testing.assert_allclose(y2[0], y[0], atol=MASKED_ATOL)  # the other sequence: untouched


@pytest.mark.parametrize("norm_first,norm", [(False, "layer"), (True, "rms")])
def test_float32_in_float32_out(norm_first: bool, norm: str) -> None:
    x, params = _block_args(norm, seed=4)
    y64, _ = transformer_block_forward(x, *params, n_heads=H, norm=norm, norm_first=norm_first)
    y32, cache = transformer_block_forward(
        x.astype(np.float32), *(p.astype(np.float32) for p in params), n_heads=H, norm=norm, norm_first=norm_first
    )
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, atol=FLOAT32_ATOL)
    assert all(g.dtype == np.float32 for g in transformer_block_backward(np.ones_like(y32), cache))
    # the class: float32 buffers (Module.set_dtype) and a float32 x run the same path in float32
    block = TransformerBlock(C, H, F, norm=norm, norm_first=norm_first, rng=np.random.default_rng(5))
    block.load_state_dict(dict(zip(block_param_names(norm, True), params)))
    block.set_dtype(np.float32)
    y_class = block.forward(x.astype(np.float32))
    dx32 = block.backward(np.ones_like(y_class))
    assert y_class.dtype == np.float32 and dx32.dtype == np.float32 and block.flat_grads.dtype == np.float32
    np.testing.assert_allclose(y_class, y64, atol=FLOAT32_ATOL)


def test_class_accumulates_and_rebuilds_from_its_config(tmp_path: Path) -> None:
    block = TransformerBlock(
        C, H, F, activation="gelu_tanh", norm_first=True, causal=True, rng=np.random.default_rng(6)
    )
    assert [n for n, _ in block.named_parameters()] == list(block_param_names("layer", True))
    x = np.random.default_rng(7).standard_normal((B, T, C))
    dout = np.random.default_rng(8).standard_normal((B, T, C))
    block.forward(x)
    dx = block.backward(dout)
    once = block.flat_grads.copy()
    np.testing.assert_array_equal(block.backward(dout), dx)
    np.testing.assert_allclose(block.flat_grads, 2 * once, rtol=SAME, atol=SAME)
    block.zero_grad()
    assert not block.flat_grads.any()
    loaded = TransformerBlock.load(block.save(tmp_path / "block", block.config))
    np.testing.assert_array_equal(loaded.forward(x), block.forward(x))
    assert [n for n, _ in TransformerBlock(C, H, norm="rms", bias=False).named_parameters()] == list(
        block_param_names("rms", False)
    )
    with pytest.raises(RuntimeError, match="before forward"):
        TransformerBlock(C, H).backward(dout)


def test_stacked_blocks_backpropagate_through_each_other() -> None:
    """Two causal pre-norm blocks in a Sequential (a GPT's trunk): the class gradients match finite differences."""
    rng = np.random.default_rng(9)
    Cs, Ts = 4, 3
    stack = Sequential(
        *(TransformerBlock(Cs, 2, 8, activation="gelu", norm_first=True, causal=True, rng=rng) for _ in range(2))
    )
    stack.load_state_dict({n: p + 0.1 * rng.standard_normal(p.shape) for n, p in stack.state_dict().items()})
    x = rng.standard_normal((2, Ts, Cs))
    R = rng.standard_normal((2, Ts, Cs))
    stack.forward(x)
    dx = stack.backward(R)
    params = dict(stack.named_parameters())

    def loss(arrays: dict[str, np.ndarray]) -> float:
        saved = {n: params[n].copy() for n in params}
        for n in params:
            params[n][...] = arrays[n]
        try:
            return float(np.sum(stack.forward(arrays["x"]) * R))
        finally:
            for n in params:
                params[n][...] = saved[n]

    numeric = numerical_gradient_arrays(loss, {**{n: p.copy() for n, p in params.items()}, "x": x})
    manual = {**dict(stack.named_grads()), "x": dx}
    assert_gradients_close({"manual": manual, "numeric": numeric}, pairs=[("manual", "numeric", NUMERIC)])


def test_the_transformer_pieces_are_registered() -> None:
    """Each is then checked three ways and by torch with no edit elsewhere; losing one would hide it."""
    names = {p.name for p in all_pieces()}
    assert {
        "feedforward",
        "rms_norm",
        "token_embedding",
        "sinusoidal_positions",
        "learned_positions",
        "transformer_block",
    } <= names
