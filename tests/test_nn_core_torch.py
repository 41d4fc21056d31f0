"""PyTorch as referee for matmul, linear, the activations, softmax and the losses.

For every registered case of each piece (built by the case's own `make`, so the two stay in
sync), the manual forward and the gradients from the manual backward are compared with the
float64 PyTorch equivalent and its autograd, for a random upstream gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.registry import get_piece

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: Forward values: both sides are float64 with the same formulas; they differ in summation
#: order (BLAS blocking, pairwise sums) and in libm vs our erf/tanh by an ulp or so. Seen:
#: <= 2e-15 relative over all cases below; 1e-12 leaves a wide margin and still catches any
#: real formula slip (those show up at 1e-3 and above).
FWD_RTOL = 1e-12
#: Entries that cancel to ~0 (softmax gradients sum to zero, tiny probabilities) are judged
#: absolutely: rounding of O(1) intermediates leaves ~1e-16 * size there.
FWD_ATOL = 1e-13
#: Gradients: one more product or sum than the forward, and 1 - tanh^2 cancels where tanh is
#: near +-1 (tanh, gelu_tanh), which magnifies the last-ulp difference of the two tanh's.
#: Seen: <= 6e-14 relative; 1e-12 keeps a ~20x margin.
GRAD_RTOL = 1e-12
GRAD_ATOL = 1e-13

#: PyTorch equivalent of each piece, taking the inputs (tensors) and the static kwargs.
TORCH_EQUIVALENT = {
    "matmul": lambda A, B: torch.matmul(A, B),
    "linear": lambda x, W, b: F.linear(x, W.T, b),  # torch stores weight as (n_out, n_in)
    "sigmoid": lambda x: torch.sigmoid(x),
    "relu": lambda x: torch.relu(x),
    "tanh": lambda x: torch.tanh(x),
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "mse": lambda pred, target: F.mse_loss(pred, target),
    "cross_entropy": lambda logits, targets: F.cross_entropy(logits, torch.as_tensor(targets, dtype=torch.long)),
    "binary_cross_entropy": lambda logits, targets: F.binary_cross_entropy_with_logits(
        logits, torch.as_tensor(targets, dtype=torch.float64)
    ),
}

CASES = [(name, case) for name in TORCH_EQUIVALENT for case in get_piece(name).cases]


def _torch_run(name: str, inputs: dict, static: dict, dout: np.ndarray):
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs.values()]
    out = TORCH_EQUIVALENT[name](*leaves, **static)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


def _compare(name: str, inputs: dict, static: dict, seed: int = 0) -> None:
    piece = get_piece(name)
    out, cache = piece.forward(*inputs.values(), **static)
    dout = np.random.default_rng(seed).standard_normal(np.shape(out))
    grads = piece.backward(dout.copy(), cache)
    t_out, t_grads = _torch_run(name, inputs, static, dout)
    assert np.shape(out) == t_out.shape
    np.testing.assert_allclose(out, t_out, rtol=FWD_RTOL, atol=FWD_ATOL, err_msg=f"{name}: forward")
    assert len(grads) == len(t_grads)
    for arg, g, tg in zip(inputs, grads, t_grads):
        assert np.shape(g) == tg.shape, f"{name}: d{arg} shape"
        np.testing.assert_allclose(g, tg, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=f"{name}: d{arg}")


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c.name}" for n, c in CASES])
def test_matches_torch_on_every_registered_case(name, case) -> None:
    inputs, static = case.make(np.random.default_rng(0))
    _compare(name, inputs, static)


EXTREME = 1e4
EXTREME_CASES = {
    "sigmoid": ({"x": np.array([EXTREME, -EXTREME, 0.3, -800.0])}, {}),
    "tanh": ({"x": np.array([EXTREME, -EXTREME, 0.3])}, {}),
    "gelu": ({"x": np.array([EXTREME, -EXTREME, 0.3, -9.0])}, {}),
    "gelu_tanh": ({"x": np.array([EXTREME, -EXTREME, 0.3, -9.0])}, {}),
    "softmax": ({"x": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])}, {}),
    "log_softmax": ({"x": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])}, {}),
    "cross_entropy": ({"logits": np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, 0.0, EXTREME]])}, {"targets": np.array([1, 2])}),
    "binary_cross_entropy": ({"logits": np.array([EXTREME, -EXTREME, EXTREME, -EXTREME, 0.0])},
                             {"targets": np.array([1.0, 0.0, 0.0, 1.0, 0.3])}),
}


@pytest.mark.parametrize("name", sorted(EXTREME_CASES))
def test_matches_torch_at_extreme_logits(name: str) -> None:
    inputs, static = EXTREME_CASES[name]
    _compare(name, inputs, static, seed=1)


def test_every_core_piece_has_a_torch_equivalent() -> None:
    for name in TORCH_EQUIVALENT:
        assert get_piece(name).name == name
