"""The loops forms after the fused ops: still a float reference on plain floats, fewer nodes on Values.

`nn`'s loops forms spell their dot products and sums with `engine.dot` / `engine.total`, which
return plain floats when given plain floats. So every registered piece's loops form, run on
nested lists of floats, must still give the manual forward's numbers; and on Values the
fused graph must give exactly the numbers and gradients of the binary graph (`engine.unfused`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import engine
from engine import Value, to_values, topological_order
from nn.linear import linear_loops, matmul_loops
from nn.registry import all_pieces

#: loops on floats vs numpy float64: the same sums, possibly in another order (BLAS): rounding only.
FLOAT_RTOL = 1e-10
FLOAT_ATOL = 1e-12

PIECES = [p for p in all_pieces() if p.loops is not None]


def _floats(a: np.ndarray) -> Any:
    return a.tolist()


def _leaves(out: Any) -> list[Any]:
    if isinstance(out, (list, tuple)):
        return [x for item in out for x in _leaves(item)]
    return [out]


@pytest.mark.parametrize("piece", PIECES, ids=lambda p: p.name)
def test_loops_on_plain_floats_still_match_the_manual_forward(piece: Any) -> None:
    inputs, static = piece.cases[0].make(np.random.default_rng(0))
    out = piece.loops(*(_floats(a) for a in inputs.values()), **static)
    assert not any(isinstance(x, Value) for x in _leaves(out)), f"{piece.name}: floats in, Values out"
    expected, _ = piece.forward(*inputs.values(), **static)
    np.testing.assert_allclose(
        np.asarray(out, dtype=np.float64),
        np.asarray(expected, dtype=np.float64),
        rtol=FLOAT_RTOL,
        atol=FLOAT_ATOL,
        err_msg=piece.name,
    )


def test_matmul_and_linear_build_one_dot_node_per_output() -> None:
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((2, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    y = matmul_loops(to_values(x, "x"), to_values(W, "W"))
    assert all(v.op == "dot" and len(v.parents) == 10 for row in y for v in row)
    z = linear_loops(to_values(x, "x"), to_values(W, "W"), to_values(b, "b"))
    assert all(v.op == "dot" and len(v.parents) == 11 for row in z for v in row)  # the bias joins the dot


@pytest.mark.parametrize(
    "piece",
    [
        p
        for p in PIECES
        if p.name in ("gpt", "linear", "attention", "layer_norm", "rms_norm", "cross_entropy", "softmax")
    ],
    ids=lambda p: p.name,
)
def test_fused_and_binary_graphs_agree_exactly(piece: Any) -> None:
    inputs, static = piece.cases[0].make(np.random.default_rng(2))

    def run() -> tuple[float, list[float], int]:
        leaves = {n: to_values(a, n) for n, a in inputs.items()}
        out = piece.loops(*leaves.values(), **static)
        loss = engine.dot(_leaves(out), [1.0 + 0.1 * i for i in range(len(_leaves(out)))])
        loss.backward()
        return loss.data, [v.grad for leaf in leaves.values() for v in _leaves(leaf)], len(topological_order(loss))

    fused = run()
    with engine.unfused():
        binary = run()
    assert fused[0] == binary[0]  # the same terms added in the same order
    np.testing.assert_allclose(fused[1], binary[1], rtol=FLOAT_RTOL, atol=FLOAT_ATOL)
    assert fused[2] < binary[2]


def test_the_row_ops_of_the_loops_forms_are_the_engines_fused_nodes() -> None:
    """softmax, RMSNorm, cross-entropy and attention's softmax build engine.softmax / rms_norm /
    cross_entropy nodes on Values; attention with a trace keeps its scores, exps and sums as nodes."""
    from nn.attention import attention_loops
    from nn.losses import cross_entropy_loops
    from nn.normalization import rms_norm_loops
    from nn.softmax import softmax_loops

    rng = np.random.default_rng(3)
    x = to_values(rng.standard_normal((2, 4)), "x")
    ops = lambda out: {v.op for v in topological_order(engine.total(_leaves(out)))}  # noqa: E731
    assert {"softmax", "logsumexp"} <= ops(softmax_loops(x)) and "exp" not in ops(softmax_loops(x))
    assert {"rms_norm", "rrms"} <= ops(rms_norm_loops(x, to_values(np.ones(4), "g"))) and "sqrt" not in ops(
        rms_norm_loops(x, [1.0] * 4)
    )
    loss = cross_entropy_loops(x, targets=np.array([1, 3]))
    assert [p.op for p in loss.parents[0].parents] == ["cross_entropy", "cross_entropy"]
    q, k, v = (to_values(rng.standard_normal((3, 2)), n) for n in "qkv")
    assert "softmax" in ops(attention_loops(q, k, v)) and "exp" not in ops(attention_loops(q, k, v))
    trace: dict = {}
    traced = attention_loops(q, k, v, trace=trace)
    assert "exp" in ops(traced) and "softmax" not in ops(traced) and len(trace["exps"]) == 3
