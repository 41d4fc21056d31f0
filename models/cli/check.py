"""Run the three-way gradient check (graph vs manual vs finite differences) of the registered
pieces on all their cases and print one line per (piece, parameter); with --list, list the
pieces instead. Exit status 1 when any check fails, with the failing reports. --html FILE (one NAME)
also writes the piece's graph with its manual gradient painted on the leaves by relative error."""

from __future__ import annotations

import argparse
import sys

from engine import InputError
from models import check
from models.cli import types
from models.cli.output import print_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Piece names are checked when the command runs (an unknown one is exit 2, listing the known
    # ones), not by choices=: that would import every module of nn and models for any `twograd`.
    p.add_argument("names", nargs="*", metavar="NAME", help="pieces to check (default: all); see --list")
    p.add_argument("--list", action="store_true", help="list the registered pieces (from nn and models) and exit")
    p.add_argument(
        "--seed",
        type=types.seed,
        default=0,
        help=types.capped("seed for inputs and the output weighting (default 0)", types.seed),
    )
    p.add_argument(
        "--html",
        type=types.out_file,
        metavar="FILE",
        help="with one NAME: write its graph, the manual gradient painted on it (.html)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (the entries, or with --list the pieces)")


def run(args: argparse.Namespace) -> int:
    if args.html is not None and (args.list or len(args.names) != 1):
        raise InputError(
            "--html FILE needs exactly one piece NAME (and no --list), e.g. twograd check linear --html linear.html"
        )
    if args.list:
        listing = check.piece_listing(args.names)
        if args.json:
            print_json({"pieces": listing})
        else:
            print(check.format_listing(listing))
        return 0
    show_progress = sys.stderr.isatty() and not args.json
    results = check.run_checks(
        args.names,
        seed=args.seed,
        progress=(lambda n: print(f"checking {n} ...", file=sys.stderr)) if show_progress else None,
    )
    report = check.check_report(results, seed=args.seed)
    if args.json:
        print_json(report)
    else:
        print(check.format_table(report["entries"]))
        if not report["passed"]:
            print("\n" + check.failure_details(results))
    if args.html is not None:
        from models.check_explore import write_piece_page
        from viz.explore.compare import short_number

        explorer = write_piece_page(args.names[0], args.html, seed=args.seed)
        painted = explorer.comparison
        assert painted is not None  # a piece's page always compares the manual gradients
        if not args.json:
            above = short_number(painted.tolerance)  # written as the page writes it
            print(
                f"wrote {args.html}: {len(painted.disagree)} of {len(painted.rel)} leaves disagree (relative error above {above})"
            )
    if not report["passed"]:
        print(f"twograd check: error: {report['error']}", file=sys.stderr)
        return 1
    return 0
