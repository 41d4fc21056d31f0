"""Tour stage 3: an MLP learns XOR twice, by manual backprop and on the engine's graph, and the two are compared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.data.datasets import load_dataset
from models.training.tasks import train
from models.training.trainer import ENGINES
from models.zoo.mlp import MLP, MLPConfig


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """XOR trained twice, by manual backprop and on the engine's graph, compared; then the
    graph of one training example's loss is drawn. True when both reach 100% accuracy."""
    from viz import draw

    reports = {}
    for engine in ENGINES:
        reports[engine] = r = train("xor", engine=engine)
        echo(
            f"{engine:>6} engine: final loss {r.metrics['loss']:.3e}, accuracy {100 * r.metrics['train_accuracy']:.0f}% "
            f"after {r.outcome.state.step} Adam steps ({r.outcome.seconds:.2f} s)"
        )
    manual, graph = reports["manual"], reports["graph"]
    difference = float(np.max(np.abs(manual.model.flat_params - graph.model.flat_params)))
    echo(
        f"|loss(manual) - loss(graph)| = {abs(manual.metrics['loss'] - graph.metrics['loss']):.1e}; "
        f"largest parameter difference {difference:.1e}"
    )
    echo("(same initialisation, same Adam updates; the two gradients differ only in rounding)")

    # The network as both runs started (after training every gradient is ~1e-11: nothing to see).
    data = load_dataset("xor")
    model = MLP(MLPConfig(**manual.model_config))
    loss, _ = model.graph_loss(data.X_train[1:2], data.y_train[1:2])
    loss.label = "loss"
    loss.backward()
    title = (
        f"XOR, the 2-4-1 tanh MLP at initialisation, one example x = (0, 1), target 1: squared error {loss.data:.4f}"
    )
    drawing = draw(loss, title=title)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = drawing.save_or_dot(out_dir / "xor_example_graph.svg", echo)
    echo(f"wrote {path}  (one example's loss as a graph: every node shows data and grad)")
    return manual.metrics["train_accuracy"] == 1.0 and graph.metrics["train_accuracy"] == 1.0
