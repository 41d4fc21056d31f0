"""Tabular classification tasks: an MLP (models/zoo/mlp.py) on xor, moons, spirals or iris.

Each `TabularTask` is one row of the task table (models/training/tasks.py): it builds the MLP from a
JSON-able config, bounds its size before anything is allocated, and hands the trainer a
`ClassifierObjective` and row batches. The manual engine is the MLP's fused numpy path; the
graph engine is its loops form on `engine.Value`s (one Python object per scalar operation,
about 2 microseconds per node).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from models.data.datasets import DATASET_NAMES, Dataset, load_dataset
from models.training.learner import COMPOSED_NOTE
from models.training.trainer import RowBatches, Setup, TrainConfig, TrainState
from models.zoo.kernels import Kernels
from models.zoo.mlp import MLP, MLPConfig

#: measured cost of the graph engine per node and step (forward + backward), for the warning.
GRAPH_SECONDS_PER_NODE = 2e-6
GRAPH_WARN_SECONDS = 10.0
#: refuse larger networks: parameters, gradient and Adam's two moments are four float64
#: vectors of this length (1.6 GB), about what one machine can hold.
MAX_PARAMETERS = 50_000_000
#: refuse steps holding more activations (rows x hidden units) than this (400 MB).
MAX_ACTIVATIONS = 50_000_000
#: refuse graph-engine steps building more nodes than this (~120 bytes each: about 1.2 GB).
MAX_GRAPH_NODES = 10_000_000


@dataclass(frozen=True)
class Recipe:
    """Defaults that train a data set well in seconds from the default seed."""

    hidden: tuple[int, ...]  # hidden widths; sizes = [D, *hidden, K]
    activation: str
    loss: str
    train: TrainConfig  # optimizer, lr, steps, ...


def count_parameters(sizes: list[int]) -> int:
    """P = sum over layers of n_in*n_out + n_out (Python ints: no overflow for absurd sizes)."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


def graph_nodes_per_step(sizes: list[int], n_rows: int) -> int:
    """About how many engine nodes one step of the graph engine builds on `n_rows` rows.

    Per row and layer: n_in*n_out products, as many sums, n_out activations; plus the loss.
    """
    per_row = sum(2 * a * b + 2 * b for a, b in zip(sizes[:-1], sizes[1:])) + 3 * sizes[-1]
    return n_rows * per_row + count_parameters(sizes)


class ClassifierObjective:
    """The trainer's objective for an MLP on a labelled data set (see models.training.trainer.Objective).

    A batch is None (every training row) or an array of row indices. The manual engine is the
    MLP's fused numpy path (its composed pair for a model with kernels, e.g. a learner's pieces);
    the graph engine backpropagates the loops form on engine.Values.
    """

    def __init__(self, model: MLP, data: Dataset, engine: str) -> None:
        self.model = model
        self.data = data
        self.engine = engine
        self.targets = model.targets(data.y_train)  # (N, K) or (N,), what the loss compares with

    def loss_and_grad(self, batch: np.ndarray | None) -> float:
        X, y, T = self.data.X_train, self.data.y_train, self.targets
        if batch is not None:
            X, y, T = X[batch], y[batch], T[batch]  # (B, D), (B,), (B, K)
        if self.engine == "manual":
            if self.model.kernels is not None:  # replaced pieces run in the composed pair only
                return self.model.loss_and_grads(X, y)
            return self.model.fused_loss_and_grad(X, T)
        try:
            return self.model.loss_and_grads_graph(X, y)
        except (ValueError, OverflowError):
            # The loops pieces refuse non-finite values and `**` raises on overflow where numpy
            # gives inf: a run on its way to a non-finite loss is the divergence it is.
            if not np.isfinite(self.model.forward(X)).all():
                return math.inf
            raise

    def loss(self) -> float:
        """The training loss of the current parameters (NaN where the forward overflows)."""
        try:
            return self.model.loss(self.data.X_train, self.data.y_train)
        except ValueError:
            return math.nan

    def evaluate(self) -> dict[str, float]:
        d = self.data
        return {
            "loss": self.loss(),
            "train_accuracy": self.model.accuracy(d.X_train, d.y_train),
            "test_accuracy": self.model.accuracy(d.X_test, d.y_test),
        }


@dataclass(frozen=True)
class TabularTask:
    """An MLP classifying one of the tabular data sets (models/data/datasets.py)."""

    name: str
    recipe: Recipe
    description: str
    kind: str = "mlp"

    def model_config(self, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """The MLPConfig (as a dict) from --hidden/--activation/--loss, the recipe filling the rest."""
        unknown = sorted(set(options) - {"hidden", "activation", "loss"})
        if unknown:
            raise InputError(f"{self.name}: unknown model options {', '.join(unknown)}")
        data = load_dataset(self.name, seed=seed)
        loss = options.get("loss") or self.recipe.loss
        hidden = options.get("hidden")
        hidden = tuple(hidden) if hidden is not None else self.recipe.hidden
        n_out = 1 if loss == "mse" and data.n_classes == 2 else data.n_classes
        config = MLPConfig(
            sizes=[data.n_features, *hidden, n_out],
            activation=options.get("activation") or self.recipe.activation,
            loss=loss,
            seed=seed,
        )
        return _validated(config).to_dict()

    def options_of(self, model_config: dict[str, Any]) -> dict[str, Any]:
        """The model options (as --hidden/--activation/--loss give them) of a saved config."""
        return {
            "hidden": list(model_config.get("sizes", [0, 0])[1:-1]),
            "activation": model_config.get("activation"),
            "loss": model_config.get("loss"),
        }

    def table_row(self) -> dict[str, Any]:
        """This task's row of `twograd train --list`."""
        r = self.recipe
        return {
            "task": self.name,
            "model": self.kind,
            "description": self.description,
            "network": "-".join(["in", *map(str, r.hidden), "out"]) + f" {r.activation}, {r.loss}",
            "recipe": {"hidden": list(r.hidden), "activation": r.activation, "loss": r.loss, **r.train.to_dict()},
        }

    def check_size(self, model_config: dict[str, Any], train: TrainConfig, engine: str) -> list[str]:
        """InputError if the network or one step would not fit the MAX_* limits (checked before
        anything of the network's size is allocated); returns warnings (a slow graph run)."""
        sizes = _validated(MLPConfig(**model_config)).sizes
        net = "-".join(map(str, sizes))
        n_params = count_parameters(sizes)
        if n_params > MAX_PARAMETERS:
            raise InputError(
                f"the network {net} has {n_params:,} parameters, more than the {MAX_PARAMETERS:,} "
                "this trainer takes; use smaller --hidden widths"
            )
        n_rows = len(load_dataset(self.name, seed=model_config["seed"]).y_train)
        rows = min(n_rows, train.batch_size or n_rows)
        n_activations = rows * sum(sizes[1:])
        if n_activations > MAX_ACTIVATIONS:
            raise InputError(
                f"a step of the network {net} on {rows} rows holds {n_activations:,} activations, more than "
                f"the {MAX_ACTIVATIONS:,} this trainer takes; use smaller --hidden widths or --batch-size"
            )
        if engine != "graph":
            return []
        nodes = graph_nodes_per_step(sizes, rows)
        if nodes > MAX_GRAPH_NODES:
            raise InputError(
                f"the graph engine would build ~{nodes:,} nodes per step, more than the {MAX_GRAPH_NODES:,} "
                "it takes; use --engine manual, smaller --hidden widths or --batch-size"
            )
        seconds = nodes * GRAPH_SECONDS_PER_NODE * train.steps
        if seconds > GRAPH_WARN_SECONDS:
            return [
                f"warning: the graph engine builds ~{nodes:,} nodes per step; {train.steps} steps will take "
                f"~{seconds:.0f} s (--engine manual takes a fraction of that)"
            ]
        return []

    def build(
        self, model_config: dict[str, Any], train: TrainConfig, engine: str, kernels: Kernels | None = None
    ) -> Setup:
        """The model, objective and batches; `kernels` replaces pieces of the MLP's composed pair (models/zoo/kernels.py)."""
        config = _validated(MLPConfig(**model_config))
        data = load_dataset(self.name, seed=config.seed)
        model = MLP(config, kernels=kernels)
        objective = ClassifierObjective(model, data, engine)
        net = "-".join(map(str, config.sizes))
        batch = (
            "full batch"
            if not train.batch_size or train.batch_size >= len(data.y_train)
            else f"batch {train.batch_size}"
        )
        summary = [
            data.summary(),
            f"network {net} {config.activation}, {config.loss} loss, {train.optimizer} lr {train.lr:g}, "
            f"{batch}, {engine} engine{COMPOSED_NOTE if kernels is not None else ''}, seed {config.seed}",
        ]

        def draw(folder: Path, state: TrainState) -> dict[str, str]:
            return _draw_tabular(folder, state, model, data, net)

        return Setup(model, objective, RowBatches(len(data.y_train), train.batch_size), summary, draw)


def _validated(config: MLPConfig) -> MLPConfig:
    try:
        return config.validate()
    except (ValueError, TypeError) as err:
        raise InputError(str(err)) from None


def _draw_tabular(folder: Path, state: TrainState, model: MLP, data: Dataset, net: str) -> dict[str, str]:
    """Loss curve and (2-D data) decision boundary; raises PlotsUnavailable without matplotlib."""
    from viz.plots import plot_decision_boundary, plot_loss

    steps = [e["step"] for e in state.evals]
    metrics = {
        name.replace("_", " "): (steps, [e[name] for e in state.evals])
        for name in ("train_accuracy", "test_accuracy")
        if len(steps) > 1
    }  # with --eval-every: accuracy over the run on the right-hand axis
    files = {
        "loss_curve": str(
            plot_loss(state.losses, folder / "loss.png", metrics=metrics or None, title=f"{data.name}: training loss")
        )
    }
    if data.n_features == 2:
        accuracy = model.accuracy(data.X_test, data.y_test)
        files["decision_boundary"] = str(
            plot_decision_boundary(
                model.predict,
                data.X_train,
                data.y_train,
                folder / "decision_boundary.png",
                X_test=data.X_test,
                y_test=data.y_test,
                class_names=data.class_names,
                title=f"{data.name}: {net} MLP, test accuracy {100 * accuracy:.1f}%",
            )
        )
    return files


TABULAR_TASKS: dict[str, TabularTask] = {
    "xor": TabularTask("xor", Recipe((4,), "tanh", "mse", TrainConfig(steps=500, lr=0.05)), "the four XOR points"),
    "moons": TabularTask(
        "moons",
        Recipe((16, 16), "tanh", "cross_entropy", TrainConfig(steps=1000, lr=0.01)),
        "two interleaved half circles, 300 noisy points, 2 classes",
    ),
    "spirals": TabularTask(
        "spirals",
        Recipe((32, 32), "tanh", "cross_entropy", TrainConfig(steps=2000, lr=0.01)),
        "three interleaved spirals, 300 points, 3 classes",
    ),
    "iris": TabularTask(
        "iris",
        Recipe((8,), "tanh", "cross_entropy", TrainConfig(steps=200, lr=0.01)),
        "Fisher's iris flowers (shipped with twograd), 4 features, 3 species",
    ),
}
assert set(TABULAR_TASKS) == set(DATASET_NAMES), "every tabular data set has a task"
