"""The fused row ops `engine.softmax`, `engine.rms_norm` and `engine.cross_entropy`.

Each is checked: three ways through the registry (its piece in nn/engine_ops.py), against
central differences and against PyTorch autograd on random rows drawn with the engine's
hypothesis strategies (tests/strategies.py, whose random expressions draw these ops too, so
test_engine_properties.py and test_explain.py cover them as well), against its own binary
reference form (`engine.unfused()`), and drawn by viz.draw.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import leaf_values

import engine
from engine import Value, cross_entropy, numerical_gradient, rms_norm, softmax, topological_order, unfused
from nn.registry import check_piece, get_piece

#: central differences with eps = 1e-6 on O(1) inputs: truncation ~1e-12, rounding ~1e-10.
NUMERIC_RTOL = 1e-6
NUMERIC_ATOL = 1e-8
#: engine vs torch, float64: the same math, sums possibly in another order (a few ulps).
TORCH_RTOL = 1e-10
TORCH_ATOL = 1e-12
#: fused vs binary gradients: the same partials, multiplied out along other paths (the chain
#: through the shared logsumexp / r node against the binary chain): rounding only.
SAME_RTOL = 1e-10
SAME_ATOL = 1e-13
#: the RMSNorm epsilon of these tests (a named choice: the ops have no default).
EPS = 1e-5

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
ROW_OPS = ("dot", "total", "softmax_row", "rms_norm_row", "cross_entropy_row")


def _close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _weights(n: int) -> list[float]:
    """Fixed, distinct weights that reduce a row of outputs to one scalar to differentiate."""
    return [0.3 + 0.7 * math.sin(1.0 + i) for i in range(n)]


# The three ops as functions of one flat list of scalars (floats or Values) -> one scalar.
def _softmax_loss(*zs):
    return engine.dot(softmax(list(zs), 0.6), _weights(len(zs)))


def _rms_loss(*zs):
    half = len(zs) // 2  # x, then gamma (an odd last entry is left out)
    return engine.dot(rms_norm(list(zs[:half]), list(zs[half : 2 * half]), EPS), _weights(half))


def _ce_loss(*zs):
    return cross_entropy(list(zs), len(zs) // 2)


LOSSES = {"softmax": _softmax_loss, "rms_norm": _rms_loss, "cross_entropy": _ce_loss}


# --------------------------------------------------------------------------- the nodes
def test_softmax_is_a_logsumexp_node_and_one_node_per_output() -> None:
    xs = [Value(0.5, "a"), Value(-1.0, "b"), Value(2.0, "c")]
    s = softmax(xs, 0.5)
    lse = s[0].parents[1]
    assert lse.op == "logsumexp" and lse.parents == tuple(xs)
    z = [0.25, -0.5, 1.0]
    expected = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    for i, (out, p) in enumerate(zip(s, expected)):
        assert out.op == "softmax" and out.parents == (xs[i], lse)
        assert _close(out.data, p, 1e-15)
        assert out.partials == pytest.approx((0.5 * p, -p), rel=1e-15)
    assert lse.partials == pytest.approx(tuple(0.5 * p for p in expected), rel=1e-15)
    assert len(topological_order(engine.total(s))) == 3 + 1 + 3 + 1  # leaves, logsumexp, outputs, the sum


def test_rms_norm_is_an_r_node_and_one_node_per_output() -> None:
    xs = [Value(1.0), Value(-2.0)]
    gs = [Value(0.5), Value(3.0)]
    y = rms_norm(xs, gs, EPS)
    r = 1.0 / math.sqrt((1.0 + 4.0) / 2 + EPS)
    r_node = y[0].parents[2]
    assert r_node.op == "rrms" and r_node.parents == tuple(xs) and _close(r_node.data, r, 1e-15)
    assert r_node.partials == pytest.approx((-1.0 * r**3 / 2, 2.0 * r**3 / 2), rel=1e-14)
    for i in range(2):
        assert y[i].op == "rms_norm" and y[i].parents == (xs[i], gs[i], r_node)
        assert y[i].partials == pytest.approx((gs[i].data * r, xs[i].data * r, gs[i].data * xs[i].data), rel=1e-15)


def test_cross_entropy_is_one_node_from_logits_to_loss() -> None:
    zs = [Value(1.0), Value(2.0), Value(-0.5)]
    loss = cross_entropy(zs, 1)
    total = sum(math.exp(z.data) for z in zs)
    p = [math.exp(z.data) / total for z in zs]
    assert loss.op == "cross_entropy" and loss.parents == tuple(zs)
    assert _close(loss.data, math.log(total) - 2.0, 1e-15)
    assert loss.partials == pytest.approx((p[0], p[1] - 1.0, p[2]), rel=1e-14)


def test_on_plain_floats_the_results_are_floats_and_constants_get_no_edge() -> None:
    assert all(type(v) is float for v in softmax([1.0, 2, 3.5]))
    assert all(type(v) is float for v in rms_norm([1.0, 2.0], [1, 0.5], EPS))
    assert type(cross_entropy([0.0, 1], 1)) is float
    a = Value(0.3)
    s = softmax([a, 1.0])  # the constant 1.0 gets no edge, its output still depends on a
    assert s[0].parents[1].parents == (a,) and s[1].parents == (s[0].parents[1],)
    y = rms_norm([a, 2.0], [1.0, Value(2.0)], EPS)
    assert y[0].parents[0] is a and len(y[0].parents) == 2 and len(y[1].parents) == 2
    assert cross_entropy([a, 2.0, 1.0], 0).parents == (a,)
    assert rms_norm([1.0, 2.0], [Value(1.0), Value(1.0)], EPS)[0].parents[0].op == ""  # gammas only


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"^engine\.softmax: xs needs at least one entry$"):
        softmax([])
    with pytest.raises(TypeError, match=r"engine\.softmax: xs\[1\] must be a number or an engine\.Value, not str"):
        softmax([Value(1.0), "2"])
    with pytest.raises(TypeError, match=r"engine\.softmax: scale must be a finite number"):
        softmax([1.0], math.nan)
    with pytest.raises(ValueError, match=r"engine\.rms_norm: xs and gammas must have the same length, got 2 and 1"):
        rms_norm([1.0, 2.0], [1.0], EPS)
    with pytest.raises(ValueError, match=r"engine\.rms_norm: eps must be a positive number, got 0\.0"):
        rms_norm([1.0], [1.0], 0.0)
    with pytest.raises(TypeError, match=r"engine\.rms_norm: gammas\[0\] must be a number"):
        rms_norm([Value(1.0)], [True], EPS)
    with pytest.raises(ValueError, match=r"engine\.cross_entropy: target must be a class index in \[0, 2\), got 2"):
        cross_entropy([1.0, 2.0], 2)


# --------------------------------------------------------------------------- three ways and torch
@pytest.mark.parametrize("name", ROW_OPS)
def test_every_fused_op_passes_its_three_way_check_in_the_registry(name: str) -> None:
    for report in check_piece(get_piece(name)):
        assert report.passed, str(report)


def _rows(min_size: int = 1, max_size: int = 10) -> st.SearchStrategy[list[float]]:
    return st.lists(leaf_values(), min_size=min_size, max_size=max_size)


@pytest.mark.parametrize("op", sorted(LOSSES))
def test_gradient_matches_finite_differences(op: str) -> None:
    point = [0.3, -1.1, 0.7, 1.9, -0.4, 0.8]
    xs = [Value(z) for z in point]
    LOSSES[op](*xs).backward()
    for i, (v, g) in enumerate(zip(xs, numerical_gradient(LOSSES[op], point))):
        assert _close(v.grad, g, NUMERIC_RTOL, NUMERIC_ATOL), f"{op}, input {i}: graph {v.grad!r} vs numeric {g!r}"


def _torch_loss(torch, op: str, t):
    if op == "softmax":
        return torch.softmax(0.6 * t, dim=0) @ torch.tensor(_weights(len(t)), dtype=torch.float64)
    if op == "rms_norm":
        half = len(t) // 2
        y = torch.nn.functional.rms_norm(t[:half], (half,), t[half:], eps=EPS)
        return y @ torch.tensor(_weights(half), dtype=torch.float64)
    return torch.nn.functional.cross_entropy(t[None, :], torch.tensor([len(t) // 2]))


@PROPERTY_SETTINGS
@given(op=st.sampled_from(sorted(LOSSES)), zs=_rows(min_size=2, max_size=12))
def test_value_and_gradient_match_torch_on_random_rows(op: str, zs: list[float]) -> None:
    torch = pytest.importorskip("torch")
    if op == "rms_norm" and len(zs) % 2:
        zs = zs[:-1]
    xs = [Value(z) for z in zs]
    out = LOSSES[op](*xs)
    out.backward()
    t = torch.tensor(zs, dtype=torch.float64, requires_grad=True)
    ref = _torch_loss(torch, op, t)
    ref.backward()
    assert _close(out.data, ref.item(), TORCH_RTOL, TORCH_ATOL), f"{op}: {out.data!r} vs torch {ref.item()!r}"
    for i, v in enumerate(xs):
        assert _close(v.grad, t.grad[i].item(), TORCH_RTOL, TORCH_ATOL), (
            f"{op}, entry {i}: {v.grad!r} vs torch {t.grad[i].item()!r}"
        )


@PROPERTY_SETTINGS
@given(op=st.sampled_from(sorted(LOSSES)), zs=_rows(min_size=2, max_size=12))
def test_fused_and_reference_forms_give_the_same_numbers(op: str, zs: list[float]) -> None:
    fused_in = [Value(z) for z in zs]
    fused_out = LOSSES[op](*fused_in)
    with unfused():
        binary_in = [Value(z) for z in zs]
        binary_out = LOSSES[op](*binary_in)
    assert fused_out.data == binary_out.data  # every number computed in the same order
    assert LOSSES[op](*zs) == fused_out.data  # and on plain floats too
    fused_out.backward()
    binary_out.backward()
    for i, (f, b) in enumerate(zip(fused_in, binary_in)):
        assert _close(f.grad, b.grad, SAME_RTOL, SAME_ATOL), f"{op}, input {i}: fused {f.grad!r} vs binary {b.grad!r}"
    assert len(topological_order(fused_out)) < len(topological_order(binary_out))


def test_unfused_builds_the_binary_reference_form() -> None:
    xs = [Value(0.1), Value(0.2), Value(0.3)]
    with unfused():
        s = softmax(xs, 0.5)
        y = rms_norm(xs, xs, EPS)
        loss = cross_entropy(xs, 0)
    assert {v.op for v in s} == {"/"} and {v.op for v in y} == {"*"} and loss.op == "-"
    ops = {v.op for v in topological_order(engine.total(s + y + [loss]))}
    assert not ops & {"softmax", "logsumexp", "rms_norm", "rrms", "cross_entropy"}


# --------------------------------------------------------------------------- drawing
def test_draw_shows_each_fused_row_op_as_op_nodes_with_their_parents() -> None:
    from viz import draw

    xs = [Value(0.5, "x0"), Value(-1.0, "x1"), Value(2.0, "x2")]
    loss = cross_entropy(xs, 2)
    loss.label = "loss"
    loss.backward()
    drawing = draw(loss)
    source = drawing.source
    assert drawing.n_ops == 1 and drawing.n_values == 4
    assert source.count("op0 [label=cross_entropy ") == 1 and source.count("-> op0") == 3

    s = softmax(xs)
    drawing = draw(s[1])
    source = drawing.source
    assert drawing.n_ops == 2 and drawing.n_values == 5  # 3 inputs, the logsumexp node, the output
    assert source.count("[label=softmax ") == 1 and source.count("[label=logsumexp ") == 1
    assert source.count("->") == 2 + 3 + 1 + 1  # op edges: (x1, L) -> softmax, 3 -> logsumexp, each op -> its output

    y = rms_norm(xs[:2], [Value(1.5, "g0"), Value(0.5, "g1")], EPS)
    drawing = draw(y[0])
    assert drawing.n_ops == 2 and drawing.n_values == 5  # x0, x1, g0, r, y0
    assert drawing.source.count("[label=rms_norm ") == 1 and drawing.source.count("[label=rrms ") == 1


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: engine.dot(1.0, 2.0), "engine.dot: ws must be a list (or tuple)"),
        (lambda: engine.dot([1.0], engine.Value(2.0)), "engine.dot: xs must be a list (or tuple)"),
        (lambda: engine.dot({"a": 1}, {"b": 2}), "not dict"),
        (lambda: engine.total(5), "engine.total: xs must be a list"),
        (lambda: engine.softmax(engine.Value(1.0)), "engine.softmax: xs must be a list"),
        (lambda: engine.rms_norm("ab", [1.0, 1.0], 1e-5), "engine.rms_norm: xs must be a list"),
        (lambda: engine.cross_entropy(None, 0), "engine.cross_entropy: logits must be a list"),
    ],
    ids=["dot-floats", "dot-value", "dot-dicts", "total-int", "softmax-value", "rms-str", "ce-none"],
)
def test_a_row_that_is_not_a_sequence_is_one_clear_type_error(call, needle) -> None:
    with pytest.raises(TypeError, match=re.escape(needle)):
        call()


def test_other_iterables_are_rows_and_an_infinite_score_is_refused() -> None:
    assert engine.dot((w for w in [1.0, 2.0]), iter([3.0, 4.0])) == 11.0
    assert engine.total(x for x in [1.0, 2.0]) == 3.0
    with pytest.raises(ValueError, match=r"engine.softmax: xs\[0\] is not finite \(inf"):
        engine.softmax([engine.Value(float("inf")), engine.Value(1.0)])
