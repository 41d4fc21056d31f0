"""The task table: a task name -> its model, its data and its recipe; and `train`, which runs one.

    twograd train --list                      # this table
    twograd train moons --out runs/moons      # models.tasks.train("moons", out="runs/moons")

A task knows how to build its model from a JSON-able config, how big that model would be
(checked before anything is allocated), its objective and batch source for the trainer, and
which pictures to draw. `train` does the rest for every task alike: the run folder (never
overwriting a run), resume (settings come from the folder), the trainer, and the report.

Tabular classification tasks (xor, moons, spirals, iris) train an MLP (models/mlp.py) with the
manual engine (numpy, hand-derived backward) or the graph engine (the loops form on
`engine.Value`s: one Python object per scalar operation, about 2 microseconds per node).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.errors import InputError
from models.datasets import DATASET_NAMES, Dataset, load_dataset
from models.mlp import ACTIVATIONS, LOSSES, MLP, MLPConfig
from models.runs import SavedRun, finite_or_none, load_run, new_run_folder, prepare_out, save_run
from models.trainer import Diverged, Outcome, RowBatches, Trainer, TrainConfig, TrainState
from nn.checkpoint import CheckpointError

ENGINES: tuple[str, ...] = ("manual", "graph")
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


# ---------------------------------------------------------------------------- tabular (MLP)
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
    """The trainer's objective for an MLP on a labelled data set (see models.trainer.Objective).

    A batch is None (every training row) or an array of row indices. The manual engine is the
    MLP's fused numpy path; the graph engine backpropagates the loops form on engine.Values.
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
        return {"loss": self.loss(), "train_accuracy": self.model.accuracy(d.X_train, d.y_train),
                "test_accuracy": self.model.accuracy(d.X_test, d.y_test)}


@dataclass
class Setup:
    """What a task hands the trainer, and how it reports and draws the result."""

    model: Any  # a Module with flat_params / flat_grads
    objective: Any  # models.trainer.Objective
    batches: Callable[[np.random.Generator], Any]
    summary: list[str]  # lines describing the data and the model
    draw: Callable[[Path, TrainState], dict[str, str]]  # pictures into a folder -> {what: path}


@dataclass(frozen=True)
class TabularTask:
    """An MLP classifying one of the tabular data sets (models/datasets.py)."""

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
        config = MLPConfig(sizes=[data.n_features, *hidden, n_out], activation=options.get("activation") or self.recipe.activation,
                           loss=loss, seed=seed)
        return _validated(config).to_dict()

    def check_size(self, model_config: dict[str, Any], train: TrainConfig, engine: str) -> list[str]:
        """InputError if the network or one step would not fit the MAX_* limits (checked before
        anything of the network's size is allocated); returns warnings (a slow graph run)."""
        sizes = _validated(MLPConfig(**model_config)).sizes
        net = "-".join(map(str, sizes))
        n_params = count_parameters(sizes)
        if n_params > MAX_PARAMETERS:
            raise InputError(f"the network {net} has {n_params:,} parameters, more than the {MAX_PARAMETERS:,} "
                             "this trainer takes; use smaller --hidden widths")
        n_rows = len(load_dataset(self.name, seed=model_config["seed"]).y_train)
        rows = min(n_rows, train.batch_size or n_rows)
        n_activations = rows * sum(sizes[1:])
        if n_activations > MAX_ACTIVATIONS:
            raise InputError(f"a step of the network {net} on {rows} rows holds {n_activations:,} activations, more than "
                             f"the {MAX_ACTIVATIONS:,} this trainer takes; use smaller --hidden widths or --batch-size")
        if engine != "graph":
            return []
        nodes = graph_nodes_per_step(sizes, rows)
        if nodes > MAX_GRAPH_NODES:
            raise InputError(f"the graph engine would build ~{nodes:,} nodes per step, more than the {MAX_GRAPH_NODES:,} "
                             "it takes; use --engine manual, smaller --hidden widths or --batch-size")
        seconds = nodes * GRAPH_SECONDS_PER_NODE * train.steps
        if seconds > GRAPH_WARN_SECONDS:
            return [f"warning: the graph engine builds ~{nodes:,} nodes per step; {train.steps} steps will take "
                    f"~{seconds:.0f} s (--engine manual takes a fraction of that)"]
        return []

    def build(self, model_config: dict[str, Any], train: TrainConfig, engine: str) -> Setup:
        config = _validated(MLPConfig(**model_config))
        data = load_dataset(self.name, seed=config.seed)
        model = MLP(config)
        objective = ClassifierObjective(model, data, engine)
        net = "-".join(map(str, config.sizes))
        batch = "full batch" if not train.batch_size or train.batch_size >= len(data.y_train) else f"batch {train.batch_size}"
        summary = [data.summary(), f"network {net} {config.activation}, {config.loss} loss, {train.optimizer} lr {train.lr:g}, "
                   f"{batch}, {engine} engine, seed {config.seed}"]

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
    metrics = {name.replace("_", " "): (steps, [e[name] for e in state.evals]) for name in ("train_accuracy", "test_accuracy")
               if len(steps) > 1}  # with --eval-every: accuracy over the run on the right-hand axis
    files = {"loss_curve": str(plot_loss(state.losses, folder / "loss.png", metrics=metrics or None,
                                         title=f"{data.name}: training loss"))}
    if data.n_features == 2:
        accuracy = model.accuracy(data.X_test, data.y_test)
        files["decision_boundary"] = str(plot_decision_boundary(
            model.predict, data.X_train, data.y_train, folder / "decision_boundary.png", X_test=data.X_test,
            y_test=data.y_test, class_names=data.class_names, title=f"{data.name}: {net} MLP, test accuracy {100 * accuracy:.1f}%"))
    return files


TASKS: dict[str, TabularTask] = {
    "xor": TabularTask("xor", Recipe((4,), "tanh", "mse", TrainConfig(steps=500, lr=0.05)),
                       "the four XOR points; 2-4-1 tanh MLP, mse"),
    "moons": TabularTask("moons", Recipe((16, 16), "tanh", "cross_entropy", TrainConfig(steps=1000, lr=0.01)),
                         "two interleaved half circles, 300 noisy points; 2-16-16-2 MLP"),
    "spirals": TabularTask("spirals", Recipe((32, 32), "tanh", "cross_entropy", TrainConfig(steps=2000, lr=0.01)),
                           "three interleaved spirals; 2-32-32-3 MLP"),
    "iris": TabularTask("iris", Recipe((8,), "tanh", "cross_entropy", TrainConfig(steps=200, lr=0.01)),
                        "Fisher's iris flowers (shipped), 4 features, 3 species; 4-8-3 MLP"),
}
assert set(TASKS) == set(DATASET_NAMES), "every tabular data set has a task"
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> TabularTask:
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    return TASKS[name]


def task_table() -> list[dict[str, Any]]:
    """One entry per task: name, model kind, description and its recipe."""
    return [{"task": t.name, "model": t.kind, "description": t.description,
             "recipe": {"hidden": list(t.recipe.hidden), "activation": t.recipe.activation, "loss": t.recipe.loss,
                        "steps": t.recipe.train.steps, "optimizer": t.recipe.train.optimizer, "lr": t.recipe.train.lr}}
            for t in TASKS.values()]


# ---------------------------------------------------------------------------- running a task
@dataclass
class TrainReport:
    """What `train` did; `to_json()` is what `twograd train --json` prints."""

    task: str
    model_kind: str
    model_config: dict[str, Any]
    train_config: TrainConfig
    engine: str
    status: str  # finished | interrupted
    outcome: Outcome
    model: Any
    folder: Path | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        """The last evaluation (of the final parameters)."""
        return {k: v for k, v in self.outcome.state.evals[-1].items() if k != "step"}

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "model": self.model_kind, "model_config": self.model_config, "engine": self.engine,
            "train_config": self.train_config.to_dict(), "status": self.status, "steps": self.outcome.state.step,
            "resumed_from": self.outcome.resumed_from, "seconds": round(self.outcome.seconds, 4),
            **finite_or_none(self.metrics), "folder": str(self.folder) if self.folder else None, "files": self.files,
            "notes": self.notes,
        }


def _resume_settings(saved: SavedRun, task: str | None, model_options: dict[str, Any], train_options: dict[str, Any]) -> TrainConfig:
    """The saved run's TrainConfig with a new `steps` if given; InputError when anything else asked differs."""
    where = f"--resume {saved.folder}"
    if task is not None and task != saved.task:
        raise InputError(f"{where}: the run is of {saved.task!r}, not {task!r}")
    saved_model = {"hidden": list(saved.model_config.get("sizes", [0, 0])[1:-1]),
                   "activation": saved.model_config.get("activation"), "loss": saved.model_config.get("loss")}
    for key, value in model_options.items():
        given = list(value) if key == "hidden" else value
        if key not in saved_model:
            raise InputError(f"{where}: unknown model option {key!r}")
        if given != saved_model[key]:
            raise InputError(f"{where}: the run's {key} is {saved_model[key]!r}, not {given!r}; a resumed run keeps its settings")
    current = saved.train_config.to_dict()
    for key, value in train_options.items():
        if key != "steps" and value != current[key]:
            raise InputError(f"{where}: the run's {key} is {current[key]!r}, not {value!r}; a resumed run keeps its settings")
    steps = train_options.get("steps", saved.train_config.steps)
    return replace(saved.train_config, steps=steps).validate()


def train(
    task: str | None = None,
    *,
    model_options: dict[str, Any] | None = None,
    train_options: dict[str, Any] | None = None,
    engine: str | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    plots: bool = True,
    echo: Callable[[str], None] | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainReport:
    """Train `task` (or continue the run in `resume`) and return the report.

    model_options:  the task's model settings (MLP: hidden, activation, loss); the recipe fills the rest.
    train_options:  TrainConfig fields to change from the recipe (steps, lr, batch_size, seed, ...).
                    A resumed run keeps its settings; only `steps` may grow (or shrink) its target.
    engine:         "manual" (default) or "graph"; a resumed run keeps its own unless told.
    out:            a new run folder (refused if it holds a run, unless `overwrite`); with neither
                    `out` nor `resume`, nothing is written unless the run is interrupted, which
                    then keeps its state in a new folder under twograd-out/runs/.
    echo:           where to say what is happening (None: silent); warnings start with "warning:".

    Returns the report; raises InputError for bad settings (before step 1) and
    models.trainer.Diverged after keeping the last good state in the run folder, if any.
    """
    say = echo or (lambda _msg: None)
    model_options = {k: v for k, v in (model_options or {}).items() if v is not None}
    train_options = {k: v for k, v in (train_options or {}).items() if v is not None}
    if engine is not None and engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if out is not None and resume is not None:
        raise InputError("give --out (a new run) or --resume (continue one), not both")
    notes: list[str] = []
    saved: SavedRun | None = None
    if resume is not None:
        saved = load_run(resume)
        the_task = get_task(saved.task)
        if saved.model_kind != the_task.kind:
            raise CheckpointError(f"--resume {saved.folder}: the run holds a {saved.model_kind!r} model, task {saved.task!r} trains {the_task.kind!r}")
        train_config = _resume_settings(saved, task, model_options, train_options)
        model_config = saved.model_config
        recorded_engine = str(saved.extra.get("engine", "manual"))
        if engine is not None and engine != recorded_engine:
            notes.append(f"the run was trained with the {recorded_engine} engine, this session used {engine}: the same math, "
                         f"but the gradients round differently, so the run is not bit for bit one on the {recorded_engine} engine")
        engine = engine or recorded_engine
        folder: Path | None = saved.folder
    else:
        if task is None:
            raise InputError(f"name a task ({', '.join(TASK_NAMES)}) or --resume a run")
        the_task = get_task(task)
        try:
            train_config = replace(the_task.recipe.train, **train_options).validate()
        except TypeError as err:
            raise InputError(f"unknown training setting: {err}") from None
        model_config = the_task.model_config(model_options, train_config.seed)
        engine = engine or "manual"
        folder = None
    try:
        warnings = the_task.check_size(model_config, train_config, engine)  # before anything is allocated
    except InputError as err:
        if saved is not None:
            raise CheckpointError(f"--resume {saved.folder}: the recorded model does not fit: {err}") from None
        raise
    if out is not None:  # before step 1: a bad folder must not cost a whole run
        folder = prepare_out(out, overwrite=overwrite)
    for w in warnings:
        say(w)

    setup = the_task.build(model_config, train_config, engine)
    extra = {"engine": engine}

    def checkpoint_into(target: Path, state: TrainState, status: str) -> None:
        save_run(target, model_kind=the_task.kind, task=the_task.name, model_config=model_config, train_config=train_config,
                 params=setup.model.state_dict(), state=state, status=status, extra=extra)

    def on_checkpoint(state: TrainState) -> None:
        if folder is not None:
            checkpoint_into(folder, state, "finished" if state.step >= train_config.steps else "running")

    trainer = Trainer(setup.objective, setup.batches, train_config, on_checkpoint=None, callback=callback,
                      progress=progress, desc=the_task.name)
    if saved is not None:
        try:
            setup.model.load_state_dict(saved.params)
            trainer.restore(saved.state)
        except ValueError as err:
            raise CheckpointError(f"--resume {saved.folder}: cannot restore the run: {err}") from None
    for line in setup.summary:
        say(line)
    if saved is not None:
        say(f"resuming {saved.folder} at step {saved.state.step} of {train_config.steps}")
    trainer.on_checkpoint = on_checkpoint if train_config.checkpoint_every else None
    try:
        outcome = trainer.run()
    except Diverged as err:
        if folder is not None and err.state is not None and err.state_is_good:
            checkpoint_into(folder, err.state, "diverged")
            err.args = (f"{err.args[0]}; the last good state (step {err.state.step}) is kept in {folder}",)
        raise
    status = outcome.status
    notes += outcome.notes
    if status == "interrupted" and folder is None:
        folder = new_run_folder(the_task.name)
    files: dict[str, str] = {}
    if folder is not None:
        checkpoint_into(folder, outcome.state, "finished" if status == "finished" else "interrupted")
        files["checkpoint"] = str(folder / "checkpoint.npz")
        if plots:
            files.update(_pictures(setup, folder, outcome.state, notes))
        if status == "interrupted":
            notes.append(f"the run is saved in {folder}; continue with: twograd train --resume {folder}")
    if saved is not None and saved.state.step >= train_config.steps and status == "finished":
        notes.append(f"the run was already at step {saved.state.step}; raise --steps to train further")
    return TrainReport(the_task.name, the_task.kind, model_config, train_config, engine, status, outcome, setup.model,
                       folder, files, notes, setup.summary)


def format_metrics(metrics: dict[str, float]) -> str:
    """"final loss 9.1e-05  train accuracy 100.0%  ...": accuracies as percentages, the rest to 6 digits."""
    parts = []
    for name, value in metrics.items():
        shown = f"{100 * value:.1f}%" if name.endswith("accuracy") else f"{value:.6g}"
        parts.append(f"{name.replace('_', ' ')} {shown}")
    return "final " + "  ".join(parts)


def format_report(report: TrainReport) -> str:
    """The lines `twograd train` prints after the run (the summary lines are printed before it)."""
    o = report.outcome
    lines = [f"{format_metrics(report.metrics)}  ({o.state.step} steps, {o.seconds:.2f} s)"]
    lines += [f"wrote {path}  ({what.replace('_', ' ')})" for what, path in report.files.items()]
    lines += report.notes
    if report.folder is None:
        lines.append("add --out DIR to keep a checkpoint (to --resume) and pictures")
    return "\n".join(lines)


def _pictures(setup: Setup, folder: Path, state: TrainState, notes: list[str]) -> dict[str, str]:
    from viz.plots import PlotsUnavailable

    try:
        return setup.draw(folder, state)
    except PlotsUnavailable as err:
        notes.append(f"no pictures: {err}")
        return {}


# ---------------------------------------------------------------------------- tour
def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """XOR trained twice, by manual backprop and on the engine's graph, compared; then the
    graph of one training example's loss is drawn. True when both reach 100% accuracy."""
    from viz import draw

    reports = {}
    for engine in ENGINES:
        reports[engine] = r = train("xor", engine=engine)
        echo(f"{engine:>6} engine: final loss {r.metrics['loss']:.3e}, accuracy {100 * r.metrics['train_accuracy']:.0f}% "
             f"after {r.outcome.state.step} Adam steps ({r.outcome.seconds:.2f} s)")
    manual, graph = reports["manual"], reports["graph"]
    difference = float(np.max(np.abs(manual.model.flat_params - graph.model.flat_params)))
    echo(f"|loss(manual) - loss(graph)| = {abs(manual.metrics['loss'] - graph.metrics['loss']):.1e}; "
         f"largest parameter difference {difference:.1e}")
    echo("(same initialisation, same Adam updates; the two gradients differ only in rounding)")

    # The network as both runs started (after training every gradient is ~1e-11: nothing to see).
    data = load_dataset("xor")
    model = MLP(MLPConfig(**manual.model_config))
    loss, _ = model.graph_loss(data.X_train[1:2], data.y_train[1:2])
    loss.label = "loss"
    loss.backward()
    title = f"XOR, the 2-4-1 tanh MLP at initialisation, one example x = (0, 1), target 1: squared error {loss.data:.4f}"
    drawing = draw(loss, title=title)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = drawing.save_or_dot(out_dir / "xor_example_graph.svg", echo)
    echo(f"wrote {path}  (one example's loss as a graph: every node shows data and grad)")
    return manual.metrics["train_accuracy"] == 1.0 and graph.metrics["train_accuracy"] == 1.0
