"""Tour stage 1: the classic two-input tanh neuron, its three-way gradient table and its picture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.zoo.neuron import neuron_graph, neuron_report


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage 1: the neuron's three-way gradient table and its graph picture."""
    from viz import draw

    o, _ = neuron_graph()
    echo(f"o = tanh(x1*w1 + x2*w2 + b) = {o.data:.6f}")
    report = neuron_report()
    echo(str(report))
    path = draw(o, title="o = tanh(x1*w1 + x2*w2 + b)").save_or_dot(Path(out_dir) / "neuron.svg", echo)
    echo(f"wrote {path}")
    return report.passed
