"""One training loop for every model: it knows an objective, a batch source, an optimizer and a config.

    objective = SomeObjective(model, data)                 # loss_and_grad(batch) -> float, evaluate() -> dict
    trainer = Trainer(objective, batches, TrainConfig(steps=1000, lr=0.01, batch_size=32))
    outcome = trainer.run()                                # "finished" or "interrupted"; Diverged is raised

What the trainer owns, so that no model has to write it again:

* the random generator (`numpy.random.Generator`, PCG64, seeded by `TrainConfig.seed`): the batch
  source draws from it, and its state is in every checkpoint, so a resumed run draws the same
  batches as an uninterrupted one;
* the optimizer over the model's one flat parameter vector (`model.flat_params`, `model.flat_grads`),
  the learning-rate schedule and gradient clipping;
* Ctrl-C: the first one asks the loop to stop after the step it is in; a second one stops at once,
  but never inside an update. Either way the state the trainer reports is whole: k updates, k
  losses and the generator as it was after step k. Resuming from it ends bit for bit where the
  uninterrupted run ends;
* divergence: a non-finite loss or gradient at step k stops the run before that step's update
  (the state of k - 1 steps is kept) and raises `Diverged`, naming the step;
* progress (tqdm: an in-place bar in a terminal, a widget in a notebook, on stderr), the history
  of losses and of evaluations, and when to checkpoint (the caller says where: `on_checkpoint`).

One step k (0-based):

    rng_before = state of the generator
    batch = batches(rng)                      # e.g. row indices; None for the full batch
    grads <- 0;  loss = objective.loss_and_grad(batch)
    [clip the global gradient norm]
    lr_k = schedule(k);  optimizer update     # the only place parameters change
    losses.append(loss)
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from engine.errors import InputError, RunError
from nn.module import Module
from nn.optim import SCHEDULES, SGD, Adam, AdamW, Optimizer, clip_grad_norm, scheduled_lr

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "momentum")
MOMENTUM = 0.9  # the "momentum" optimizer: SGD with this momentum
#: the progress bar's loss is refreshed at most this often (seconds): tqdm's own default rate.
PROGRESS_INTERVAL = 0.1


@dataclass
class TrainConfig:
    """How to train (not what): every field is saved in the run folder and restored by --resume."""

    steps: int = 1000  # total optimizer updates of the run; a resumed run continues up to this
    batch_size: int | None = None  # examples per step, drawn without replacement; None: the full batch
    optimizer: str = "adam"  # adam | adamw | sgd | momentum (SGD with momentum 0.9)
    lr: float = 0.01  # peak learning rate (after warm-up, before decay)
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr over the first updates
    decay: str = "constant"  # constant | linear | cosine: from lr down to min_lr at the last step
    min_lr: float = 0.0  # the floor the decay ends at
    weight_decay: float = 0.0  # L2 in the gradient (adam, sgd) or decoupled (adamw)
    grad_clip: float | None = None  # clip the global gradient norm to this; None: no clipping
    eval_every: int = 0  # call objective.evaluate() every N steps (0: only at the end)
    checkpoint_every: int = 0  # hand a checkpoint to on_checkpoint every N steps (0: at the end only)
    seed: int = 0  # seeds the trainer's generator (batches, anything else random per step)
    # Adam's / AdamW's (b1, b2): the decay rates of the gradient's running mean and of its square.
    # Adam's own defaults; the micro GPT preset uses (0.85, 0.99), which forget faster.
    betas: tuple[float, float] = (0.9, 0.999)

    def validate(self) -> TrainConfig:
        """Return self, or raise InputError naming the bad field and what it must be."""
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise InputError(f"betas must be a pair (b1, b2), got {self.betas!r}")
        for i, b in enumerate(self.betas):
            _check_float(f"betas[{i}]", b)
            if not 0.0 <= b < 1.0:
                raise InputError(f"betas[{i}] must be in [0, 1), got {b!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))  # a JSON list comes back as a tuple
        for name in ("steps",):
            _check_int(name, getattr(self, name), low=1)
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "seed"):
            _check_int(name, getattr(self, name), low=0)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, low=1)
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.decay not in SCHEDULES:
            raise InputError(f"unknown decay {self.decay!r}; choose one of: {', '.join(SCHEDULES)}")
        _check_float("lr", self.lr, positive=True)
        _check_float("min_lr", self.min_lr)
        _check_float("weight_decay", self.weight_decay)
        if self.min_lr > self.lr:
            raise InputError(f"min_lr ({self.min_lr:g}) must not exceed lr ({self.lr:g})")
        if self.grad_clip is not None:
            _check_float("grad_clip", self.grad_clip, positive=True)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from `to_dict()`'s output (unknown keys are refused, missing ones take defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings {', '.join(unknown)}")
        return cls(**data).validate()


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be a whole number >= {low}, got {value!r}")


def _check_float(name: str, value: Any, positive: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise InputError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number, got {value!r}")


class Objective(Protocol):
    """What the trainer trains. `model` owns the parameters (`flat_params`, `flat_grads`)."""

    @property
    def model(self) -> Module:  # read-only here, so an objective may hold a GPT or an MLP
        """The model that owns the parameters."""
        ...

    def loss_and_grad(self, batch: Any) -> float:
        """The loss on `batch`, with its gradient written or added into the model's grads (zeroed first)."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Metrics of the current parameters (held-out loss, accuracy, ...): name -> number."""
        ...


#: A batch source: given the trainer's generator, the next batch (anything the objective takes).
BatchSource = Callable[[np.random.Generator], Any]


def full_batch(rng: np.random.Generator) -> None:
    """The batch source of full-batch training: it draws nothing, and None means every example."""
    return None


@dataclass
class RowBatches:
    """`batch_size` distinct row indices out of `n` per step (None when the batch is everything)."""

    n: int
    batch_size: int | None

    def __call__(self, rng: np.random.Generator) -> np.ndarray | None:
        if self.batch_size is None or self.batch_size >= self.n:
            return None  # the full batch: no random numbers drawn, as before minibatches existed
        return rng.choice(self.n, size=self.batch_size, replace=False)  # (batch_size,)


@dataclass
class TrainState:
    """Everything besides the parameters that a checkpoint holds, at a step boundary."""

    step: int  # updates done
    losses: list[float]  # the loss of every step, before its update
    evals: list[dict[str, float]]  # {"step": k, metric: value, ...} at each evaluation
    rng_state: dict[str, Any]  # the generator's state after step `step` (JSON-able)
    optimizer: dict[str, Any]  # Optimizer.state_dict(): {"meta": ..., "arrays": ...}
    lr: float  # the learning rate of the last update (for the record)


@dataclass
class Outcome:
    """What `Trainer.run` did this session."""

    status: str  # "finished" | "interrupted"
    state: TrainState
    resumed_from: int  # the step this session started at
    seconds: float  # wall time of this session's loop
    notes: list[str] = field(default_factory=list)
    # Wall time of each training step of this session (batch, loss and gradient, clipping, the
    # update); evaluations, checkpoints and the progress bar are outside it.
    step_seconds: list[float] = field(default_factory=list)

    @property
    def ms_per_step(self) -> float | None:
        """The mean training-step time of this session in milliseconds (None when no step ran).

        A mean, not a median, so that steps x ms_per_step is the training time, as a
        reference timed over a whole run (seconds for N steps / N) is."""
        return 1000.0 * sum(self.step_seconds) / len(self.step_seconds) if self.step_seconds else None


ENGINES: tuple[str, ...] = ("manual", "graph")  # how a task computes its gradient: numpy, or the engine's graph


@dataclass
class Setup:
    """What a task hands the trainer, and how it reports and draws the result."""

    model: Module  # owns flat_params / flat_grads
    objective: Objective
    batches: Callable[[np.random.Generator], Any]
    summary: list[str]  # lines describing the data and the model
    draw: Callable[[Any, TrainState], dict[str, str]]  # pictures into a folder -> {what: path}


class Diverged(RunError):
    """A non-finite loss or gradient stopped the run; `.state` is the last good state (k - 1 steps)."""

    def __init__(self, message: str, state: TrainState | None = None, *, state_is_good: bool = True) -> None:
        super().__init__(message)
        self.state = state
        #: False when the last update itself made the parameters non-finite: nothing is checkpointed then.
        self.state_is_good = state_is_good


def make_optimizer(config: TrainConfig, params: np.ndarray, grads: np.ndarray) -> Optimizer:
    """The config's optimizer over one flat parameter vector (a handful of array operations a step)."""
    pair = [(params, grads)]
    if config.optimizer == "adam":
        return Adam(pair, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return AdamW(pair, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.optimizer == "momentum":
        return SGD(pair, lr=config.lr, momentum=MOMENTUM)
    return SGD(pair, lr=config.lr)


class _SigintLatch:
    """While active (main thread, default handler only), the first Ctrl-C only sets `requested`;
    a second raises KeyboardInterrupt at once, except between `enter_critical()` and
    `leave_critical()`, where it waits until the block is done. A host program's own SIGINT handler is left alone."""

    def __init__(self) -> None:
        self.requested = False
        self._in_critical = False
        self._pending = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.requested = True
        elif self._in_critical:
            self._pending = True
        else:
            raise KeyboardInterrupt

    def enter_critical(self) -> None:
        self._in_critical = True

    def leave_critical(self) -> None:
        """End the critical block; a Ctrl-C that came inside it takes effect now."""
        self._in_critical = False
        if self._pending:
            raise KeyboardInterrupt

    def __enter__(self) -> _SigintLatch:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def in_notebook() -> bool:
    """True inside a running Jupyter kernel (not merely when ipykernel was imported, as a test may do)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and (
        type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in getattr(shell, "config", {})
    )


def progress_wanted(quiet: bool) -> bool:
    """Draw a bar unless told not to: in a terminal (stderr is a tty) or in a notebook."""
    return not quiet and (sys.stderr.isatty() or in_notebook())


def progress_bar_class() -> Any:
    """tqdm's widget bar in a notebook that has ipywidgets (the `notebook` extra), its text bar
    everywhere else. tqdm.auto would pick the widget without ipywidgets and warn
    "IProgress not found" on every run; this asks for the widget only when it can be drawn."""
    if in_notebook():
        import importlib.util

        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


class Trainer:
    """The loop (see the module docstring). `on_checkpoint(state)` is called every
    `checkpoint_every` steps and at the end; the caller writes the run folder.
    `callback(step, loss)` runs after every finished step (raising KeyboardInterrupt from it
    stops the run like Ctrl-C)."""

    def __init__(
        self,
        objective: Objective,
        batches: BatchSource,
        config: TrainConfig,
        *,
        on_checkpoint: Callable[[TrainState], None] | None = None,
        callback: Callable[[int, float], None] | None = None,
        progress: bool = False,
        desc: str = "train",
    ) -> None:
        self.objective = objective
        self.batches = batches
        self.config = config.validate()
        self.model = objective.model
        self.rng = np.random.default_rng(config.seed)
        self.optimizer = make_optimizer(self.config, self.model.flat_params, self.model.flat_grads)
        self.losses: list[float] = []
        self.evals: list[dict[str, float]] = []
        self.step = 0
        self.lr = self.config.lr
        self.on_checkpoint = on_checkpoint
        self.callback = callback
        self.progress = progress
        self.desc = desc

    # ------------------------------------------------------------------ state
    def state(self) -> TrainState:
        """A copy of the current state (call it between steps)."""
        return TrainState(
            step=self.step,
            losses=list(self.losses),
            evals=[dict(e) for e in self.evals],
            rng_state=_json_rng_state(self.rng),
            optimizer=self.optimizer.state_dict(),
            lr=self.lr,
        )

    def restore(self, state: TrainState) -> None:
        """Continue from `state` (the model's parameters are loaded by the caller)."""
        if len(state.losses) != state.step:
            raise InputError(f"the saved loss history has {len(state.losses)} entries for {state.step} steps")
        self.optimizer.load_state_dict(state.optimizer)
        try:
            self.rng.bit_generator.state = state.rng_state
        except (TypeError, ValueError, KeyError) as err:
            raise InputError(f"the saved random state cannot be restored: {err}") from None
        self.step, self.losses, self.evals, self.lr = (
            state.step,
            list(state.losses),
            [dict(e) for e in state.evals],
            state.lr,
        )

    # ------------------------------------------------------------------ the loop
    def evaluate(self) -> dict[str, float]:
        """objective.evaluate() recorded in the history at the current step."""
        metrics = {"step": self.step, **{k: float(v) for k, v in self.objective.evaluate().items()}}
        if self.evals and self.evals[-1]["step"] == self.step:
            self.evals[-1] = metrics
        else:
            self.evals.append(metrics)
        return metrics

    def _one_step(self, latch: _SigintLatch) -> float:
        cfg = self.config
        params, grads = self.model.flat_params, self.model.flat_grads
        rng_before = self.rng.bit_generator.state
        try:
            batch = self.batches(self.rng)
            grads.fill(0.0)
            loss = float(self.objective.loss_and_grad(batch))
            if not math.isfinite(loss) or not math.isfinite(float(grads.sum())):
                what = f"loss {loss}" if not math.isfinite(loss) else "a non-finite gradient"
                raise Diverged(f"training diverged at step {self.step + 1} ({what}); try a smaller --lr")
            if cfg.grad_clip is not None:
                clip_grad_norm([grads], cfg.grad_clip)
        except BaseException:
            # Nothing of this step is kept: the generator goes back to where step k began.
            self.rng.bit_generator.state = rng_before
            raise
        lr = scheduled_lr(
            self.step,
            lr=cfg.lr,
            total_steps=cfg.steps,
            warmup_steps=cfg.warmup_steps,
            decay=cfg.decay,
            min_lr=cfg.min_lr,
        )
        latch.enter_critical()  # the only place parameters change; a second Ctrl-C waits for it
        try:
            self.optimizer.lr = lr
            self.optimizer.step()
            self.losses.append(loss)
            self.step += 1
            self.lr = lr
        finally:
            latch.leave_critical()
        # One sum sees any NaN or infinity (and overflows only for a run that is diverging anyway).
        if not math.isfinite(float(params.sum())):
            raise Diverged(
                f"training diverged at step {self.step}: the update made parameters non-finite; try a smaller --lr",
                state_is_good=False,
            )
        return loss

    def run(self) -> Outcome:
        """Train up to `config.steps`; return the outcome (raises Diverged, after checkpointing the last good state)."""
        tqdm = progress_bar_class()
        cfg = self.config
        start = self.step
        notes: list[str] = []
        status = "finished"
        bar = tqdm(
            total=cfg.steps,
            initial=start,
            desc=self.desc,
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            unit="step",
        )
        last_refresh = 0.0
        began = time.perf_counter()
        step_seconds: list[float] = []
        # A diverging run overflows on its way to a non-finite loss; that loss is the one report.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), _SigintLatch() as latch:
            try:
                while self.step < cfg.steps:
                    tick = time.perf_counter()
                    loss = self._one_step(latch)
                    step_seconds.append(time.perf_counter() - tick)
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                        self.evaluate()
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.on_checkpoint:
                        self.on_checkpoint(self.state())
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_refresh > PROGRESS_INTERVAL:
                        bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
                        last_refresh = now
                    if self.callback is not None:
                        self.callback(self.step, loss)
                    if latch.requested:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                status = "interrupted"
                notes.append(f"interrupted after step {self.step} of {cfg.steps}")
            except Diverged as err:
                bar.close()
                err.state = self.state()
                if self.on_checkpoint and err.state_is_good:
                    self.on_checkpoint(err.state)
                raise
            finally:
                bar.close()
            seconds = time.perf_counter() - began
            self.evaluate()
        state = self.state()
        if self.on_checkpoint:
            self.on_checkpoint(state)
        return Outcome(
            status=status, state=state, resumed_from=start, seconds=seconds, notes=notes, step_seconds=step_seconds
        )


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during one training of a multi-run experiment (distill, align), raised by
    `run_to_end`: the experiment stops there, as a whole, instead of scoring a half-trained model."""


def run_to_end(trainer: Trainer) -> Outcome:
    """`trainer.run()` for a training that is one part of an experiment: its result means something
    only when the training finished, so an interrupted one raises `Interrupted` (the command
    exits 130, writing nothing it had not written before)."""
    outcome = trainer.run()
    if outcome.status != "finished":
        raise Interrupted(
            f"{trainer.desc} {'; '.join(outcome.notes) or 'interrupted'}: the experiment stopped there "
            "and wrote nothing"
        )
    return outcome


def _json_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state as plain JSON types (PCG64's state is a dict of Python ints)."""
    state = rng.bit_generator.state

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, np.integer):
            return int(x)
        return x

    return plain(state)
