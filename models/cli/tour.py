"""Walk through twograd's capabilities in order. Stages 1, 2, 4 and 5 print their three-way
gradient checks (graph, manual, numeric); stage 3 trains an MLP by manual backprop and on the
graph and compares the two; stages 6-9 train models and print what they learned. Each stage
writes its pictures (and stage 7 its training text and run folder) into --out. Exit status 1
when a stage fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.cli import types
from models.cli.output import print_json
from models.tour_stages.runner import STAGES, run_tour, stage_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=types.out_folder, default=Path("twograd-out"), help="folder for pictures (default: twograd-out)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into --out even where it holds files the tour did "
        "not write (the tour always replaces its own files from an earlier tour)",
    )
    p.add_argument(
        "--stage",
        action="append",
        metavar="N|NAME",
        help=f"run only this stage (repeatable): a number 1-{len(STAGES)} or one of "
        f"{', '.join(stage_name(m) for _, m in STAGES)}",
    )
    p.add_argument(
        "--quiet", action="store_true", help="print one line per stage and the summary, not what each stage prints"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (each stage, with what it printed) instead of the text",
    )


def run(args: argparse.Namespace) -> int:
    result = run_tour(
        args.out,
        echo=(lambda _msg: None) if args.json or args.quiet else print,
        stages=args.stage,
        overwrite=args.overwrite,
    )
    if args.json:
        print_json(result.to_json())
    elif args.quiet:
        print(result.text())
    if not result.passed:
        print(f"twograd tour: error: {result.failure_sentence()}", file=sys.stderr)
        return 1
    return 0
