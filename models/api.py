"""The Python side of the `twograd` command: `train`, `sample`, `distill`, `align`, `tour`.

Each function does what its command does, with keyword arguments in place of flags
(`--batch-size 8` is `batch_size=8`), and returns the command's report object: it prints as
the command's summary in a REPL, shows a table (and a loss curve where there is one) in
Jupyter, and has `.metrics` and `.to_json()` (the command's `--json`).

    >>> from models import train
    >>> report = train("xor", quiet=True)
    >>> report.metrics["train_accuracy"]
    1.0

A progress bar is drawn in a terminal and in a notebook (a widget with the `notebook` extra,
text without it); `quiet=True` turns it off with the messages on the way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from engine.errors import UnknownNameError
from models.experiments.align import AlignConfig, AlignResult
from models.experiments.align import align as run_align
from models.experiments.distill import DistillReport
from models.experiments.distill import distill as run_distill
from models.tour_stages.runner import TourResult, run_tour
from models.training.sampling import Samples, sample_run
from models.training.tasks import MODEL_OPTIONS, TRAIN_OPTIONS, TrainReport
from models.training.tasks import train as run_task
from models.training.trainer import progress_wanted


def _say(quiet: bool, stream: Any = None) -> Callable[[str], None]:
    """Where the messages on the way go: stdout (warnings to stderr), or nowhere when quiet."""

    def echo(msg: str) -> None:
        if quiet:
            return
        print(msg, file=sys.stderr if msg.startswith("warning:") else (stream or sys.stdout))

    return echo


def _progress(quiet: bool, progress: bool | None) -> bool:
    """A bar as asked, or by default where one can be seen (a terminal or a notebook) unless quiet."""
    return progress_wanted(quiet) if progress is None else progress


def train(
    task: str | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    engine: str | None = None,
    preset: str | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    learner: str | Path | None = None,
    **options: Any,
) -> TrainReport:
    """Train a task of the task table (`twograd train --list`), as `twograd train TASK` does.

    Args:
        task: a name of the task table (xor, moons, spirals, iris, copy, reverse, chars, lines).
        options: the command's flags as keywords: training (steps, lr, batch_size, optimizer,
            warmup_steps, decay, min_lr, weight_decay, grad_clip, eval_every,
            checkpoint_every, seed) and model (hidden=(16, 16), activation, loss, context,
            d_model, n_heads, n_layers, dtype, data, symbols, length); the task's recipe fills the rest.
        out: a new run folder (checkpoint + pictures); `overwrite=True` replaces the run it holds.
        resume: continue the run saved in this folder.
        engine: "manual" (numpy, hand-derived backward; default) or "graph" (the loops form on Values).
        quiet: no progress bar and no messages; the report is returned all the same.
        learner: a `twograd learn` workspace: train on the learner's pieces that passed their checks,
            twograd's elsewhere (`report.learner` says which); a new run of xor, moons, spirals,
            iris, copy or reverse. A piece not passed, or edited since, is refused (InputError).

    Returns a `TrainReport`; raises engine.InputError for bad settings before step 1.
    """
    unknown = sorted(set(options) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS))
    if unknown:
        raise UnknownNameError(
            f"train: unknown option(s) {', '.join(unknown)}; the options are: "
            f"{', '.join(TRAIN_OPTIONS + MODEL_OPTIONS)}"
        )
    if isinstance(options.get("hidden"), list):
        options["hidden"] = tuple(options["hidden"])
    report = run_task(
        task,
        model_options={k: v for k, v in options.items() if k in MODEL_OPTIONS},
        train_options={k: v for k, v in options.items() if k in TRAIN_OPTIONS},
        engine=engine,
        preset=preset,
        out=out,
        resume=resume,
        overwrite=overwrite,
        progress=_progress(quiet, progress),
        echo=_say(quiet),
        learner=learner,
    )
    report.caller = "python"  # its text says out=DIR, not --out DIR
    return report


def sample(
    run: str | Path,
    prompt: str | None = None,
    *,
    n: int = 1,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
) -> Samples:
    """Sample from the GPT saved in the run folder `run`, as `twograd sample --run RUN` does.

    Args:
        run: the folder of a finished copy, reverse, chars or lines run.
        prompt: copy/reverse: the question ("3 1 4 1 5"); chars: text to continue; lines: the
            start of a line (default: a held-out question, a newline, nothing).
        temperature: 0 is greedy (the default for copy/reverse); 1 samples the model's distribution.

    Returns `Samples` (`.samples` is the list of strings).
    """
    return sample_run(run, prompt=prompt, n=n, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed)


def distill(
    setting: str,
    *,
    teacher: str | Path | None = None,
    temperature: float | None = None,
    alpha: float | None = None,
    seed: int = 0,
    seeds: int = 1,
    steps: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    overwrite: bool = False,
) -> DistillReport:
    """Distil a larger teacher into a small student ("spirals" or "chars"), as `twograd distill` does.

    The student learns from loss = alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) CE(z_s, y),
    and is compared with the same student trained on the labels alone, over `seeds` seeds.
    Returns a `DistillReport`.
    """
    return run_distill(
        setting,
        teacher=teacher,
        temperature=temperature,
        alpha=alpha,
        seed=seed,
        seeds=seeds,
        steps=steps,
        out=out,
        progress=_progress(quiet, progress),
        echo=_say(quiet, sys.stderr),
        overwrite=overwrite,
    )


def align(
    method: str = "all",
    *,
    out: str | Path | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    overwrite: bool = False,
    **config: Any,
) -> AlignResult:
    """A reward model from preferences, then best-of-n, REINFORCE+KL and/or DPO, as `twograd align` does.

    Args:
        method: "bestofn", "reinforce", "dpo" or "all".
        config: any field of `AlignConfig` (kl, steps, seed, ref_steps, rm_steps, batch_size, lr, ...).

    Returns an `AlignResult` (`.policies` holds each policy's true and learned reward).
    """
    known = {f.name for f in fields(AlignConfig)} - {"method"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UnknownNameError(
            f"align: unknown option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(known))}"
        )
    return run_align(
        AlignConfig(method=method, **config),
        out=out,
        progress=_progress(quiet, progress),
        echo=_say(quiet),
        overwrite=overwrite,
    )


def tour(
    out: str | Path = "twograd-out",
    *,
    quiet: bool = False,
    stages: Sequence[str | int] | None = None,
    overwrite: bool = False,
) -> TourResult:
    """Every capability, checked and drawn, as `twograd tour` does; pictures go into `out` (the tour's
    own files from an earlier tour there are replaced; files it did not write need `overwrite`).
    `stages` runs only those (numbers 1-9 or short names such as "micro", as `--stage` takes)."""
    return run_tour(
        Path(out), echo=_say(quiet), stages=None if stages is None else [str(s) for s in stages], overwrite=overwrite
    )
