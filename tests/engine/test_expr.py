"""engine.expr: a small expression read with `ast` (never eval), built on labelled Values."""

from __future__ import annotations

import math

import pytest

from engine import InputError, explain
from engine.expr import MAX_EXPRESSION_CHARS, build_expression, parse_expression, variables

#: the same formula evaluated two ways in float64: a few ulps
SAME_MATH_RTOL = 1e-13


def test_the_issue_example_and_its_gradient() -> None:
    root, leaves = build_expression("tanh(x*w + b)", {"x": 0.5, "w": -1.0, "b": 2.0})
    slope = 1 - math.tanh(1.5) ** 2
    assert root.data == pytest.approx(math.tanh(1.5), rel=SAME_MATH_RTOL)
    assert leaves["x"].grad == pytest.approx(-slope, rel=SAME_MATH_RTOL)
    assert leaves["w"].grad == pytest.approx(0.5 * slope, rel=SAME_MATH_RTOL)
    assert root.label == "tanh(x*w + b)" and root.parents[0].label == "x*w + b"  # as written
    assert explain(root, leaves["b"]).total == pytest.approx(leaves["b"].grad, rel=SAME_MATH_RTOL)


@pytest.mark.parametrize(
    "text, at, d_dx",
    [
        ("x ** 2 / 4 - 3", {"x": 2.0}, 1.0),
        ("-x + +x * 2", {"x": 1.5}, 1.0),
        ("exp(log(sqrt(x)))", {"x": 4.0}, 0.25),
        ("abs(x) + relu(x) + sigmoid(0 * x)", {"x": -2.0}, -1.0),
        ("2 ** x", {"x": 1.0}, 2 * math.log(2)),
        ("erf(x)", {"x": 0.0}, 2 / math.sqrt(math.pi)),
    ],
)
def test_every_operator_and_function(text: str, at: dict, d_dx: float) -> None:
    _, leaves = build_expression(text, at)
    assert leaves["x"].grad == pytest.approx(d_dx, rel=SAME_MATH_RTOL)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("__import__('os').system('true')", "can be called"),
        ("x.__class__", "is not allowed"),
        ("x[0]", "is not allowed"),
        ("(lambda: x)()", "can be called"),
        ("'x' * 3", "is not allowed"),
        ("x if x else x", "is not allowed"),
        ("x // 2", "not one of + - * / **"),
        ("~x", "is not - or +"),
        ("x < 1", "is not allowed"),
        ("tanh(x, x)", "with one argument"),
        ("tanh(x=x)", "with one argument"),
        ("True * x", "is not allowed"),
        ("x +", "is not an expression"),
        ("", "needs an expression"),
        ("x" * (MAX_EXPRESSION_CHARS + 1), f"at most {MAX_EXPRESSION_CHARS} characters"),
        ("(" * 210 + "x" + ")" * 210, "is not an expression"),  # past the parser's nesting limit
    ],
)
def test_anything_outside_the_grammar_is_one_input_error(text: str, needle: str) -> None:
    with pytest.raises(InputError) as info:
        parse_expression(text)
    assert needle in str(info.value)


def test_values_must_match_the_variables() -> None:
    assert variables(parse_expression("x*y + x + tanh(z)")) == ["x", "y", "z"]
    with pytest.raises(InputError, match="no value for y"):
        build_expression("x * y", {"x": 1.0})
    with pytest.raises(InputError, match="q not in the expression"):
        build_expression("x", {"x": 1.0, "q": 2.0})
    with pytest.raises(InputError, match="no variable"):
        build_expression("2 * 3", {})


def test_evaluation_errors_are_input_errors_and_huge_powers_stay_floats() -> None:
    with pytest.raises(InputError, match="log needs a positive input"):
        build_expression("log(x - x)", {"x": 1.0})
    with pytest.raises(InputError, match="division by zero"):
        build_expression("1 / (x - x)", {"x": 1.0})
    with pytest.raises(InputError):  # 9.0 ** 9.0 ** 9.0 overflows a float at once: no giant integer
        build_expression("9 ** 9 ** 9 * x", {"x": 1.0})


def test_deep_nesting_within_the_length_limit_builds() -> None:
    depth = MAX_EXPRESSION_CHARS - 10
    root, leaves = build_expression("-" * depth + "x", {"x": 2.0})
    assert root.data == (-1) ** depth * 2.0 and leaves["x"].grad == (-1) ** depth


@pytest.mark.parametrize("text", ["exp + x", "x * abs", "exp(exp)", "tanh(x) + log"])
def test_a_function_name_used_as_a_variable_is_one_input_error(text: str) -> None:
    """`exp + x` once reached the builder and failed there with KeyError: 'exp'."""
    with pytest.raises(InputError, match="is a function, not a variable"):
        build_expression(text, {"x": 0.5})
