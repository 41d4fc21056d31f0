"""Graphs the explorer's tests, benchmark and screenshots share: the MLP on one example with its
layers as blocks, and chains of a given size that reuse one constant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine import Value, to_values
from nn.activations import tanh_loops
from nn.linear import linear_loops
from nn.losses import mse_loops


def mlp_graph(sizes: Sequence[int] = (3, 16, 16, 1), seed: int = 0) -> tuple[Value, dict[str, Any]]:
    """A tanh MLP (mse loss) on one example, built layer by layer with nn's loops forms, after backward.

    Returns (loss, blocks): blocks name the input, every parameter array and every layer's output in
    forward order, so each folds into one box (viz.explore's `blocks=`)."""
    rng = np.random.default_rng(seed)
    x = to_values(rng.standard_normal((1, sizes[0])), "x")  # (1, D)
    blocks: dict[str, Any] = {"x": x}
    h: Any = x
    for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), 1):
        W = to_values(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), f"W{layer}")
        b = to_values(0.1 * rng.standard_normal(n_out), f"b{layer}")
        blocks[f"W{layer}"], blocks[f"b{layer}"] = W, b
        h = linear_loops(h, W, b)  # (1, n_out)
        if layer < len(sizes) - 1:
            h = tanh_loops(h)
        blocks[f"layer {layer}"] = h
    loss = mse_loops(h, [[0.5] * sizes[-1]])
    loss.label = "loss"
    blocks["loss"] = loss
    loss.backward()
    return loss, blocks


def chain_graph(n_ops: int, constant: float = 0.999) -> Value:
    """x, then n_ops alternating `* c` and `tanh`, every product reading the one constant c (a would-be hub)."""
    c = Value(constant)
    v = Value(0.5, "x")
    for i in range(n_ops):
        v = v * c if i % 2 == 0 else v.tanh()
    v.label = "y"
    return v
