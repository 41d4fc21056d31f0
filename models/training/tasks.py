"""The task table: a task name -> its model, its data and its recipe; and `train`, which runs one.

    twograd train --list                      # this table
    twograd train moons --out runs/moons      # models.training.tasks.train("moons", out="runs/moons")

A task (models/training/tabular.py: an MLP on a tabular data set; models/training/lm.py: a GPT on token
sequences) knows how to build its model from a JSON-able config, how big that model would be
(checked before anything is allocated), its objective and batch source for the trainer, and
which pictures to draw. `train` does the rest for every task alike: the run folder (never
overwriting a run), resume (settings come from the folder), the trainer, and the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.gradcheck import text_table
from models.reports import Shown, format_number
from models.training.learner import LEARNER_TASKS, LearnerPieces, load_pieces
from models.training.lm import LM_TASKS, PRESET_TASKS
from models.training.runs import (
    SavedRun,
    claim_folder,
    finite_or_none,
    load_run,
    new_run_folder,
    prepare_out,
    release_folder,
    save_run,
)
from models.training.tabular import TABULAR_TASKS
from models.training.trainer import ENGINES, Diverged, Outcome, Setup, TrainConfig, Trainer, TrainState
from nn.checkpoint import CheckpointError

TASKS: dict[str, Any] = {**TABULAR_TASKS, **LM_TASKS}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
#: `last100_loss` in `twograd train --json`: the mean loss of the run's last this-many steps.
LAST_LOSSES = 100


def get_task(name: str) -> Any:
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    return TASKS[name]


def task_table() -> list[dict[str, Any]]:
    """One entry per task: name, model kind, description, network and recipe."""
    return [t.table_row() for t in TASKS.values()]


def format_task_table(table: list[dict[str, Any]]) -> str:
    """The task table as `twograd train --list` prints it: one row per task with its recipe."""
    head = ["task", "model", "network", "recipe", "what"]
    rows = [
        [
            t["task"],
            t["model"],
            t["network"],
            f"{t['recipe']['optimizer']} lr {t['recipe']['lr']:g}, {t['recipe']['steps']} steps",
            t["description"],
        ]
        for t in table
    ]
    return text_table(head, rows)


# ---------------------------------------------------------------------------- running a task
#: the model settings `train` takes (the flags of `twograd train`'s model groups).
MODEL_OPTIONS: tuple[str, ...] = (
    "hidden",
    "activation",
    "loss",
    "context",
    "d_model",
    "n_heads",
    "n_layers",
    "dtype",
    "data",
    "symbols",
    "length",
)
#: the TrainConfig fields `train` takes (the flags of `twograd train`'s training group).
TRAIN_OPTIONS: tuple[str, ...] = (
    "steps",
    "batch_size",
    "optimizer",
    "lr",
    "warmup_steps",
    "decay",
    "min_lr",
    "weight_decay",
    "grad_clip",
    "eval_every",
    "checkpoint_every",
    "seed",
)


@dataclass(repr=False)
class TrainReport(Shown):
    """What `train` did: `metrics` (the last evaluation), `to_json()` (what `twograd train --json`
    prints), the trained `model`, and the run's `folder` when it was saved. It prints as the
    command's summary in a REPL and as a table with the loss curve in a notebook."""

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
    learner: LearnerPieces | None = None  # with --learner: which pieces were the learner's
    #: "cli" or "python": how the report names the way to keep a run (`--out DIR` or `out=DIR`)
    caller: str = "cli"

    @property
    def metrics(self) -> dict[str, float]:
        """The last evaluation (of the final parameters)."""
        return {k: v for k, v in self.outcome.state.evals[-1].items() if k != "step"}

    def to_json(self) -> dict[str, Any]:
        learner = (
            {} if self.learner is None else {"learner": self.learner.to_json()}
        )  # only a run with --learner has it
        return {
            "task": self.task,
            "model": self.model_kind,
            "model_config": self.model_config,
            "engine": self.engine,
            "train_config": self.train_config.to_dict(),
            "status": self.status,
            "steps": self.outcome.state.step,
            "resumed_from": self.outcome.resumed_from,
            "seconds": round(self.outcome.seconds, 4),
            "ms_per_step": None if self.outcome.ms_per_step is None else round(self.outcome.ms_per_step, 3),
            "last100_loss": last_losses_mean(self.outcome.state.losses),
            **finite_or_none(self.metrics),
            "folder": str(self.folder) if self.folder else None,
            "files": self.files,
            "notes": self.notes,
            **learner,
        }

    def text(self) -> str:
        return format_report(self)

    def html_title(self) -> str:
        return f"twograd train {self.task}: {self.status}, {self.outcome.state.step} steps ({self.engine} engine)"

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        rows: list[list[Any]] = [  # accuracies as percentages, as the command prints them
            [name.replace("_", " "), f"{100 * value:.1f}%" if name.endswith("accuracy") else format_number(value)]
            for name, value in self.metrics.items()
        ]
        if self.learner is not None:
            rows.append(["pieces", self.learner.line()])
        rows.append(["last-100 mean loss", format_number(last_losses_mean(self.outcome.state.losses))])
        rows.append(["seconds", f"{self.outcome.seconds:.2f}"])
        if self.folder is not None:
            rows.append(["folder", str(self.folder)])
        rows += [[what.replace("_", " "), path] for what, path in self.files.items()]
        return ["", "value"], rows

    def plot_curves(self) -> tuple[dict[str, list[float]], bool]:
        losses = self.outcome.state.losses
        return {"training loss": losses}, bool(losses) and min(losses) > 0


def last_losses_mean(losses: list[float], n: int = LAST_LOSSES) -> float | None:
    """The mean training loss of the last n steps of the run (all of them when fewer; None before
    step 1, or when one is not finite): the noisy per-step loss, averaged, as the one-file
    scalar GPT reports it."""
    tail = losses[-n:]
    if not tail or not all(math.isfinite(x) for x in tail):
        return None
    return float(f"{math.fsum(tail) / len(tail):.6g}")  # six significant digits, as the report prints


def _resume_settings(
    saved: SavedRun, task: str | None, model_options: dict[str, Any], train_options: dict[str, Any]
) -> TrainConfig:
    """The saved run's TrainConfig with a new `steps` if given; InputError when anything else asked differs."""
    where = f"--resume {saved.folder}"
    if task is not None and task != saved.task:
        raise InputError(f"{where}: the run is of {saved.task!r}, not {task!r}")
    saved_model = get_task(saved.task).options_of(saved.model_config)
    for key, value in model_options.items():
        given = list(value) if isinstance(value, tuple) else value
        if key not in saved_model:
            raise InputError(f"{where}: {saved.task} takes no model option {key!r}")
        if given != saved_model[key]:
            raise InputError(
                f"{where}: the run's {key} is {saved_model[key]!r}, not {given!r}; a resumed run keeps its settings"
            )
    current = saved.train_config.to_dict()
    for key, value in train_options.items():
        if key != "steps" and value != current[key]:
            raise InputError(
                f"{where}: the run's {key} is {current[key]!r}, not {value!r}; a resumed run keeps its settings"
            )
    steps = train_options.get("steps", saved.train_config.steps)
    return replace(saved.train_config, steps=steps).validate()


def _moved_data(saved: SavedRun, path: str | Path, notes: list[str]) -> dict[str, Any]:
    """The run's model config reading its text from `path`, a file whose sha256 is the recorded one;
    InputError when it is another text. The next checkpoint records the new place."""
    from models.data.sequences import read_text
    from models.training.lm import _sha256

    recorded = saved.model_config["data"]
    resolved = Path(path).expanduser().resolve()
    digest = _sha256(read_text(resolved))
    if digest != recorded["sha256"]:
        raise InputError(
            f"--data {path}: not the text this run was trained on (sha256 {digest[:16]}..., the run recorded "
            f"{recorded['sha256'][:16]}... for {recorded['source']})"
        )
    if str(resolved) != recorded["source"]:
        notes.append(f"the run's text is now read from {resolved} (moved from {recorded['source']}; the same sha256)")
    return {**saved.model_config, "data": {**recorded, "source": str(resolved)}}


def train(
    task: str | None = None,
    *,
    model_options: dict[str, Any] | None = None,
    train_options: dict[str, Any] | None = None,
    engine: str | None = None,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    plots: bool = True,
    echo: Callable[[str], None] | None = None,
    callback: Callable[[int, float], None] | None = None,
    learner: str | Path | None = None,
) -> TrainReport:
    """Train `task` (or continue the run in `resume`) and return the report.

    model_options:  the task's model settings (MLP: hidden, activation, loss); the recipe fills the rest.
    train_options:  TrainConfig fields to change from the recipe (steps, lr, batch_size, seed, ...).
                    A resumed run keeps its settings; only `steps` may grow (or shrink) its target.
    engine:         "manual" (default) or "graph"; a resumed run keeps its own unless told.
    preset:         a recipe of `models.training.lm.PRESETS` in place of the task's own (e.g. "micro" for lines).
    out:            a new run folder (refused if it holds a run, unless `overwrite`); with neither
                    `out` nor `resume`, nothing is written unless the run is interrupted, which
                    then keeps its state in a new folder under twograd-out/runs/.
    echo:           where to say what is happening (None: silent); warnings start with "warning:".
    learner:        a `twograd learn` workspace: the model trains on the learner's pieces that passed their
                    checks, twograd's elsewhere (models/training/learner.py); a new run of a task of
                    LEARNER_TASKS only, on the manual engine.

    Returns the report; raises InputError for bad settings (before step 1) and
    models.training.trainer.Diverged after keeping the last good state in the run folder, if any.
    """
    say = echo or (lambda _msg: None)
    model_options = {k: v for k, v in (model_options or {}).items() if v is not None}
    train_options = {k: v for k, v in (train_options or {}).items() if v is not None}
    if engine is not None and engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if out is not None and resume is not None:
        raise InputError("give --out (a new run) or --resume (continue one), not both")
    if preset is not None and resume is not None:
        raise InputError("--preset starts a run; a resumed run keeps the settings it was started with")
    if learner is not None:
        if resume is not None:
            raise InputError(
                "--learner starts a new run; a resumed run continues on the pieces it is given, twograd's "
                "(start a new run with --learner to train on your pieces again)"
            )
        if task is not None and task not in LEARNER_TASKS:
            raise InputError(f"--learner is for the tasks {', '.join(LEARNER_TASKS)}, not {task}")
        if engine == "graph":
            raise InputError(
                "--learner runs your forward and backward functions: the manual engine (drop --engine graph)"
            )
    notes: list[str] = []
    saved: SavedRun | None = None
    pieces: LearnerPieces | None = None
    if resume is not None:
        saved = load_run(resume)
        the_task = get_task(saved.task)
        if saved.model_kind != the_task.kind:
            raise CheckpointError(
                f"--resume {saved.folder}: the run holds a {saved.model_kind!r} model, task {saved.task!r} trains {the_task.kind!r}"
            )
        model_config = saved.model_config
        if "data" in model_options and saved.task in ("chars", "lines"):  # the run's text, moved: same sha256
            model_config = _moved_data(saved, model_options.pop("data"), notes)
        elif (
            saved.task in ("chars", "lines")
            and model_config["data"]["source"] != "pydoc_data.topics"
            and not Path(model_config["data"]["source"]).exists()
        ):
            raise InputError(
                f"--resume {saved.folder}: the run's text {model_config['data']['source']} is missing (moved?); "
                f"give its new place with --data FILE (the same text: sha256 {model_config['data']['sha256'][:16]}...)"
            )
        train_config = _resume_settings(saved, task, model_options, train_options)
        recorded_engine = str(saved.extra.get("engine", "manual"))
        if engine is not None and engine != recorded_engine:
            notes.append(
                f"the run was trained with the {recorded_engine} engine, this session used {engine}: the same math, "
                f"but the gradients round differently, so the run is not bit for bit one on the {recorded_engine} engine"
            )
        engine = engine or recorded_engine
        folder: Path | None = saved.folder
        if isinstance(saved.extra.get("learner"), dict):
            record = saved.extra["learner"]
            notes.append(
                f"steps 1 to {record.get('until_step', saved.state.step)} of this run used your pieces "
                f"({', '.join(record.get('yours', [])) or 'none'}); this session continued on twograd's"
            )
    else:
        if task is None:
            raise InputError(f"name a task ({', '.join(TASK_NAMES)}) or --resume a run")
        the_task = get_task(task)
        if preset is not None:
            if not hasattr(the_task, "with_preset"):
                raise InputError(f"{task}: --preset is for the {', '.join(PRESET_TASKS)} task")
            the_task = the_task.with_preset(preset)
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
    if learner is not None:  # refused pieces stop the run here, before a folder is touched
        pieces = load_pieces(learner, the_task.name, model_config)
    if out is not None:  # before step 1: a bad folder must not cost a whole run
        folder = prepare_out(out, overwrite=overwrite)
    elif saved is not None:  # two resumes of one run would write over each other
        claim_folder(saved.folder, "--resume")
    claimed = folder  # released when this call ends, however it ends
    try:
        for w in warnings:
            say(w)

        if pieces is not None:
            setup = the_task.build(model_config, train_config, engine, kernels=pieces.kernels)
            notes += pieces.notes
        else:
            setup = the_task.build(model_config, train_config, engine)
        extra: dict[str, Any] = {"engine": engine}
        if pieces is not None:  # which pieces were the learner's, and their files' sha256: the run can be traced
            extra["learner"] = pieces.to_json()
        elif saved is not None and isinstance(saved.extra.get("learner"), dict):
            extra["learner"] = {"until_step": saved.state.step, **saved.extra["learner"]}
        vocab = getattr(getattr(setup.objective, "data", None), "vocab", None)
        if (
            vocab is not None
        ):  # so that the run samples without its text file (models.training.sampling.RecordedVocabulary)
            extra["vocab"] = list(vocab.tokens)

        written: dict[str, Any] = {}  # what the folder holds now: (step, status) of the last write

        def checkpoint_into(target: Path, state: TrainState, status: str) -> None:
            save_run(
                target,
                model_kind=the_task.kind,
                task=the_task.name,
                model_config=model_config,
                train_config=train_config,
                params=setup.model.state_dict(),
                state=state,
                status=status,
                extra=extra,
            )
            written["last"] = (state.step, len(state.evals), status)

        def on_checkpoint(state: TrainState) -> None:
            if folder is not None:
                checkpoint_into(folder, state, "finished" if state.step >= train_config.steps else "running")

        trainer = Trainer(
            setup.objective,
            setup.batches,
            train_config,
            on_checkpoint=None,
            callback=callback,
            progress=progress,
            desc=the_task.name,
        )
        if saved is not None:
            try:
                setup.model.load_state_dict(saved.params)
                trainer.restore(saved.state)
            except ValueError as err:
                raise CheckpointError(f"--resume {saved.folder}: cannot restore the run: {err}") from None
            if (
                train_config.steps <= saved.state.step
            ):  # nothing to train: refused (the run checked whole) before a write
                target = (
                    f"--steps {train_config.steps:,} is not above that"
                    if "steps" in train_options
                    else "that was its target"
                )
                raise InputError(
                    f"--resume {saved.folder}: the run is already at step {saved.state.step:,} and {target}; "
                    f"give --steps above {saved.state.step:,} to train further (the folder is left as it is)"
                )
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
            final = "finished" if status == "finished" else "interrupted"
            # The trainer hands its final state to on_checkpoint when checkpointing every N steps;
            # write the folder again only when that write is not already this state with this status.
            if written.get("last") != (outcome.state.step, len(outcome.state.evals), final):
                checkpoint_into(folder, outcome.state, final)
            files["checkpoint"] = str(folder / "checkpoint.json")  # it names the npz (checkpoint.<hash>.npz)
            if plots:
                files.update(_pictures(setup, folder, outcome.state, notes))
            if status == "interrupted":
                notes.append(f"the run is saved in {folder}; continue with: twograd train --resume {folder}")
        return TrainReport(
            the_task.name,
            the_task.kind,
            model_config,
            train_config,
            engine,
            status,
            outcome,
            setup.model,
            folder,
            files,
            notes,
            setup.summary,
            pieces,
        )
    finally:
        if claimed is not None:
            release_folder(claimed)


def format_metrics(metrics: dict[str, float]) -> str:
    """ "final loss 9.1e-05  train accuracy 100.0%  ...": accuracies as percentages, the rest to 6 digits."""
    parts = []
    for name, value in metrics.items():
        shown = f"{100 * value:.1f}%" if name.endswith("accuracy") else f"{value:.6g}"
        parts.append(f"{name.replace('_', ' ')} {shown}")
    return "final " + "  ".join(parts)


def format_report(report: TrainReport) -> str:
    """The lines `twograd train` prints after the run (the summary lines are printed before it)."""
    o = report.outcome
    lines = [f"{format_metrics(report.metrics)}  ({o.state.step} steps, {o.seconds:.2f} s)"]
    if report.learner is not None:
        lines.append(report.learner.line())
    lines += [f"wrote {path}  ({what.replace('_', ' ')})" for what, path in report.files.items()]
    lines += report.notes
    if report.folder is None:
        lines.append(
            "add --out DIR to keep a checkpoint (to --resume) and pictures"
            if report.caller == "cli"
            else "pass out=DIR to keep a checkpoint (to resume=DIR) and pictures"
        )
    return "\n".join(lines)


def _pictures(setup: Setup, folder: Path, state: TrainState, notes: list[str]) -> dict[str, str]:
    from viz.plots import PlotsUnavailable

    try:
        return setup.draw(folder, state)
    except PlotsUnavailable as err:
        notes.append(f"no pictures: {err}")
        return {}
