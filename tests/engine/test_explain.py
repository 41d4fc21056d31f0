"""engine.explain: the chain rule path by path; the sum of the paths' products is the gradient."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from strategies import evaluate, expression_and_point, render

from engine import Explanation, Value, explain

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
#: the path sum and backward add the same products in a different order: rounding only, a few
#: ulps per term, relative to the largest term (cancellation can leave a small total).
PATH_SUM_RTOL = 1e-12
#: a limit generous enough that the random trees (at most 8 leaves) usually list every path
LIST_ALL_LIMIT = 10_000


def _close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=PATH_SUM_RTOL, abs_tol=PATH_SUM_RTOL * max(1.0, scale))


@PROPERTY_SETTINGS
@given(expression_and_point())
def test_total_equals_grad_and_the_listed_products_sum_to_it(tree_and_point: tuple) -> None:
    tree, xs = tree_and_point
    leaves = [Value(x, f"x{i}") for i, x in enumerate(xs)]
    root = evaluate(tree, leaves)
    if not isinstance(root, Value):
        root = Value(root)
    root.backward()
    for leaf in leaves:
        e = explain(root, leaf, limit=LIST_ALL_LIMIT)
        scale = max((abs(p.product) for p in e.paths), default=0.0)
        assert _close(e.total, leaf.grad, scale), f"d/d{leaf.label} of {render(tree)} at {xs}: {e.total} vs {leaf.grad}"
        if e.complete:
            assert _close(math.fsum(p.product for p in e.paths), leaf.grad, scale)
        for p in e.paths:
            assert p.nodes[0] is leaf and p.nodes[-1] is root and len(p.partials) == len(p.nodes) - 1
            assert p.product == math.prod(p.partials)
        assert [abs(p.product) for p in e.paths] == sorted((abs(p.product) for p in e.paths), reverse=True)


def _neuron() -> tuple[Value, dict[str, Value]]:
    from models.zoo.neuron import neuron_graph

    return neuron_graph()


def test_the_neuron_one_path_per_input() -> None:
    o, leaves = _neuron()
    e = explain(o, leaves["w1"])
    assert isinstance(e, Explanation) and e.count == 1 and e.complete
    (path,) = e.paths
    assert [v.label for v in path.nodes] == ["w1", "x1*w1", "x1*w1 + x2*w2", "n", "o"]
    assert path.partials == pytest.approx((2.0, 1.0, 1.0, 0.5))
    assert e.total == path.product == pytest.approx(leaves["w1"].grad)


def test_a_repeated_operand_is_two_paths() -> None:
    x = Value(3.0, "x")
    y = x * x
    e = explain(y, x)
    assert e.count == 2 and [p.product for p in e.paths] == [3.0, 3.0] and e.total == 6.0


def test_past_the_limit_the_count_is_told_and_the_largest_come_first() -> None:
    x = Value(0.5, "x")
    v = x
    for _ in range(40):  # each step doubles the number of paths: 2**40 of them
        v = v * 0.9 + v * 1.1
    v.label = "r"
    e = explain(v, x, limit=5)
    assert e.count == 2**40 and len(e.paths) == 5 and not e.complete
    assert e.paths[0].product == pytest.approx(1.1**40)
    text = str(e)
    assert "1,099,511,627,776 paths; the 5 largest contributions listed" in text
    assert len(text.splitlines()) == 5 + 3
    v.backward()
    assert e.total == pytest.approx(x.grad, rel=PATH_SUM_RTOL)


def test_no_path_and_bad_arguments() -> None:
    x, y = Value(1.0, "x"), Value(2.0, "y")
    out = x * 2.0
    out.label = "out"
    e = explain(out, y)
    assert (e.count, e.total, e.paths) == (0, 0.0, [])
    assert "does not depend on y" in str(e)
    with pytest.raises(TypeError):
        explain(out, 1.0)
    with pytest.raises(ValueError, match="limit"):
        explain(out, x, limit=0)


def test_an_interior_node_is_explained_up_to_the_root() -> None:
    o, leaves = _neuron()
    n = o.parents[0]
    e = explain(o, n)
    assert e.count == 1 and e.paths[0].nodes == (n, o) and e.total == pytest.approx(n.grad)
    assert explain(o, o).total == 1.0
