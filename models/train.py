"""Training an MLP by full-batch gradient descent: the library function and `twograd train`.

    twograd train xor --json                     # 2-4-1 tanh MLP, 100% accuracy in ~0.1 s
    twograd train moons --out runs/moons         # checkpoint + loss curve + decision boundary
    twograd train moons --resume runs/moons --steps 2000
    twograd train xor --engine graph             # the same run on the scalar autodiff engine

Two engines compute the gradient of each step:

* manual: `MLP.fused_loss_and_grad`, numpy with the hand-derived backward (fast);
* graph:  `MLP.loss_and_grads_graph`, the loops-form network on `engine.Value`s (slow: one
  Python object per scalar operation, about 2 microseconds per node and step).

Both feed the same optimizer (`nn.optim`) over the same float64 parameters, from the same
initialisation, so the two runs differ only by the rounding of the gradients: their final
losses agree to ~1e-12.

A run is deterministic: full-batch updates use no random numbers after the
initialisation, so a checkpoint holds everything needed (parameters, optimizer moments
and step count, the loss history) to resume bit for bit. Ctrl-C stops at the end of the
current step and saves a checkpoint of it; a second Ctrl-C stops at once (with a
checkpoint of the last finished step, unless it lands inside an update).

Sizes are bounded before anything is allocated (MAX_PARAMETERS, MAX_ACTIVATIONS,
MAX_GRAPH_NODES), the output folder is checked before step 1, and a checkpoint's recorded
network is compared with its saved arrays before a model is built from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models.datasets import DATASET_NAMES, Dataset, load_dataset
from models.mlp import ACTIVATIONS, LOSSES, MLP, MLPConfig
from models.progress import ProgressBar
from nn.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint
from nn.optim import SGD, Adam, AdamW, Optimizer

ENGINES: tuple[str, ...] = ("manual", "graph")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "momentum")
MOMENTUM = 0.9  # the "momentum" optimizer: SGD with this momentum
CHECKPOINT_NAME = "checkpoint"  # <out>/checkpoint.npz + <out>/checkpoint.json
CHECKPOINT_KIND = "twograd-train-mlp"  # meta["kind"]: refuse checkpoints of anything else
CHECKPOINT_VERSION = 1
INTERRUPT_DIR = Path("twograd-out")  # where an interrupted run without --out is saved
#: measured cost of the graph engine per node and step (forward + backward), for the warning.
GRAPH_SECONDS_PER_NODE = 2e-6
GRAPH_WARN_SECONDS = 10.0
#: refuse larger networks: theta, its gradient and Adam's two moments are four float64
#: vectors of this length (1.6 GB), about what full-batch training on one machine can hold.
MAX_PARAMETERS = 50_000_000
#: refuse full-batch steps holding more activations (rows x hidden units) than this (400 MB).
MAX_ACTIVATIONS = 50_000_000
#: refuse graph-engine steps building more nodes than this (~120 bytes each: about 1.2 GB).
MAX_GRAPH_NODES = 10_000_000


@dataclass(frozen=True)
class Recipe:
    """Defaults that train a data set well in seconds from the default seed."""

    hidden: tuple[int, ...]  # hidden widths; sizes = [D, *hidden, K]
    activation: str
    loss: str
    optimizer: str
    lr: float
    steps: int


RECIPES: dict[str, Recipe] = {
    "xor": Recipe((4,), "tanh", "mse", "adam", 0.05, 500),
    "moons": Recipe((16, 16), "tanh", "cross_entropy", "adam", 0.01, 1000),
    "spirals": Recipe((32, 32), "tanh", "cross_entropy", "adam", 0.01, 2000),
    "iris": Recipe((8,), "tanh", "cross_entropy", "adam", 0.01, 200),
}


# ---------------------------------------------------------------------------- building blocks
def output_size(data: Dataset, loss: str) -> int:
    """K: one output for two classes under mse (0/1 target), else one per class."""
    return 1 if loss == "mse" and data.n_classes == 2 else data.n_classes


def make_config(
    data: Dataset, hidden: tuple[int, ...] | None = None, activation: str | None = None, loss: str | None = None, seed: int = 0
) -> MLPConfig:
    """The MLPConfig for `data`, with the data set's recipe filling what is not given."""
    recipe = RECIPES.get(data.name, RECIPES["moons"])
    loss = loss or recipe.loss
    hidden = tuple(hidden) if hidden is not None else recipe.hidden
    sizes = [data.n_features, *hidden, output_size(data, loss)]
    return MLPConfig(sizes=sizes, activation=activation or recipe.activation, loss=loss, seed=seed).validate()


def make_optimizer(name: str, model: MLP, lr: float) -> Optimizer:
    """An nn.optim optimizer over the model's flat parameter vector (one array: a lean step)."""
    params = [(model.theta, model.dtheta)]
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "adamw":
        return AdamW(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr)
    if name == "momentum":
        return SGD(params, lr=lr, momentum=MOMENTUM)
    raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def count_parameters(sizes: list[int]) -> int:
    """P = sum over layers of n_in*n_out + n_out (Python ints: no overflow for absurd sizes)."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


def check_size(config: MLPConfig, n_samples: int, engine: str = "manual") -> None:
    """ValueError if training `config` on `n_samples` rows would need more memory than the
    MAX_* limits allow; called before the model or any buffer is allocated."""
    net = "-".join(map(str, config.sizes))
    n_params = count_parameters(config.sizes)
    if n_params > MAX_PARAMETERS:
        raise ValueError(f"the network {net} has {n_params:,} parameters, more than the {MAX_PARAMETERS:,} "
                         "this trainer takes; use smaller --hidden widths")
    n_activations = n_samples * sum(config.sizes[1:])
    if n_activations > MAX_ACTIVATIONS:
        raise ValueError(f"a full-batch step of the network {net} on {n_samples} samples holds {n_activations:,} "
                         f"activations, more than the {MAX_ACTIVATIONS:,} this trainer takes; use smaller --hidden widths")
    if engine == "graph" and graph_nodes_per_step(config, n_samples) > MAX_GRAPH_NODES:
        raise ValueError(f"the graph engine would build ~{graph_nodes_per_step(config, n_samples):,} nodes per step, "
                         f"more than the {MAX_GRAPH_NODES:,} it takes; use --engine manual or smaller --hidden widths")


def check_seed(seed: Any, what: str = "--seed") -> int:
    """The seed as an int; ValueError unless it is an int >= 0 (numpy's generators need that)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be >= 0, got {seed!r}")
    return int(seed)


def prepare_out_dir(path: Path, flag: str = "--out") -> Path:
    """Create the output folder (and its parents) and check a file can be written in it,
    so that a bad --out fails before training, not after it. ValueError naming `flag`."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            where = "" if folder == path else f" ({folder})"
            raise ValueError(f"{flag} {path}: {'is' if folder == path else 'lies under'} a file{where}, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the probe: may we create files here?
            pass
    except OSError as err:
        raise ValueError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path


def graph_nodes_per_step(config: MLPConfig, n_samples: int) -> int:
    """About how many engine nodes one full-batch step of the graph engine builds.

    Per sample and layer: n_in*n_out products, as many sums, n_out activations; plus the loss.
    """
    per_sample = sum(2 * a * b + 2 * b for a, b in zip(config.sizes[:-1], config.sizes[1:])) + 3 * config.sizes[-1]
    return n_samples * per_sample + count_parameters(config.sizes)


@dataclass
class TrainResult:
    """What a run did; `to_json()` is the line `twograd train --json` prints."""

    model: MLP
    data: Dataset
    engine: str
    optimizer: str
    lr: float
    losses: list[float]  # loss at each step, before that step's update
    loss: float  # training loss of the final parameters (numpy forward, whichever engine trained)
    train_accuracy: float
    test_accuracy: float
    steps: int  # steps done in total (including any before a resume)
    seconds: float  # wall time of this session's training loop
    interrupted: bool = False
    resumed_from: int = 0  # step the run resumed at (0: a fresh run)
    checkpoint: Path | None = None
    files: dict[str, str] = field(default_factory=dict)  # what -> path of every file written
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.data.name,
            "engine": self.engine,
            "sizes": self.model.config.sizes,
            "activation": self.model.config.activation,
            "loss_fn": self.model.config.loss,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "seed": self.model.config.seed,
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "steps": self.steps,
            "seconds": round(self.seconds, 4),
            "interrupted": self.interrupted,
            "resumed_from": self.resumed_from,
            "files": self.files,
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------- checkpoints
def save_run(
    out_dir: Path, model: MLP, opt: Optimizer, *, dataset: str, optimizer: str, engine: str, losses: list[float], steps_target: int
) -> Path:
    """Write <out_dir>/checkpoint.npz + .json (atomically, via nn.checkpoint); return the base path.

    Arrays: the parameters ("param.W1", ...), the optimizer's buffers ("optim.m.0", ...) and
    the loss history ("losses"). Meta: the config, data set, optimizer and its step count,
    the engine. There is no random state to keep: full-batch steps draw no random numbers.
    """
    opt_state = opt.state_dict()
    arrays: dict[str, np.ndarray] = {f"param.{n}": p.copy() for n, p in model.named_parameters()}
    arrays.update({f"optim.{k}": v for k, v in opt_state["arrays"].items()})
    arrays["losses"] = np.asarray(losses, dtype=np.float64)
    meta = {
        "kind": CHECKPOINT_KIND,
        "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "dataset": dataset,
        "optimizer": optimizer,
        "optimizer_state": opt_state["meta"],
        "engine": engine,
        "step": len(losses),
        "steps_target": steps_target,
        "rng_state": None,
    }
    return save_checkpoint(Path(out_dir) / CHECKPOINT_NAME, arrays, meta)


def find_checkpoint(path: Path) -> Path:
    """The checkpoint base path for a run folder (or a checkpoint file's path); ValueError if none."""
    path = Path(path)
    if path.is_dir():
        base = path / CHECKPOINT_NAME
    elif path.suffix in (".npz", ".json") or path.with_name(path.name + ".json").is_file():
        base = path
    elif path.exists():
        raise ValueError(f"--resume {path}: is a file, not a run folder (give the folder that --out wrote)")
    else:
        raise ValueError(f"--resume {path}: no such run folder")
    _, json_path = checkpoint_paths(base)
    if not json_path.is_file():
        raise ValueError(f"--resume {path}: no checkpoint there (expected {json_path})")
    return base


@dataclass
class LoadedRun:
    config: MLPConfig
    dataset: str
    optimizer: str
    lr: float
    engine: str
    steps_target: int  # the --steps the run was started with
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path


def load_run(path: Path) -> LoadedRun:
    """Read and check a checkpoint written by `save_run`. CheckpointError on any problem.

    Nothing is built from the metadata before it is checked against the saved arrays: a
    tampered json cannot make the trainer allocate a network the checkpoint does not hold.
    """
    base = find_checkpoint(path)
    arrays, meta = load_checkpoint(base)  # never unpickles; damage -> CheckpointError
    if meta.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{base}.json: not a `twograd train` checkpoint (kind {meta.get('kind')!r}, expected {CHECKPOINT_KIND!r})")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{base}.json: unsupported train checkpoint version {meta.get('version')!r}")
    try:
        config = MLPConfig(**meta["config"]).validate()  # a dataclass of a few fields: allocates nothing
        check_seed(config.seed, "the recorded seed")
        dataset = str(meta["dataset"])
        optimizer = str(meta["optimizer"])
        lr = float(meta["optimizer_state"]["hyperparameters"]["lr"])
        engine = str(meta.get("engine", "manual"))
        step = meta["step"]
        optim_step = meta["optimizer_state"]["step"]
        steps_target = meta["steps_target"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{base}.json: incomplete or invalid training metadata: {err}") from None
    if dataset not in DATASET_NAMES:
        raise CheckpointError(f"{base}.json: unknown data set {dataset!r} (known: {', '.join(DATASET_NAMES)})")
    if optimizer not in OPTIMIZERS:
        raise CheckpointError(f"{base}.json: unknown optimizer {optimizer!r} (known: {', '.join(OPTIMIZERS)})")
    if engine not in ENGINES:
        raise CheckpointError(f"{base}.json: unknown engine {engine!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise CheckpointError(f"{base}.json: the recorded lr must be a positive number, got {lr!r}")
    for what, value, low in (("step", step, 0), ("steps_target", steps_target, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise CheckpointError(f"{base}.json: the recorded {what} must be an int >= {low}, got {value!r}")
    if optim_step != step:
        raise CheckpointError(f"{base}.json: the optimizer's step {optim_step!r} differs from the run's step {step}")
    _check_saved_params(base, config, arrays)
    losses = arrays.get("losses")
    if losses is None or losses.ndim != 1 or losses.shape[0] != step:
        raise CheckpointError(f"{base}.npz: the loss history does not match the recorded step {step}")
    return LoadedRun(config, dataset, optimizer, lr, engine, steps_target, arrays, meta, base)


def _check_saved_params(base: Path, config: MLPConfig, arrays: dict[str, np.ndarray]) -> None:
    """CheckpointError unless the npz holds exactly the float64 parameters of `config`'s network
    (W_l (sizes[l-1], sizes[l]), b_l (sizes[l],)); absurd sizes are refused before any comparison."""
    n_params = count_parameters(config.sizes)
    if n_params > MAX_PARAMETERS:
        raise CheckpointError(f"{base}.json: the recorded network {config.sizes} would have {n_params:,} parameters "
                              f"(this trainer takes at most {MAX_PARAMETERS:,}); the metadata is damaged or not from twograd")
    expected = {}
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:]), 1):
        expected[f"param.W{l}"] = (n_in, n_out)
        expected[f"param.b{l}"] = (n_out,)
    saved = {k: a for k, a in arrays.items() if k.startswith("param.")}
    mismatched = sorted(set(expected) ^ set(saved)) + sorted(
        k for k in expected if k in saved and (saved[k].shape != expected[k] or saved[k].dtype != np.float64)
    )
    if mismatched:
        shapes = ", ".join(f"{k[len('param.'):]} {list(saved[k].shape)}" for k in sorted(saved))
        raise CheckpointError(f"{base}: the recorded network {config.sizes} does not match the saved parameters "
                              f"({shapes or 'none'}); the checkpoint is damaged")
    bad = sorted(k[len("param."):] for k in expected if not np.isfinite(saved[k]).all())
    if bad:
        raise CheckpointError(f"{base}.npz: the saved parameters {', '.join(bad)} hold NaN or infinite values; the checkpoint is damaged")


def _restore(run: LoadedRun, model: MLP, opt: Optimizer) -> list[float]:
    """Load parameters and optimizer state into `model`/`opt`; return the loss history."""
    params = {k[len("param.") :]: v for k, v in run.arrays.items() if k.startswith("param.")}
    moments = {k[len("optim.") :]: v for k, v in run.arrays.items() if k.startswith("optim.")}
    try:
        model.load_state_dict(params)
        opt.load_state_dict({"meta": run.meta["optimizer_state"], "arrays": moments})
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{run.path}: cannot restore the run: {err}") from None
    return run.arrays["losses"].tolist()


# ---------------------------------------------------------------------------- Ctrl-C
class _SigintLatch:
    """While active (main thread only), the first Ctrl-C only sets `requested`; the loop
    stops at the end of the step, so the saved state is never half-updated. A second
    Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_SigintLatch":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------- training
def _check_positive(name: str, value: Any, kind: type) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def train(
    config: MLPConfig | None = None,
    dataset: str | Dataset | None = None,
    steps: int | None = None,
    lr: float | None = None,
    engine: str | None = None,
    seed: int | None = None,
    out_dir: Path | None = None,
    resume: Path | None = None,
    quiet: bool = False,
    progress: Callable[[int, float], None] | None = None,
    *,
    optimizer: str | None = None,
    echo: Callable[[str], None] | None = None,
    plots: bool = True,
) -> TrainResult:
    """Train an MLP on `dataset` for `steps` full-batch steps in total; return a TrainResult.

    config:    the network (default: the data set's recipe, see RECIPES); `seed` overrides its seed.
               The seed (an int >= 0) also generates/splits the data set.
    dataset:   a name from DATASET_NAMES (default "xor") or a Dataset.
    steps, lr, optimizer: default from the recipe. `steps` counts from the start of the run,
               so a resumed run continues up to `steps` (default: the target it was started with).
    engine:    "manual" (numpy, hand-derived backward; the default) or "graph" (engine.Value
               graph). A resumed run keeps the checkpoint's engine unless another is given;
               switching is allowed (the same math) and noted in `notes`, as the rounding differs.
    out_dir:   if given, write the checkpoint and pictures there (created and checked first).
    resume:    a folder (or checkpoint path) written by an earlier run: continue it. The
               network, data set, optimizer and lr come from the checkpoint; giving different
               ones is a ValueError.
    quiet:     no progress bar (it is drawn only on a terminal anyway).
    progress:  called as progress(step, loss) after every finished step; raising
               KeyboardInterrupt from it stops the run like Ctrl-C.
    echo:      where to print what is happening (None: silent).

    An interrupted run saves a checkpoint of its last finished step (into `out_dir`, or
    twograd-out/train-<data set>) and returns with `interrupted=True`. Networks too large
    for memory (see check_size), a bad `out_dir` and a diverging run are ValueErrors.
    """
    say = echo or (lambda _msg: None)
    notes: list[str] = []
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if seed is not None:
        seed = check_seed(seed, "seed")
    loaded: LoadedRun | None = None
    if resume is not None:
        loaded = load_run(Path(resume))
        name = dataset.name if isinstance(dataset, Dataset) else dataset
        asked = {"data set": (name, loaded.dataset), "optimizer": (optimizer, loaded.optimizer), "lr": (lr, loaded.lr),
                 "seed": (seed, loaded.config.seed), "network": (config.to_dict() if config else None, loaded.config.to_dict())}
        for what, (given, saved) in asked.items():
            if given is not None and given != saved:
                raise ValueError(f"--resume {resume}: the checkpoint's {what} is {saved!r}, not {given!r}; a resumed run keeps its settings")
        config, dataset, optimizer, lr, seed = loaded.config, loaded.dataset, loaded.optimizer, loaded.lr, loaded.config.seed
        if engine is None:
            engine = loaded.engine
        elif engine != loaded.engine:
            notes.append(f"the checkpoint was trained with the {loaded.engine} engine, this session used {engine}: "
                         "the same math, but the gradients round differently, so the run is not bit for bit "
                         f"one on the {loaded.engine} engine")
    engine = engine or "manual"

    if config is not None:
        check_seed(config.seed, "seed")
    data_seed = seed if seed is not None else (config.seed if config else 0)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset or "xor", seed=data_seed)
    recipe = RECIPES.get(data.name, RECIPES["moons"])
    if config is None:
        config = make_config(data, seed=data_seed)
    elif seed is not None and seed != config.seed:
        config = MLPConfig(**{**config.to_dict(), "seed": seed})
    config.validate()
    if config.sizes[0] != data.n_features:
        raise ValueError(f"the network takes {config.sizes[0]} inputs but {data.name} has {data.n_features} features")
    if config.sizes[-1] != output_size(data, config.loss) and not (config.loss == "mse" and config.sizes[-1] == data.n_classes):
        raise ValueError(f"the network has {config.sizes[-1]} outputs; {data.name} with {config.loss} needs {output_size(data, config.loss)}")
    if steps is None:  # a resumed run goes on to the target it was started with
        steps = loaded.steps_target if loaded else recipe.steps
    lr = recipe.lr if lr is None else lr
    optimizer = optimizer or recipe.optimizer
    _check_positive("steps", steps, int)
    _check_positive("lr", lr, float)
    steps = int(steps)
    X, y = data.X_train, data.y_train
    check_size(config, len(y), engine)  # before anything of the network's size is allocated
    if out_dir is not None:  # before step 1: a bad folder must not cost a whole run
        out_dir = prepare_out_dir(Path(out_dir))
    elif loaded is not None:
        out_dir = prepare_out_dir(loaded.path.parent, "--resume")

    model = MLP(config)
    opt = make_optimizer(optimizer, model, lr)
    losses: list[float] = _restore(loaded, model, opt) if loaded else []
    start = len(losses)

    if engine == "graph":
        estimate = graph_nodes_per_step(config, len(y)) * GRAPH_SECONDS_PER_NODE * max(steps - start, 0)
        if estimate > GRAPH_WARN_SECONDS:
            say(f"warning: the graph engine builds ~{graph_nodes_per_step(config, len(y)):,} nodes per step; "
                f"{steps - start} steps will take ~{estimate:.0f} s (--engine manual takes a fraction of a second)")
    targets = model.targets(y)

    def manual_step() -> float:
        return model.fused_loss_and_grad(X, targets)  # writes dtheta

    def graph_step() -> float:
        model.zero_grad()
        try:
            return model.loss_and_grads_graph(X, y)  # adds into dtheta
        except (ValueError, OverflowError):
            # The loops pieces refuse non-finite inputs and `**` raises on overflow, where numpy
            # would give an inf loss: report overflow as the divergence it is, anything else as is.
            if _overflows(model, X):
                return math.inf
            raise

    step_fn = manual_step if engine == "manual" else graph_step
    say(f"{data.summary()}")
    say(f"network {'-'.join(map(str, config.sizes))} {config.activation}, {config.loss} loss, {optimizer} lr {lr:g}, "
        f"{engine} engine, seed {config.seed}" + (f"; resuming at step {start}" if start else ""))

    interrupted = torn = False
    # True from the start of an update until its loss is recorded: an interrupt inside that
    # window would leave parameters, optimizer state and loss history out of step.
    updating = False
    began = time.perf_counter()
    bar = ProgressBar(steps, enabled=False if quiet else None, start_step=start)
    # A diverging run overflows on its way to a non-finite loss; that loss is the one report.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            with _SigintLatch() as latch:
                for k in range(start, steps):
                    loss = step_fn()
                    if not math.isfinite(loss):
                        raise ValueError(f"training diverged at step {k + 1} (loss {loss}); try a smaller --lr")
                    updating = True
                    opt.step()
                    losses.append(loss)  # before `updating` clears: saved state = k + 1 updates, k + 1 losses
                    updating = False
                    bar.update(k + 1, loss)
                    if progress is not None:
                        progress(k + 1, loss)
                    if latch.requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
            torn = updating  # a second Ctrl-C inside the optimizer's update: the state is half-written
        finally:
            bar.close()
        seconds = time.perf_counter() - began
        # The last update may overflow with no later step to see it: check before the pieces
        # of model.loss refuse non-finite values with a less telling message.
        overflowed = _overflows(model, X)
        final_loss = math.nan if overflowed else model.loss(X, y)
        if not math.isfinite(final_loss) and not torn:
            raise ValueError(f"training diverged at step {len(losses)} (final loss {final_loss}); try a smaller --lr")
        result = TrainResult(
            model=model, data=data, engine=engine, optimizer=optimizer, lr=lr, losses=losses,
            loss=final_loss, train_accuracy=model.accuracy(X, y), test_accuracy=model.accuracy(data.X_test, data.y_test),
            steps=len(losses), seconds=seconds, interrupted=interrupted, resumed_from=start, notes=notes,
        )
    if interrupted and torn:
        result.notes.append(f"interrupted during the update of step {len(losses) + 1}: no checkpoint saved")
        return result
    if interrupted and out_dir is None:
        out_dir = INTERRUPT_DIR / f"train-{data.name}"
    if out_dir is not None:
        try:
            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            base = save_run(out_dir, model, opt, dataset=data.name, optimizer=optimizer, engine=engine, losses=losses, steps_target=steps)
        except OSError as err:
            if not interrupted:
                raise ValueError(f"cannot write the checkpoint into {out_dir}: {err.strerror or err}") from None
            result.notes.append(f"interrupted after step {len(losses)} of {steps}; the checkpoint could not be "
                                f"written into {out_dir} ({err.strerror or err})")
            return result
        result.checkpoint = base
        result.files["checkpoint"] = f"{base}.npz"
        if interrupted:
            result.notes.append(f"interrupted after step {len(losses)} of {steps}; checkpoint saved to {base}.npz "
                                f"(continue with: twograd train --resume {out_dir} --steps {steps})")
        elif plots:
            _draw(result, out_dir)
    return result


def _overflows(model: MLP, X: np.ndarray) -> bool:
    """True when a pre-activation a_l = h_{l-1} W_l + b_l on X, or its square, is not finite
    in float64 (call under np.errstate: it overflows on purpose)."""
    params = model.param_list
    h = X
    for l in range(0, len(params), 2):
        a = h @ params[l] + params[l + 1]  # (B, H_l)
        if not np.isfinite(a * a).all():
            return True
        if model.activation == "tanh":
            h = np.tanh(a)
        elif model.activation == "relu":
            h = np.maximum(a, 0.0)
        else:
            h = 0.5 * (1.0 + np.tanh(0.5 * a))  # sigmoid(a), without exp's overflow
    return False


def _draw(result: TrainResult, out_dir: Path) -> None:
    """Loss curve and (2-D data) decision boundary into `out_dir`, or a note saying how to get them."""
    from viz.plots import PlotsUnavailable, plot_decision_boundary, plot_loss

    data, model = result.data, result.model
    try:
        result.files["loss_curve"] = str(plot_loss(result.losses, out_dir / "loss.png", title=f"{data.name}: training loss"))
        if data.n_features == 2:
            result.files["decision_boundary"] = str(
                plot_decision_boundary(
                    model.predict, data.X_train, data.y_train, out_dir / "decision_boundary.png",
                    X_test=data.X_test, y_test=data.y_test, class_names=data.class_names,
                    title=f"{data.name}: {'-'.join(map(str, model.config.sizes))} MLP, test accuracy {100 * result.test_accuracy:.1f}%",
                )
            )
    except PlotsUnavailable as err:
        result.notes.append(f"no pictures: {err}")


# ---------------------------------------------------------------------------- command line
def _hidden(text: str) -> tuple[int, ...]:
    """"16,16" -> (16, 16); "none" -> () (no hidden layer: logistic regression)."""
    if text.strip().lower() == "none":
        return ()
    if not text.strip():
        raise argparse.ArgumentTypeError("--hidden needs widths like 16,16 (or 'none' for no hidden layer), got an empty value")
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated widths like 16,16, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"--hidden widths must be positive, got {text!r}")
    return widths


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `twograd train` on the CLI's subparsers; returns the new parser."""
    recipes = "; ".join(
        f"{n}: {'-'.join(map(str, r.hidden))} {r.activation} {r.loss} {r.optimizer} lr {r.lr:g} {r.steps} steps"
        for n, r in RECIPES.items()
    )
    p = subparsers.add_parser(
        "train",
        help="train an MLP by manual backprop (or on the autodiff graph) on xor, moons, spirals or iris",
        description="Train a small MLP with full-batch steps. Defaults per data set (" + recipes + "). "
        "With --out DIR: a checkpoint (npz + json) and pictures go to DIR; --resume DIR continues a run; "
        "Ctrl-C saves the last finished step.",
    )
    p.add_argument("dataset", nargs="?", metavar="DATASET", help=f"one of: {', '.join(DATASET_NAMES)} (optional with --resume)")
    p.add_argument("--steps", type=int, default=None, help="total number of steps (default: per data set)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: per data set)")
    p.add_argument("--hidden", type=_hidden, default=None, metavar="W[,W]", help="hidden layer widths, e.g. 16,16 (default: per data set)")
    p.add_argument("--activation", default=None, metavar="NAME", help=f"hidden activation: {', '.join(ACTIVATIONS)} (default: tanh)")
    p.add_argument("--loss", default=None, metavar="NAME", help=f"loss: {', '.join(LOSSES)} (default: per data set)")
    p.add_argument("--optimizer", default=None, metavar="NAME", help=f"one of: {', '.join(OPTIMIZERS)} (default: adam)")
    p.add_argument("--seed", type=int, default=None, help="seed (>= 0) of the initial weights and of the data set (default 0)")
    p.add_argument("--engine", default=None, metavar="NAME",
                   help="manual (numpy, hand-derived backward; default, or the checkpoint's engine with --resume) or graph (engine.Value, slow)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="write the checkpoint and pictures into DIR")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run saved in DIR (up to --steps in total)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the results (loss, accuracies, steps, seconds)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar and no messages (errors, and where Ctrl-C saved the run, still go to stderr)")
    p.set_defaults(func=run)
    return p


def _check_choice(what: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def run(args: argparse.Namespace) -> int:
    """`twograd train`: 0 on success, 2 on bad arguments or too little memory (one error line),
    130 when interrupted."""
    try:
        return _run(args)
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        print(f"twograd train: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print("twograd train: error: out of memory; use smaller --hidden widths (or --engine manual)", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.dataset is None and args.resume is None:
        raise ValueError(f"name a data set ({', '.join(DATASET_NAMES)}) or --resume a run")
    _check_choice("dataset", args.dataset, DATASET_NAMES)
    _check_choice("activation", args.activation, tuple(ACTIVATIONS))
    _check_choice("loss", args.loss, LOSSES)
    _check_choice("optimizer", args.optimizer, OPTIMIZERS)
    _check_choice("engine", args.engine, ENGINES)
    if args.steps is not None:
        _check_positive("--steps", args.steps, int)
    if args.lr is not None:
        _check_positive("--lr", args.lr, float)
    if args.seed is not None:
        check_seed(args.seed, "--seed")

    quiet_text = args.quiet or args.json

    def echo(msg: str) -> None:
        if not quiet_text:
            print(msg)

    def warn(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    config = None
    if args.resume is None:
        data = load_dataset(args.dataset, seed=args.seed or 0)
        config = make_config(data, hidden=args.hidden, activation=args.activation, loss=args.loss, seed=args.seed or 0)
    elif args.hidden is not None or args.activation is not None or args.loss is not None:
        saved = load_run(args.resume).config
        wanted = {"activation": args.activation, "loss": args.loss}
        for key, value in wanted.items():
            if value is not None and value != getattr(saved, key):
                raise ValueError(f"--resume {args.resume}: the checkpoint's {key} is {getattr(saved, key)!r}, not {value!r}")
        if args.hidden is not None and list(args.hidden) != saved.sizes[1:-1]:
            raise ValueError(f"--resume {args.resume}: the checkpoint's hidden widths are {saved.sizes[1:-1]}, not {list(args.hidden)}")

    def say(msg: str) -> None:
        (warn if msg.startswith("warning:") else echo)(msg)

    result = train(
        config, args.dataset, steps=args.steps, lr=args.lr, engine=args.engine, seed=args.seed,
        out_dir=args.out, resume=args.resume, quiet=args.quiet or not sys.stderr.isatty(),
        optimizer=args.optimizer, echo=say,
    )
    if result.resumed_from and result.resumed_from >= result.steps and not result.interrupted:
        echo(f"the checkpoint is already at step {result.resumed_from}; raise --steps to train further")
    echo(
        f"final loss {result.loss:.6g}  train accuracy {100 * result.train_accuracy:.1f}%  "
        f"test accuracy {100 * result.test_accuracy:.1f}%  ({result.steps} steps, {result.seconds:.2f} s)"
    )
    for what, path in result.files.items():
        echo(f"wrote {path}  ({what.replace('_', ' ')})")
    for note in result.notes:
        if result.interrupted:  # where the run was saved, or that it was not: said even with --quiet
            print(note, file=sys.stderr)
        else:
            echo(note)
    if args.out is None and args.resume is None and not result.interrupted:  # a tip for people, not in the JSON
        pictures = "loss curve" + (" and decision boundary" if result.data.n_features == 2 else "")
        echo(f"add --out DIR to keep a checkpoint (to --resume) and pictures ({pictures})")
    if args.json:
        print(json.dumps(result.to_json()))
    if result.interrupted:
        return 130
    return 0


# ---------------------------------------------------------------------------- tour
def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """XOR trained twice, by manual backprop and on the engine's graph, compared; then the
    graph of one training example's loss is drawn. True when both reach 100% accuracy."""
    from viz import GraphvizNotFound, draw

    results = {}
    for engine in ENGINES:
        results[engine] = r = train(dataset="xor", engine=engine)
        echo(f"{engine:>6} engine: final loss {r.loss:.3e}, accuracy {100 * r.train_accuracy:.0f}% "
             f"after {r.steps} Adam steps ({r.seconds:.2f} s)")
    manual, graph = results["manual"], results["graph"]
    echo(f"|loss(manual) - loss(graph)| = {abs(manual.loss - graph.loss):.1e}; "
         f"largest parameter difference {float(np.max(np.abs(manual.model.theta - graph.model.theta))):.1e}")
    echo("(same initialisation, same Adam updates; the two gradients differ only in rounding)")

    # The network as both runs started (after training every gradient is ~1e-11: nothing to see).
    data = manual.data
    model = MLP(manual.model.config)
    loss, _ = model.graph_loss(data.X_train[1:2], data.y_train[1:2])
    loss.label = "loss"
    loss.backward()
    title = f"XOR, the 2-4-1 tanh MLP at initialisation, one example x = (0, 1), target 1: squared error {loss.data:.4f}"
    drawing = draw(loss, title=title)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        path = drawing.save(out_dir / "xor_example_graph.svg")
    except GraphvizNotFound as err:
        path = drawing.save(out_dir / "xor_example_graph.dot")
        echo(f"({err})")
    echo(f"wrote {path}  (one example's loss as a graph: every node shows data and grad)")
    return manual.train_accuracy == 1.0 and graph.train_accuracy == 1.0
