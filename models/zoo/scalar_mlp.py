"""A micrograd-style network of `engine.Value`s: `Neuron`, `Layer`, `ScalarMLP`, for the REPL.

Every number is a Value, so `loss.backward()` fills every weight's `.grad` and a learner can
train it in ten lines, draw it (`viz.draw`) or step through its backward (`viz.explore`).
The math is not written again here: a layer is `nn.linear.linear_loops` followed by an
activation's loops form (`nn.activations`), the same functions the registry checks three ways.

    layer l:   h_l = act_l(h_{l-1} W_l + b_l)        W_l (n_in, n_out), b_l (n_out,)
    network:   y   = h_L                              act_L is the identity unless asked

Shapes: x is a list of n_in numbers (floats or Values) for one example; a layer returns a
list of n_out Values; `ScalarMLP.__call__` returns the output layer's list (one Value for
one output).

    >>> from models import ScalarMLP
    >>> net = ScalarMLP(2, [4, 1], seed=0)
    >>> y = net([1.0, -1.0])[0]          # a Value
    >>> y.backward()                      # every weight's .grad is now dy/dweight
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from engine import InputError, UnknownNameError, Value
from nn.activations import relu_loops, sigmoid_loops, tanh_loops
from nn.linear import linear_loops

#: name -> loops form applied to a layer's pre-activation row ("linear": none).
ACTIVATIONS: dict[str, Callable[[Any], Any] | None] = {
    "tanh": tanh_loops,
    "relu": relu_loops,
    "sigmoid": sigmoid_loops,
    "linear": None,
}


def _activation(name: str) -> Callable[[Any], Any] | None:
    if name not in ACTIVATIONS:
        raise UnknownNameError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Layer:
    """`n_out` neurons reading the same `n_in` inputs: h = act(x W + b), one Value per weight.

    Weights start uniform in [-1, 1] / sqrt(n_in) (so a tanh unit starts away from saturation),
    biases at 0. Labels are `{label}W[i][j]` and `{label}b[j]`, so a drawing groups by layer.
    """

    def __init__(
        self, n_in: int, n_out: int, activation: str = "tanh", *, seed: int | random.Random = 0, label: str = ""
    ) -> None:
        if n_in < 1 or n_out < 1:
            raise InputError(f"a layer needs at least one input and one output, got n_in={n_in}, n_out={n_out}")
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        scale = 1.0 / math.sqrt(n_in)
        self.activation = activation
        self._act = _activation(activation)
        self.W = [
            [Value(rng.uniform(-1.0, 1.0) * scale, f"{label}W[{i}][{j}]") for j in range(n_out)] for i in range(n_in)
        ]
        self.b = [Value(0.0, f"{label}b[{j}]") for j in range(n_out)]

    def __call__(self, x: Sequence[Any]) -> list[Value]:
        """The layer on one example: a list of n_in numbers -> a list of n_out Values."""
        if len(x) != len(self.W):
            raise InputError(f"this layer reads {len(self.W)} inputs, got {len(x)}")
        z = linear_loops([list(x)], self.W, self.b)[0]  # (n_out,)
        return list(z) if self._act is None else list(self._act(z))

    def parameters(self) -> list[Value]:
        """W row by row, then b."""
        return [w for row in self.W for w in row] + list(self.b)

    def __repr__(self) -> str:
        return f"Layer({len(self.W)} -> {len(self.b)}, {self.activation})"


class Neuron(Layer):
    """One unit: o = act(sum_i w_i x_i + b). A `Layer` of width 1 whose call returns one Value."""

    def __init__(self, n_in: int, activation: str = "tanh", *, seed: int | random.Random = 0, label: str = "") -> None:
        super().__init__(n_in, 1, activation, seed=seed, label=label)

    def __call__(self, x: Sequence[Any]) -> Value:  # type: ignore[override]
        return super().__call__(x)[0]

    def __repr__(self) -> str:
        return f"Neuron({len(self.W)} inputs, {self.activation})"


class ScalarMLP:
    """Layers of Values: `ScalarMLP(2, [4, 1])` is 2 inputs -> 4 tanh units -> 1 linear output.

    activation:      the hidden layers' activation (tanh, relu, sigmoid)
    out_activation:  the last layer's ("linear" by default, as micrograd's MLP)
    seed:            the weights' seed (Python's `random`, so nothing but the standard library draws them)
    """

    def __init__(
        self,
        n_in: int,
        widths: Sequence[int],
        activation: str = "tanh",
        out_activation: str = "linear",
        *,
        seed: int = 0,
    ) -> None:
        if not widths:
            raise InputError("ScalarMLP needs at least one layer width, e.g. ScalarMLP(2, [4, 1])")
        rng = random.Random(seed)
        sizes = [n_in, *widths]
        self.layers = [
            Layer(
                sizes[k], sizes[k + 1], activation if k < len(widths) - 1 else out_activation, seed=rng, label=f"l{k}."
            )
            for k in range(len(widths))
        ]

    def __call__(self, x: Sequence[Any]) -> list[Value]:
        """The network on one example: a list of n_in numbers -> the last layer's list of Values."""
        h: list[Any] = list(x)
        for layer in self.layers:
            h = layer(h)
        return h

    def parameters(self) -> list[Value]:
        """Every weight and bias, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0 (gradients accumulate across backward() calls, as in PyTorch)."""
        for p in self.parameters():
            p.grad = 0.0

    def __repr__(self) -> str:
        return f"ScalarMLP([{', '.join(repr(layer) for layer in self.layers)}], {len(self.parameters())} parameters)"
