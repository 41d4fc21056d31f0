"""Every registered piece, every case: graph == manual (EXACT) and both == numeric (NUMERIC).

The tolerances are named in `engine.gradcheck` (EXACT: same float64 math, rounding only;
NUMERIC: central differences with eps = 1e-6) unless a piece overrides them with a reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.check import pieces
from nn.registry import check_piece

ALL = [(p, c) for p in pieces() for c in p.cases]


def test_registry_is_populated() -> None:
    names = {p.name for p, _ in ALL}
    # The nn issue's pieces; a piece missing from here would silently escape every check.
    expected = {"matmul", "linear", "sigmoid", "relu", "tanh", "gelu", "gelu_tanh", "softmax", "log_softmax",
                "mse", "cross_entropy", "binary_cross_entropy", "layer_norm", "embedding", "residual", "dropout",
                "attention", "mha", "mlp"}
    assert expected <= names, f"missing pieces: {sorted(expected - names)}"


@pytest.mark.parametrize("piece,case", ALL, ids=[f"{p.name}-{c.name}" for p, c in ALL])
def test_three_way(piece, case) -> None:
    (report,) = check_piece(piece, case)
    assert report.passed, str(report)
    # Every differentiable input appears with all three comparisons.
    inputs, _ = case.make(np.random.default_rng(0))
    for name in inputs:
        pairs = {(r.left, r.right) for r in report.rows if r.input == name}
        assert pairs == {("graph", "manual"), ("manual", "numeric"), ("graph", "numeric")}, name


@pytest.mark.parametrize("piece", [p for p in pieces()][:1] + [p for p in pieces() if p.name == "linear"], ids=lambda p: p.name)
def test_a_wrong_backward_is_caught(piece) -> None:
    """Swap in a backward that is off by 1% at one element: the check must fail and say where."""

    def broken(dout, cache):
        grads = [np.array(g, dtype=np.float64, copy=True) for g in piece.backward(dout, cache)]
        flat = grads[-1].reshape(-1)
        flat[flat.size // 2] = flat[flat.size // 2] * 1.01 + 1e-3
        return tuple(grads)

    bad = dataclasses.replace(piece, backward=broken)
    case = max(bad.cases, key=lambda c: sum(a.size for a in c.make(np.random.default_rng(0))[0].values()))
    (report,) = check_piece(bad, case)
    assert not report.passed
    worst = report.failures[0]
    names = list(case.make(np.random.default_rng(0))[0])
    assert worst.input == names[-1]
    shape = case.make(np.random.default_rng(0))[0][names[-1]].shape
    assert worst.worst_index == np.unravel_index(int(np.prod(shape)) // 2, shape)
    assert piece.name in report.title and "FAIL" in str(report)
