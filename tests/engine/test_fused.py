"""The fused (multi-parent) node kind and its ops `engine.dot` and `engine.total`.

Three ways where they apply: the engine's gradient against central differences
(engine.numerical_gradient) and against PyTorch autograd (float64, skipped without torch).
The random expressions of tests/strategies.py draw `total`, `dot` and `dot_c` too, so the
property tests of test_engine_properties.py and test_explain.py cover them as well.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import check_domain, evaluate, expression_and_point, leaf_values, render

import engine
from engine import Value, dot, explain, numerical_gradient, topological_order, total, unfused

#: central differences with eps = 1e-6 on O(1) inputs: truncation ~1e-12, rounding ~1e-10.
NUMERIC_RTOL = 1e-6
NUMERIC_ATOL = 1e-8
#: fused and binary forms add the same terms in the same order: equal up to the rounding of
#: the backward sums, which may add the same contributions in another order (a few ulps).
SAME_RTOL = 1e-12
#: engine vs torch, float64: torch may sum a dot product in another order (a few ulps).
TORCH_RTOL = 1e-12
TORCH_ATOL = 1e-13
#: explain's path products add up in another order than backward: rounding only.
EXPLAIN_RTOL = 1e-9

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def _close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _example(*zs: engine.Value | float) -> engine.Value | float:
    """A function of 4 scalars using both fused ops, with shared operands and a constant."""
    a, b, c, d = zs
    return engine.tanh(dot([a, b, 2.0], [c, a, d])) * total([a, b * c, d, 0.5]) + dot([a], [a])


# --------------------------------------------------------------------------- the node
def test_dot_and_total_are_one_node_holding_parents_and_partials() -> None:
    w = [Value(1.5, "w0"), Value(-2.0, "w1")]
    x = [Value(3.0, "x0"), 4.0]
    y = dot(w, x)
    assert y.op == "dot" and y.data == 1.5 * 3.0 - 2.0 * 4.0
    assert y.parents == (w[0], w[1], x[0])  # the Values of ws, then of xs; the constant 4.0 gets no edge
    assert y.partials == (3.0, 4.0, 1.5)  # d/dw0 = x0, d/dw1 = x1, d/dx0 = w0
    all_values = dot(w, [x[0], Value(4.0)])
    assert all_values.parents[:2] == tuple(w) and all_values.partials == (3.0, 4.0, 1.5, -2.0)
    s = total([w[0], 2.5, x[0]])
    assert s.op == "sum" and s.data == 1.5 + 2.5 + 3.0
    assert s.parents == (w[0], x[0]) and s.partials == (1.0, 1.0)


def test_a_binary_node_stays_the_same_small_object() -> None:
    assert Value.__slots__ == ("data", "grad", "label", "op", "_a", "_b", "_da", "_db")
    a, b = Value(1.0), Value(2.0)
    assert sys.getsizeof(a * b) == sys.getsizeof(a)
    assert (a * b).parents == (a, b) and (-a).parents == (a,)


def test_on_plain_floats_the_result_is_a_float() -> None:
    assert dot([1.0, 2, 3.5], [4.0, 5.0, -1]) == 1.0 * 4.0 + 2 * 5.0 - 3.5
    assert type(dot([1.0], [2.0])) is float
    assert total([1, 2.5, -0.5]) == 3.0 and type(total([1])) is float
    assert dot([], []) == 0.0 and total([]) == 0.0
    assert total(x for x in (1.0, 2.0)) == 3.0  # any iterable


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"engine\.dot: ws and xs must have the same length, got 2 and 1"):
        dot([1.0, 2.0], [Value(1.0)])
    with pytest.raises(TypeError, match=r"engine\.dot: xs\[1\] must be a number"):
        dot([Value(1.0), 2.0], [1.0, "3"])
    with pytest.raises(TypeError, match=r"engine\.total: xs\[0\] must be a number"):
        total([True, Value(1.0)])


# --------------------------------------------------------------------------- gradients
def test_gradient_matches_finite_differences() -> None:
    point = [0.3, -1.1, 0.7, 1.9]
    xs = [Value(z) for z in point]
    out = _example(*xs)
    out.backward()
    expected = numerical_gradient(_example, point)
    for i, (v, g) in enumerate(zip(xs, expected)):
        assert _close(v.grad, g, NUMERIC_RTOL, NUMERIC_ATOL), f"input {i}: graph {v.grad!r} vs numeric {g!r}"


def test_gradient_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    point = [0.3, -1.1, 0.7, 1.9]
    xs = [Value(z) for z in point]
    out = _example(*xs)
    out.backward()
    ts = [torch.tensor(z, dtype=torch.float64, requires_grad=True) for z in point]
    a, b, c, d = ts
    ref = torch.tanh(torch.stack([a, b, torch.tensor(2.0, dtype=torch.float64)]) @ torch.stack([c, a, d]))
    ref = ref * torch.stack([a, b * c, d, torch.tensor(0.5, dtype=torch.float64)]).sum() + a * a
    ref.backward()
    assert _close(out.data, ref.item(), TORCH_RTOL, TORCH_ATOL)
    for i, (v, t) in enumerate(zip(xs, ts)):
        assert _close(v.grad, t.grad.item(), TORCH_RTOL, TORCH_ATOL), (
            f"input {i}: engine {v.grad!r} vs torch {t.grad.item()!r}"
        )


@PROPERTY_SETTINGS
@given(
    st.integers(min_value=1, max_value=12).flatmap(lambda n: st.lists(leaf_values(), min_size=2 * n, max_size=2 * n))
)
def test_dot_matches_torch_on_random_vectors(zs: list[float]) -> None:
    torch = pytest.importorskip("torch")
    n = len(zs) // 2
    vs = [Value(z) for z in zs]
    out = dot(vs[:n], vs[n:])
    out.backward()
    ts = torch.tensor(zs, dtype=torch.float64, requires_grad=True)
    ref = ts[:n] @ ts[n:]
    ref.backward()
    assert _close(out.data, ref.item(), TORCH_RTOL, TORCH_ATOL)
    for i, v in enumerate(vs):
        assert _close(v.grad, ts.grad[i].item(), TORCH_RTOL, TORCH_ATOL), f"entry {i}"


@PROPERTY_SETTINGS
@given(expression_and_point(max_leaves=10))
def test_fused_and_binary_forms_give_the_same_numbers(tree_and_point: tuple) -> None:
    tree, point = tree_and_point
    assume(check_domain(tree, point).ok)
    fused_in = [Value(z) for z in point]
    fused_out = evaluate(tree, fused_in)
    with unfused():
        binary_in = [Value(z) for z in point]
        binary_out = evaluate(tree, binary_in)
    if not isinstance(fused_out, Value):
        return  # a constant expression: nothing to differentiate (the data are compared below)
    assert fused_out.data == binary_out.data, render(tree)  # same terms, same order
    fused_out.backward()
    binary_out.backward()
    for i, (f, b) in enumerate(zip(fused_in, binary_in)):
        assert _close(f.grad, b.grad, SAME_RTOL, SAME_RTOL), f"{render(tree)}: input {i}"


def test_unfused_builds_binary_nodes_and_restores_the_switch() -> None:
    w = [Value(1.0), Value(2.0), Value(3.0)]
    with unfused():
        y = dot(w, w)
        s = total(w)
    assert y.op == "+" and s.op == "+"
    assert len(topological_order(y)) == 3 + 3 + 2  # leaves, products, additions
    assert dot(w, w).op == "dot"  # fused again outside the block


# --------------------------------------------------------------------------- long graphs
def test_a_long_chain_of_fused_nodes_needs_no_recursion() -> None:
    depth = 200_000  # far past the recursion limit
    x = Value(0.5, "x")
    y = x
    for _ in range(depth):
        y = total([y, 1e-6])  # y -> y + 1e-6, one fused node of one parent
    z = dot([y, x], [x, 2.0])  # z = y x + 2x, so dz/dx = y + x * dy/dx + 2 = y + x + 2
    z.backward()
    assert _close(x.grad, y.data + x.data + 2.0, SAME_RTOL)
    assert len(topological_order(z)) == 1 + depth + 1  # x, the sums (floats get no node), z


def test_a_wide_dot_visits_each_parent_once() -> None:
    n = 100_000
    ws = [Value(float(i % 7) - 3.0) for i in range(n)]
    xs = [Value(1.0 / (1 + i % 5)) for i in range(n)]
    hidden = [w * 1.0 for w in ws]  # interior parents, so the sort has to walk them
    out = dot(hidden, xs)
    out.backward()
    assert all(w.grad == x.data for w, x in zip(ws, xs))
    assert len(topological_order(out)) == 4 * n + 1  # ws, the constants 1.0, hidden, xs, out


# --------------------------------------------------------------------------- explain and draw
def test_explain_sums_the_paths_through_a_fused_node_to_grad() -> None:
    point = [0.3, -1.1, 0.7, 1.9]
    xs = [Value(z) for z in point]
    out = _example(*xs)
    out.backward()
    for i, v in enumerate(xs):
        assert _close(explain(out, v).total, v.grad, EXPLAIN_RTOL), f"input {i}"


def test_draw_shows_a_fused_node_as_one_op_with_its_parents() -> None:
    from viz import draw

    w = [Value(1.0, "w0"), Value(2.0, "w1"), Value(3.0, "w2")]
    x = [Value(-1.0, "x0"), Value(0.5, "x1"), Value(2.0, "x2")]
    y = dot(w, x)
    y.label = "y"
    y.backward()
    source = draw(y).source
    assert source.count("op0 [label=dot ") == 1 and "op1" not in source
    drawing = draw(y)
    assert drawing.n_ops == 1 and drawing.n_values == 7
    assert source.count("-> op0") == 6  # one edge from each parent
    assert source.count("op0 ->") == 1  # and one to the result
