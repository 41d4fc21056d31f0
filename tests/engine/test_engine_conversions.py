"""No silent conversions: a Value handed to `math` (or float()) raises instead of returning a plain
float that would cut the graph and leave every gradient at 0; and abs() with torch's subgradient."""

from __future__ import annotations

import math

import pytest

import engine
from engine import Value

#: math functions a learner reaches for, and the engine function the message must name instead.
MATH_TO_ENGINE = [
    (math.exp, "engine.exp"),
    (math.log, "engine.log"),
    (math.sqrt, "engine.sqrt"),
    (math.tanh, "engine.tanh"),
    (math.erf, "engine.erf"),
    (math.fabs, "abs(v)"),
]


@pytest.mark.parametrize("fn, instead", MATH_TO_ENGINE, ids=[f.__name__ for f, _ in MATH_TO_ENGINE])
def test_a_math_function_refuses_a_value_and_names_the_engine_function(fn, instead: str) -> None:
    x = Value(1.0, "x")
    with pytest.raises(TypeError) as info:
        fn(x)
    message = str(info.value)
    assert instead in message and ".data" in message
    assert "\n" not in message


def test_the_silent_zero_gradient_of_the_issue_is_now_an_error() -> None:
    x = Value(0.5, "x")
    with pytest.raises(TypeError, match=r"engine\.exp"):
        Value(3.0) * math.exp(x)
    y = Value(3.0) * engine.exp(x)
    y.backward()
    assert x.grad == 3.0 * math.exp(0.5)


def test_the_number_stays_available_as_data() -> None:
    x = Value(2.5)
    assert x.data == 2.5
    assert engine.data_of(x) == 2.5 and engine.data_of(2.5) == 2.5
    assert math.exp(x.data) == math.exp(2.5)


@pytest.mark.parametrize("x, y, slope", [(-2.0, 2.0, -1.0), (3.0, 3.0, 1.0), (0.0, 0.0, 0.0), (-0.0, 0.0, 0.0)])
def test_abs_and_its_subgradient(x: float, y: float, slope: float) -> None:
    v = Value(x, "v")
    out = abs(v)
    out.backward()
    assert (out.data, out.op, v.grad) == (y, "abs", slope)
    assert math.copysign(1.0, out.data) == 1.0, "|x| is never -0"


def test_abs_keeps_nan_with_torchs_zero_slope() -> None:
    """|NaN| is NaN and its slope is 0, as torch's sgn(NaN) = 0 (tests/engine/test_engine_edges_torch.py)."""
    v = Value(math.nan)
    out = abs(v)
    out.backward()
    assert math.isnan(out.data) and v.grad == 0.0


def test_bool_of_a_value_is_refused_and_names_data() -> None:
    """`if v:` was always True (Value(0.0) included): a silent pitfall, now one TypeError."""
    for x in (0.0, 1.0):
        with pytest.raises(TypeError, match=r"ambiguous.*v\.data"):
            bool(Value(x))
    with pytest.raises(TypeError, match="ambiguous"):
        if Value(0.0):
            pass
    assert Value(0.0) > -1 and not Value(0.0).data  # the comparisons and .data are the way


def test_round_of_a_value_rounds_its_data_to_a_plain_number() -> None:
    assert round(Value(2.567), 2) == 2.57 and type(round(Value(2.567), 2)) is float
    assert round(Value(3.7)) == 4 and type(round(Value(3.7))) is int
    assert round(Value(2.5)) == round(2.5)  # the same banker's rounding as on the float


def test_value_times_an_array_is_the_array_times_the_value() -> None:
    """`Value * np.array` raised "Value data must be a real number" while `np.array * Value` worked:
    the Value now returns NotImplemented for a non-number, so numpy's reflected op answers both ways."""
    np = pytest.importorskip("numpy")
    xs = np.array([1.0, -3.0])
    for op in ("__add__", "__sub__", "__mul__", "__truediv__", "__pow__"):
        v = Value(2.0)
        left = getattr(v, op)(xs)
        assert left is NotImplemented
    v = Value(2.0)
    for got, want in [(v * xs, xs * v), (v + xs, xs + v)]:
        assert [g.data for g in got] == [w.data for w in want]
    assert [g.data for g in v - xs] == [1.0, 5.0] and [g.data for g in v / xs] == [2.0, -2.0 / 3.0]
    assert [g.data for g in v ** np.array([2.0, 3.0])] == [4.0, 8.0]
    (v * xs).sum().backward()  # still a graph: d/dv sum(v * xs) = sum(xs)
    assert v.grad == -2.0
