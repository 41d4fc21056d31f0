"""`twograd distill SETTING`: a small student learns from a larger teacher's softened outputs
(alpha T^2 KL + (1 - alpha) CE), against the same student trained on labels alone, over seeds.
spirals: an MLP seeing 15 labels (and the teacher's logits on every training input); chars: a tiny
transformer."""

# (This docstring is the command's --help; the work itself is `models.experiments.distill.distill`.)
from __future__ import annotations

import argparse
import sys

from models.cli import types
from models.cli.output import print_json
from models.experiments.distill import MAX_TEMPERATURE, MIN_TEMPERATURE, SETTINGS, distill, format_distill_report
from models.training.trainer import progress_wanted

TEMPERATURE = types.temperature(MIN_TEMPERATURE, MAX_TEMPERATURE, greedy=False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setting", choices=tuple(SETTINGS), metavar="SETTING", help=f"one of: {', '.join(SETTINGS)}")
    p.add_argument(
        "--teacher",
        type=types.folder,
        metavar="RUN",
        help="a run folder of the setting's task (`twograd train TASK --out RUN`); default: train one per seed",
    )
    p.add_argument(
        "--temperature",
        type=TEMPERATURE,
        metavar="T",
        help=types.capped("softening temperature (spirals 4, chars 2)", TEMPERATURE),
    )
    p.add_argument(
        "--alpha",
        type=types.fraction,
        help=types.capped("weight of the soft term (spirals 0.9, chars 0.5)", types.fraction),
    )
    p.add_argument("--seed", type=types.seed, default=0, help=types.capped("the first seed (default 0)", types.seed))
    p.add_argument(
        "--seeds",
        type=types.whole_number(1, 1000),
        default=1,
        metavar="N",
        help=types.capped("repeat over N seeds (default 1)", types.whole_number(1, 1000)),
    )
    p.add_argument(
        "--steps", type=types.steps, help=types.capped("student steps (spirals 1500, chars 800)", types.steps)
    )
    p.add_argument(
        "--out", type=types.out_folder, metavar="DIR", help="write summary.json and pictures into DIR (a new folder)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with --out: replace what twograd wrote in DIR before (files of yours are kept)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-seed lines")


def run(args: argparse.Namespace) -> int:
    def echo(line: str) -> None:
        if not args.quiet and not args.json:
            print(line, file=sys.stderr)

    report = distill(
        args.setting,
        teacher=args.teacher,
        temperature=args.temperature,
        alpha=args.alpha,
        seed=args.seed,
        seeds=args.seeds,
        steps=args.steps,
        out=args.out,
        overwrite=args.overwrite,
        progress=progress_wanted(args.quiet),
        echo=echo,
    )
    if args.json:
        print_json(report.to_json())
    else:
        print(format_distill_report(report))
    return 0
