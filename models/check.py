"""`twograd check`: run the registry's three-way gradient checks and print a table.

One line per (piece, case, parameter): the largest graph-vs-manual and manual-vs-numeric
differences and whether both are within their named tolerances (`engine.EXACT`,
`engine.NUMERIC`, or the piece's own).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from engine import GradientReport
from nn.registry import Piece, all_pieces, check_piece

#: Modules outside `nn` that register whole-model pieces.
MODEL_PIECE_MODULES: tuple[str, ...] = ("models.mlp",)


def pieces(names: Sequence[str] = ()) -> list[Piece]:
    """The registered pieces named (all by default); KeyError naming unknown ones."""
    for mod in MODEL_PIECE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
    known = {p.name: p for p in all_pieces()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown piece(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[n] for n in names] if names else list(known.values())


def summarize(piece: Piece, report: GradientReport) -> list[dict[str, Any]]:
    """One entry per parameter of one case: both comparisons side by side."""
    case = report.title[len(piece.name) + 1 : -1] if report.title.startswith(piece.name + "[") else ""
    entries: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        e = entries.setdefault(
            row.input,
            {"piece": piece.name, "case": case, "parameter": row.input, "shape": list(row.shape), "passed": True},
        )
        key = f"{row.left}_vs_{row.right}"
        e[key] = {"max_abs": row.max_abs, "max_rel": row.max_rel, "worst_index": list(row.worst_index), "atol": row.tolerance.atol, "rtol": row.tolerance.rtol, "passed": row.passed}
        e["passed"] = e["passed"] and row.passed
    return list(entries.values())


def run_checks(names: Sequence[str] = (), seed: int = 0, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Check the named pieces (all by default) on every case; return the summary entries."""
    out = []
    for piece in pieces(names):
        if progress:
            progress(piece.name)
        for report in check_piece(piece, seed=seed):
            out += summarize(piece, report)
    return out


def format_table(entries: list[dict[str, Any]]) -> str:
    """The entries as an aligned text table with a closing count line."""
    head = ["piece", "case", "param", "shape", "graph-manual abs", "rel", "manual-numeric abs", "rel", "ok"]
    rows = []
    for e in entries:
        gm = e.get("graph_vs_manual", {})
        mn = e.get("manual_vs_numeric", {})
        rows.append(
            [
                e["piece"],
                e["case"],
                e["parameter"],
                "x".join(map(str, e["shape"])) or "scalar",
                f"{gm.get('max_abs', 0.0):.1e}",
                f"{gm.get('max_rel', 0.0):.1e}",
                f"{mn['max_abs']:.1e}" if mn else "-",
                f"{mn['max_rel']:.1e}" if mn else "-",
                "ok" if e["passed"] else "FAIL",
            ]
        )
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    failed = sum(not e["passed"] for e in entries)
    n_pieces = len({e["piece"] for e in entries})
    lines.append(f"{len(entries) - failed} passed, {failed} failed ({n_pieces} pieces; 'output' compares the loops and manual forwards)")
    return "\n".join(lines)


def format_summary(entries: list[dict[str, Any]]) -> str:
    """One line per piece: cases, parameters checked, the worst differences of each pair."""
    head = ["piece", "cases", "checks", "worst graph-manual", "worst manual-numeric", "ok"]
    rows = []
    by_piece: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_piece.setdefault(e["piece"], []).append(e)
    for name, es in by_piece.items():
        gm = max(e.get("graph_vs_manual", {}).get("max_abs", 0.0) for e in es)
        mn = max(e.get("manual_vs_numeric", {}).get("max_abs", 0.0) for e in es)
        ok = all(e["passed"] for e in es)
        rows.append([name, str(len({e["case"] for e in es})), str(len(es)), f"{gm:.1e}", f"{mn:.1e}", "ok" if ok else "FAIL"])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage: every registered piece checked three ways, one summary line per piece."""
    del out_dir  # this stage draws nothing
    entries = run_checks()
    echo(format_summary(entries))
    failed = sum(not e["passed"] for e in entries)
    echo(f"{len(entries) - failed} of {len(entries)} (piece, case, parameter) checks passed; "
         "`twograd check NAME` prints the full table")
    return failed == 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="three-way gradient check (graph, manual, numeric) of every registered piece",
        description="Run the three-way gradient check (graph vs manual vs finite differences) of the "
        "registered pieces and print one line per (piece, case, parameter). Exit status 1 on any failure.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="pieces to check (default: all); see --list")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--list", action="store_true", help="list the registered pieces and exit")
    p.add_argument("--seed", type=int, default=0, help="seed for inputs and the output weighting (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for piece in pieces():
            print(f"{piece.name:20s} {len(piece.cases)} cases  {piece.description}")
        return 0
    tty = sys.stderr.isatty() and not args.json
    entries = run_checks(args.names, seed=args.seed, progress=(lambda n: print(f"checking {n} ...", file=sys.stderr)) if tty else None)
    if args.json:
        print(json.dumps(entries, indent=1))
    else:
        print(format_table(entries))
    return 0 if all(e["passed"] for e in entries) else 1
