"""Walk through twograd's capabilities in order: each stage prints its three-way gradient
check and writes its pictures into --out. Exit status 1 when a stage fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.cli import types
from models.cli.output import print_json
from models.tour_stages.runner import run_tour


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=types.folder, default=Path("twograd-out"), help="folder for pictures (default: twograd-out)")
    p.add_argument("--json", action="store_true", help="print one JSON object (each stage, with what it printed) instead of the text")


def run(args: argparse.Namespace) -> int:
    result = run_tour(args.out, echo=(lambda _msg: None) if args.json else print)
    if args.json:
        print_json(result.to_json())
    if not result.passed:
        print(f"twograd tour: error: {result.failure_sentence()}", file=sys.stderr)
        return 1
    return 0
