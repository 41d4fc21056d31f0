"""Property-based tests of the engine: random expression trees (tests/strategies.py).

Each tree runs on floats (the reference, and what central differences perturb) and on
Values (the engine's gradient). The trees stay inside every op's domain by construction;
the rest (exp overflow, ReLU kinks) is `assume`d away per draw.
"""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import (
    LEAF_BOUND,
    check_domain,
    evaluate,
    expression_and_point,
    render,
)

import engine
from engine import Value, numerical_gradient, topological_order

#: the engine is deterministic and cheap; 60 trees per property keeps the file at a few seconds.
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)

#: graph vs central differences (eps=1e-6). Truncation is O(eps^2 f''') ~ 1e-12 here; rounding is
#: ~u * |intermediates| / eps ~ 1e-10 per unit of magnitude. 1e-8 per unit leaves ~100x headroom over
#: the worst error seen in 3000 draws (1.4e-9 at magnitude 6).
FD_ATOL_PER_MAGNITUDE = 1e-8
#: relative part for large gradients, the NUMERIC rtol of engine.gradcheck.
FD_RTOL = 1e-6
#: Values vs floats, same tree: identical ops except division, which the engine does as a * (1/b)
#: (one extra rounding, <= 1 ulp each); cancellation in a - b can turn that into ~1e-15 * magnitude.
VALUE_VS_FLOAT_ATOL_PER_MAGNITUDE = 1e-12
#: two backward calls vs twice one: the same contributions added to a leaf in a different grouping;
#: a few ulps (2.2e-16 each) of the largest contribution per addition.
ACCUMULATE_ATOL_PER_CONTRIBUTION = 1e-13
#: stored partial vs its textbook formula: the engine forms 1/b, -(a * (1/b)) * (1/b), p * (y / x)
#: and y * log(x), so the two differ by a few roundings (1.1e-16 each); 1e-15 allows ~9.
PARTIAL_RTOL = 1e-15
#: an absolute floor only for partials that are 0 or subnormal (hypothesis draws x = 0 or a
#: subnormal x, and y = 1), where a relative bound means nothing.
UNDERFLOW_ATOL = 1e-300


def _gradients(tree: tuple, xs: list[float]) -> tuple[float, list[float]]:
    leaves = [Value(x, f"x{i}") for i, x in enumerate(xs)]
    out = evaluate(tree, leaves)
    out.backward()
    return out.data, [v.grad for v in leaves]


@PROPERTY_SETTINGS
@given(expression_and_point())
def test_graph_gradient_matches_finite_differences(tree_and_point: tuple) -> None:
    tree, xs = tree_and_point
    domain = check_domain(tree, xs)
    assume(domain.ok)
    _, grads = _gradients(tree, xs)
    numeric = numerical_gradient(lambda *p: evaluate(tree, list(p)), xs)
    scale = max(1.0, domain.largest)
    for i, (g, n) in enumerate(zip(grads, numeric)):
        allowed = FD_ATOL_PER_MAGNITUDE * scale + FD_RTOL * abs(n)
        assert abs(g - n) <= allowed, f"d/dx{i} of {render(tree)} at {xs}: graph {g!r}, numeric {n!r}"


@PROPERTY_SETTINGS
@given(expression_and_point())
def test_values_compute_the_same_numbers_as_floats(tree_and_point: tuple) -> None:
    tree, xs = tree_and_point
    domain = check_domain(tree, xs)
    assume(domain.ok)
    on_floats = evaluate(tree, list(xs))
    on_values = evaluate(tree, [Value(x) for x in xs])
    assert isinstance(on_values, Value)
    allowed = VALUE_VS_FLOAT_ATOL_PER_MAGNITUDE * max(1.0, domain.largest)
    assert abs(on_values.data - on_floats) <= allowed, f"{render(tree)} at {xs}: {on_values.data!r} vs {on_floats!r}"


@PROPERTY_SETTINGS
@given(expression_and_point())
def test_second_backward_doubles_leaves_and_repeats_interior(tree_and_point: tuple) -> None:
    tree, xs = tree_and_point
    assume(check_domain(tree, xs).ok)
    leaves = [Value(x) for x in xs]
    out = evaluate(tree, leaves)
    out.backward()
    nodes = topological_order(out)
    first = {n: n.grad for n in nodes}
    # A leaf reached by several paths sums its contributions one by one, so the second call
    # gives ((g + c1) + c2) + ..., not exactly 2g: allow rounding relative to the contributions.
    largest_contribution = max([1.0] + [abs(d * n.grad) for n in nodes for d in n.partials])
    out.backward()
    for n in nodes:
        if n.parents:  # interior: the latest call's gradient, not a running total (bit-identical)
            assert n.grad == first[n]
        else:
            allowed = ACCUMULATE_ATOL_PER_CONTRIBUTION * largest_contribution
            assert abs(n.grad - 2.0 * first[n]) <= allowed, f"{render(tree)} at {xs}: leaf {n!r}"


@PROPERTY_SETTINGS
@given(expression_and_point())
def test_topological_order_puts_parents_first_once_each(tree_and_point: tuple) -> None:
    tree, xs = tree_and_point
    assume(check_domain(tree, xs).ok)
    out = evaluate(tree, [Value(x) for x in xs])
    order = topological_order(out)
    position = {n: i for i, n in enumerate(order)}
    assert len(position) == len(order), "a node appears twice"
    assert order[-1] is out
    for n in order:
        for p in n.parents:
            assert position[p] < position[n]
    # every node reachable from the root is listed
    reachable, stack = {out}, [out]
    while stack:
        for p in stack.pop().parents:
            if p not in reachable:
                reachable.add(p)
                stack.append(p)
    assert reachable == set(order)


FREE_FUNCTIONS = ["exp", "tanh", "sigmoid", "relu", "erf"]


@PROPERTY_SETTINGS
@given(
    name=st.sampled_from(FREE_FUNCTIONS + ["log", "sqrt"]),
    x=st.floats(min_value=-30.0, max_value=30.0, allow_nan=False),
)
def test_free_functions_give_the_same_data_on_floats_and_values(name: str, x: float) -> None:
    if name in ("log", "sqrt"):
        x = abs(x) + 1e-3  # inside the domain
    f = getattr(engine, name)
    assert f(Value(x)).data == f(x)  # the same formula in both: bit-identical


@PROPERTY_SETTINGS
@given(
    x=st.floats(min_value=-LEAF_BOUND, max_value=LEAF_BOUND, allow_nan=False),
    y=st.floats(min_value=0.5, max_value=LEAF_BOUND, allow_nan=False),
)
def test_local_partials_of_binary_ops(x: float, y: float) -> None:
    """The stored partials of each binary op are its textbook derivatives."""
    a, b = Value(x), Value(y)
    assert (a + b).partials == (1.0, 1.0)
    assert (a - b).partials == (1.0, -1.0)
    assert (a * b).partials == (y, x)
    da, db = (a / b).partials
    assert math.isclose(da, 1.0 / y, rel_tol=PARTIAL_RTOL)
    assert math.isclose(db, -x / (y * y), rel_tol=PARTIAL_RTOL, abs_tol=UNDERFLOW_ATOL)
    dbase, dexp = (b**a).partials
    assert math.isclose(dbase, x * y ** (x - 1.0), rel_tol=PARTIAL_RTOL, abs_tol=UNDERFLOW_ATOL)
    assert math.isclose(dexp, y**x * math.log(y), rel_tol=PARTIAL_RTOL, abs_tol=UNDERFLOW_ATOL)
