"""PyTorch as referee for every registered piece, driven by the registry.

For each piece and each of its cases (built by the case's own `make`, as the three-way check
builds them), the manual forward and the gradients of the manual backward are compared with
the piece's torch form (`Piece.torch`) run on float64 tensors, and torch's autograd. The
scalar is the registry's: L = sum(out * R), R a fixed standard-normal weighting of the
output's shape, so dL/dout = R (nn.registry.check_three_way draws R the same way).

Static arguments follow the convention in `nn.registry.Piece`: numpy arrays become tensors
(integers -> int64, booleans -> bool, floats -> float64), everything else passes unchanged.
A piece without a torch form is skipped here with its `torch_skip` reason.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from models.check import pieces
from nn.registry import Case, Piece

torch = pytest.importorskip("torch")

#: Forward values: the same float64 formulas in both libraries, differing only in the order
#: of rounding (BLAS blocking, pairwise sums, fused kernels) and in libm vs our erf by an ulp
#: or so. Seen over every registered case: <= 1.3e-14 relative (mha), <= 4e-15 absolute (a
#: cross-entropy of ~20); 1e-12 keeps a wide margin and still catches any formula slip
#: (those show up at 1e-3 and above).
FWD_RTOL = 1e-12
#: Entries that cancel to ~0 (zero-mean rows, tiny probabilities) are judged absolutely:
#: rounding of O(1) intermediates leaves ~1e-16 times a few terms there.
FWD_ATOL = 1e-13
#: Gradients: one more product or sum than the forward, and cancellations (1 - tanh^2 near
#: saturation, the softmax Jacobian p (dp - <dp, p>)) magnify last-ulp differences. Seen:
#: <= 4e-14 relative wherever |grad| > 1e-2; 1e-10 keeps a >1000x margin.
GRAD_RTOL = 1e-10
#: Gradient entries near 0 are judged absolutely. Seen: <= 3e-14 (layer norm's constant row,
#: where rstd = 1/sqrt(eps) = 316 scales the rounding of O(1) terms); 1e-12 keeps a 30x margin.
GRAD_ATOL = 1e-12

ALL = [(p, c) for p in pieces() for c in p.cases]
IDS = [f"{p.name}-{c.name}" for p, c in ALL]


# ---------------------------------------------------------------------------- helpers
def torch_static(static: dict[str, Any]) -> dict[str, Any]:
    """The static kwargs for a torch form: numpy arrays as tensors (int -> int64, bool -> bool,
    float -> float64); every other value unchanged (the convention of `nn.registry.Piece`)."""
    out: dict[str, Any] = {}
    for k, v in static.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "iu":
                v = torch.as_tensor(v.astype(np.int64))
            elif v.dtype.kind == "b":
                v = torch.as_tensor(v)
            else:
                v = torch.as_tensor(v.astype(np.float64))
        out[k] = v
    return out


def weighting(out: Any, seed: int) -> np.ndarray:
    """R, the output's weighting, drawn as nn.registry.check_three_way draws it."""
    return np.random.default_rng(seed).standard_normal(np.shape(out))


def run_manual(piece: Piece, inputs: dict[str, np.ndarray], static: dict[str, Any], seed: int = 1):
    """(out, R, grads) of the manual pair, backward from dL/dout = R."""
    out, cache = piece.forward(*inputs.values(), **static)
    R = weighting(out, seed)
    grads = piece.backward(R.copy(), cache)
    return np.asarray(out), R, grads


def run_torch(piece: Piece, inputs: dict[str, np.ndarray], static: dict[str, Any], R: np.ndarray):
    """(out, grads) of the piece's torch form in float64, backward from L = sum(out * R)."""
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs.values()]
    out = piece.torch(torch, *leaves, **torch_static(static))
    assert out.dtype == torch.float64, f"{piece.name}: the torch form returned {out.dtype}"
    (out * torch.from_numpy(R)).sum().backward()
    grads = [None if leaf.grad is None else leaf.grad.numpy() for leaf in leaves]
    return out.detach().numpy(), grads


def assert_matches_torch(
    piece: Piece,
    inputs: dict[str, np.ndarray],
    static: dict[str, Any],
    what: str = "",
    seed: int = 1,
    grad_atol: float = GRAD_ATOL,
) -> None:
    """The manual forward and backward of `piece` agree with its torch form (the tolerances above)."""
    label = what or piece.name
    out, R, grads = run_manual(piece, inputs, static, seed)
    t_out, t_grads = run_torch(piece, inputs, static, R)
    assert out.shape == t_out.shape, f"{label}: output shape {out.shape} vs torch {t_out.shape}"
    np.testing.assert_allclose(out, t_out, rtol=FWD_RTOL, atol=FWD_ATOL, err_msg=f"{label}: forward")
    assert len(grads) == len(t_grads) == len(inputs), f"{label}: {len(grads)} gradients for inputs {list(inputs)}"
    for name, g, tg in zip(inputs, grads, t_grads):
        # torch leaves .grad None for an input the output does not depend on: that is a zero gradient
        tg = np.zeros(inputs[name].shape) if tg is None else tg
        assert g is not None and np.shape(g) == tg.shape, f"{label}: d{name} shape {np.shape(g)} vs torch {tg.shape}"
        np.testing.assert_allclose(g, tg, rtol=GRAD_RTOL, atol=grad_atol, err_msg=f"{label}: d{name}")


# ---------------------------------------------------------------------------- the referee
@pytest.mark.parametrize("piece,case", ALL, ids=IDS)
def test_manual_pair_matches_torch(piece: Piece, case: Case) -> None:
    if piece.torch is None:
        pytest.skip(f"{piece.name}: {piece.torch_skip}")
    inputs, static = case.make(np.random.default_rng(0))
    assert_matches_torch(piece, inputs, static, what=f"{piece.name}[{case.name}]")


def test_every_piece_has_a_torch_form_or_a_reason() -> None:
    for piece in pieces():
        assert callable(piece.torch) or piece.torch_skip.strip(), piece.name
        assert not (piece.torch is not None and piece.torch_skip), f"{piece.name}: both a torch form and a skip reason"
    with_torch = {p.name for p in pieces() if p.torch is not None}
    # the ones the referee must not lose (dropout alone has a reason: torch's RNG is not ours)
    assert {"linear", "softmax", "cross_entropy", "layer_norm", "embedding", "attention", "mha", "mlp"} <= with_torch


def _dummy_piece(**kwargs: Any) -> Piece:
    return Piece(
        name="dummy", loops=lambda x: x, forward=lambda x: (x, None), backward=lambda d, c: (d,), cases=(), **kwargs
    )


@pytest.mark.parametrize("skip", ["", "   "])
def test_a_piece_needs_exactly_one_of_torch_form_and_reason(skip: str) -> None:
    with pytest.raises(ValueError, match="'dummy'.*torch=.*torch_skip="):
        _dummy_piece(torch_skip=skip)
    assert _dummy_piece(torch_skip="no torch counterpart").torch is None
    assert _dummy_piece(torch=lambda t, x: x).torch_skip == ""
    with pytest.raises(ValueError, match="torch must be callable"):
        _dummy_piece(torch="not a function")
    with pytest.raises(ValueError, match="not both"):
        _dummy_piece(torch=lambda t, x: x, torch_skip="a reason")


def test_the_referee_catches_a_wrong_backward() -> None:
    """A backward off by 1% at one entry fails against torch, naming the input."""
    piece = next(p for p in pieces() if p.name == "linear")

    def broken(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
        grads = [np.array(g, copy=True) for g in piece.backward(dout, cache)]
        grads[1].reshape(-1)[0] *= 1.01
        return tuple(grads)

    inputs, static = piece.cases[1].make(np.random.default_rng(0))
    with pytest.raises(AssertionError, match="dW"):
        assert_matches_torch(dataclasses.replace(piece, backward=broken), inputs, static)


def test_the_library_never_imports_torch() -> None:
    """The torch forms take the module as an argument: importing every piece loads no torch."""
    code = "import sys, models.check; models.check.pieces(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
