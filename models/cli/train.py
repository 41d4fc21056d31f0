"""`twograd train TASK`: train a model of the task table (`--list`) on the shared trainer."""

# (This docstring is the command's --help; the work itself is `models.training.tasks.train`.)
from __future__ import annotations

import argparse
import sys

from engine.errors import InputError
from models.cli import types
from models.cli.output import print_json
from models.data.sequences import MAX_TEXT_BYTES
from models.learn.workspace import DEFAULT_DIR
from models.training.learner import LEARNER_TASKS
from models.training.lm import PRESETS
from models.training.tasks import (
    ENGINES,
    MODEL_OPTIONS,
    TASK_NAMES,
    TRAIN_OPTIONS,
    format_report,
    format_task_table,
    task_table,
    train,
)
from models.training.trainer import OPTIMIZERS, progress_wanted
from models.zoo.gpt import DTYPES
from models.zoo.mlp import ACTIVATIONS, LOSSES
from nn.optim import SCHEDULES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train a model of the task table on the shared trainer (see --list). Defaults come from the task's "
        "recipe. --out DIR keeps a checkpoint (npz + json) and pictures; --resume DIR continues a run; "
        "Ctrl-C saves the last finished step. Exit status: 0 done, 1 failed at run time (diverged, I/O), "
        "2 usage error, 130 interrupted (after saving)."
    )
    p.add_argument(
        "task",
        nargs="?",
        choices=TASK_NAMES,
        metavar="TASK",
        help=f"one of: {', '.join(TASK_NAMES)} (optional with --resume)",
    )
    p.add_argument("--list", action="store_true", help="list the tasks and their recipes, and exit")
    g = p.add_argument_group("training (defaults: the task's recipe)")
    g.add_argument(
        "--steps",
        type=types.steps,
        help=types.capped("total number of steps; with --resume, the new target", types.steps),
    )
    g.add_argument(
        "--batch-size",
        type=types.whole_number(1),
        help=types.capped("examples per step, drawn without replacement (default: all)", types.whole_number(1)),
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    g.add_argument("--lr", type=types.positive, help=types.capped("peak learning rate", types.positive))
    g.add_argument(
        "--warmup",
        type=types.interval,
        dest="warmup_steps",
        metavar="STEPS",
        help=types.capped("linear warm-up steps (default 0)", types.interval),
    )
    g.add_argument(
        "--decay", choices=SCHEDULES, help="learning-rate decay after warm-up, down to --min-lr (default constant)"
    )
    g.add_argument(
        "--min-lr", type=types.non_negative, help=types.capped("the floor of the decay (default 0)", types.non_negative)
    )
    g.add_argument(
        "--weight-decay",
        type=types.non_negative,
        help=types.capped("L2 (adam, sgd) or decoupled (adamw) weight decay (default 0)", types.non_negative),
    )
    g.add_argument(
        "--clip",
        type=types.norm,
        dest="grad_clip",
        metavar="NORM",
        help=types.capped("clip the global gradient norm (default: off)", types.norm),
    )
    g.add_argument(
        "--eval-every",
        type=types.interval,
        metavar="STEPS",
        help=types.capped("evaluate every N steps (default: at the end)", types.interval),
    )
    g.add_argument(
        "--checkpoint-every",
        type=types.interval,
        metavar="STEPS",
        help=types.capped("save the run folder every N steps (default: at the end)", types.interval),
    )
    g.add_argument(
        "--engine",
        choices=ENGINES,
        help="every task: manual (numpy, hand-derived backward; default) or graph "
        "(the loops form on engine.Values: slow, for small models)",
    )
    g.add_argument(
        "--seed",
        type=types.seed,
        help=types.capped("seed of the initial weights, the data set and the batches (default 0)", types.seed),
    )
    m = p.add_argument_group("model (MLP tasks: xor, moons, spirals, iris)")
    m.add_argument(
        "--hidden",
        type=types.widths,
        metavar="W[,W]",
        help=f"hidden layer widths, e.g. 16,16, or none [at most {types.MAX_LAYERS} of 1 .. {types.MAX_SIZE:,}]",
    )
    m.add_argument("--activation", choices=tuple(ACTIVATIONS), help="hidden activation (default tanh)")
    m.add_argument("--loss", choices=LOSSES, help="loss (default: the task's)")
    t = p.add_argument_group("model and data (GPT tasks: copy, reverse, chars, lines)")
    t.add_argument(
        "--context",
        type=types.whole_number(1),
        metavar="T",
        help=types.capped(
            "positions the model reads (chars: default 32; lines: the longest line)", types.whole_number(1)
        ),
    )
    t.add_argument(
        "--d-model",
        type=types.whole_number(1),
        metavar="C",
        help=types.capped("width of every position's vector", types.whole_number(1)),
    )
    t.add_argument(
        "--heads",
        type=types.whole_number(1),
        dest="n_heads",
        metavar="H",
        help=types.capped("attention heads per block", types.whole_number(1)),
    )
    t.add_argument(
        "--layers",
        type=types.whole_number(1, 10_000),
        dest="n_layers",
        metavar="N",
        help=types.capped("Transformer blocks", types.whole_number(1, 10_000)),
    )
    t.add_argument(
        "--dtype",
        choices=DTYPES,
        help="float64 (for checking) or float32 (for speed); the default is the task's: float32 for chars, float64 for the rest",
    )
    t.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="lines: a whole recipe; micro = the one-file scalar GPT "
        "(1 block, width 16, 4 heads, context 16, RMSNorm without gains, ReLU, no biases, untied; Adam 0.01, betas 0.85/0.99, "
        "linear decay, batch 1); other flags still override it",
    )
    t.add_argument(
        "--data",
        type=types.in_file,
        metavar="FILE",
        help=f"chars: any UTF-8 text (default: Python's bundled docs); lines: one document a line; a regular file of at "
        f"most {MAX_TEXT_BYTES:,} bytes; with --resume, the run's text at a new place (its sha256 must be the recorded one)",
    )
    t.add_argument(
        "--symbols",
        type=types.whole_number(2, 100),
        metavar="V",
        help=types.capped("copy/reverse: distinct symbols (default 10)", types.whole_number(2, 100)),
    )
    t.add_argument(
        "--length",
        type=types.whole_number(1, 64),
        metavar="L",
        help=types.capped("copy/reverse: tokens to copy or reverse (default 5)", types.whole_number(1, 64)),
    )
    lg = p.add_argument_group("your own pieces (twograd learn)")
    lg.add_argument(
        "--learner",
        type=types.folder,
        nargs="?",
        const=str(DEFAULT_DIR),
        metavar="DIR",
        help=f"train on your pieces from the `twograd learn` workspace DIR (default {DEFAULT_DIR}) wherever they "
        "passed `twograd learn check` (twograd's elsewhere); a new run of "
        f"{', '.join(LEARNER_TASKS)}; a piece not passed, or edited since, is refused before training",
    )
    o = p.add_argument_group("run folder and output")
    o.add_argument(
        "--out",
        type=types.out_folder,
        metavar="DIR",
        help="write the run (checkpoint, pictures) into DIR; refused if DIR holds a run or files twograd did not write",
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="with --out: replace what twograd wrote in DIR (a run, its pictures); files of yours are kept",
    )
    o.add_argument(
        "--resume", type=types.folder, metavar="DIR", help="continue the run saved in DIR (up to --steps in total)"
    )
    o.add_argument("--json", action="store_true", help="print one JSON object with the results")
    o.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no messages on the way (the results still print, as with distill and align)",
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        table = task_table()
        if args.json:
            print_json({"tasks": table})
        else:
            print(format_task_table(table))
        return 0
    if args.overwrite and args.out is None:
        raise InputError("--overwrite goes with --out DIR (the folder whose run it replaces)")
    text = not (args.quiet or args.json)

    def echo(msg: str) -> None:
        if msg.startswith("warning:"):
            if not args.quiet:
                print(msg, file=sys.stderr)
        elif text:
            print(msg)

    report = train(
        args.task,
        model_options={k: getattr(args, k) for k in MODEL_OPTIONS},
        train_options={k: getattr(args, k) for k in TRAIN_OPTIONS},
        engine=args.engine,
        preset=args.preset,
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=progress_wanted(args.quiet),
        echo=echo,
        learner=args.learner,
    )
    if not args.json:  # the results, and where the run was saved, print even with --quiet
        print(format_report(report))
    elif report.status == "interrupted":  # --json: stdout is the JSON; where the run was saved goes to stderr
        for note in report.notes:
            print(note, file=sys.stderr)
    if args.json:
        print_json(report.to_json())
    return 130 if report.status == "interrupted" else 0
