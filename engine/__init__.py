"""twograd's scalar autodiff engine and gradient checker (standard library only).

    >>> from engine import Value
    >>> x = Value(2.0, "x")
    >>> y = x * x + 3 * x
    >>> y.backward()
    >>> x.grad        # dy/dx = 2x + 3
    7.0
    >>> explain(y, x).total   # the same, as a sum over the paths from x to y (print it for the table)
    7.0
"""  # fmt: skip  # keeps the indented example (the formatter would flatten it)

from engine.errors import InputError, RunError, TwogradError, UnknownNameError
from engine.explain import ChainPath, Explanation, explain
from engine.functions import data_of, erf, exp, log, relu, sigmoid, sqrt, tanh
from engine.fused_rows import cross_entropy, rms_norm, softmax
from engine.gradcheck import (
    DEFAULT_EPS,
    EXACT,
    NUMERIC,
    GradientReport,
    GradientRow,
    Tolerance,
    assert_gradients_close,
    compare_gradients,
    graph_gradients,
    numerical_gradient,
    numerical_gradient_arrays,
    to_values,
)
from engine.value import Value, dot, fused, topological_order, total, unfused, zero_grad

__all__ = [
    "Value",
    "topological_order",
    "zero_grad",
    "dot",
    "total",
    "fused",
    "unfused",
    "softmax",
    "rms_norm",
    "cross_entropy",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "sigmoid",
    "relu",
    "erf",
    "data_of",
    "explain",
    "Explanation",
    "ChainPath",
    "DEFAULT_EPS",
    "EXACT",
    "NUMERIC",
    "Tolerance",
    "GradientRow",
    "GradientReport",
    "numerical_gradient",
    "numerical_gradient_arrays",
    "to_values",
    "graph_gradients",
    "compare_gradients",
    "assert_gradients_close",
    "TwogradError",
    "InputError",
    "UnknownNameError",
    "RunError",
]
