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


def test_abs_keeps_nan() -> None:
    v = Value(math.nan)
    out = abs(v)
    out.backward()
    assert math.isnan(out.data) and math.isnan(v.grad)
