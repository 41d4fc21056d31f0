"""Free functions that work on plain floats and on `Value`s alike.

A loops-form layer written with these runs twice without change: on floats it is a
reference forward pass, on Values it builds a graph the engine can differentiate.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import overload

from engine.value import Value

Scalar = Value | float | int


def _domain(name: str, x: float, need: str) -> ValueError:
    return ValueError(f"{name} needs {need}, got {x!r}")


def _real(name: str, x: object) -> float:
    """`x` as a float, or a TypeError naming the function and the type it was given."""
    if isinstance(x, Real) and not isinstance(x, bool):
        return float(x)
    raise TypeError(f"{name} takes a number or an engine.Value, not {type(x).__name__}: {x!r}")


@overload
def exp(x: Value) -> Value: ...
@overload
def exp(x: float) -> float: ...
def exp(x: Scalar) -> Scalar:
    """e^x."""
    if isinstance(x, Value):
        return x.exp()
    x = _real("exp", x)
    try:
        return math.exp(x)
    except OverflowError:
        raise OverflowError(f"exp({x!r}) overflows a float") from None


@overload
def log(x: Value) -> Value: ...
@overload
def log(x: float) -> float: ...
def log(x: Scalar) -> Scalar:
    """Natural logarithm, for x > 0."""
    if isinstance(x, Value):
        return x.log()
    x = _real("log", x)
    if x <= 0:
        raise _domain("log", x, "a positive input")
    return math.log(x)


@overload
def sqrt(x: Value) -> Value: ...
@overload
def sqrt(x: float) -> float: ...
def sqrt(x: Scalar) -> Scalar:
    """Square root, for x >= 0."""
    if isinstance(x, Value):
        return x.sqrt()
    x = _real("sqrt", x)
    if x < 0:
        raise _domain("sqrt", x, "a non-negative input")
    return math.sqrt(x)


@overload
def tanh(x: Value) -> Value: ...
@overload
def tanh(x: float) -> float: ...
def tanh(x: Scalar) -> Scalar:
    """Hyperbolic tangent."""
    return x.tanh() if isinstance(x, Value) else math.tanh(_real("tanh", x))


@overload
def sigmoid(x: Value) -> Value: ...
@overload
def sigmoid(x: float) -> float: ...
def sigmoid(x: Scalar) -> Scalar:
    """1 / (1 + e^-x), evaluated without overflow for large |x|."""
    if isinstance(x, Value):
        return x.sigmoid()
    x = _real("sigmoid", x)
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@overload
def relu(x: Value) -> Value: ...
@overload
def relu(x: float) -> float: ...
def relu(x: Scalar) -> Scalar:
    """max(0, x); NaN stays NaN (as in PyTorch)."""
    if isinstance(x, Value):
        return x.relu()
    x = _real("relu", x)
    return x if x > 0 or x != x else 0.0


@overload
def erf(x: Value) -> Value: ...
@overload
def erf(x: float) -> float: ...
def erf(x: Scalar) -> Scalar:
    """The error function 2/sqrt(pi) * integral_0^x e^(-t^2) dt."""
    return x.erf() if isinstance(x, Value) else math.erf(_real("erf", x))


def data_of(x: Scalar) -> float:
    """The number behind `x`: `x.data` for a Value, `float(x)` otherwise.

    Use it where a loops-form function needs a value but no gradient, e.g. the running
    maximum subtracted in a stable softmax (the softmax does not depend on that shift).
    """
    return x.data if isinstance(x, Value) else float(x)
