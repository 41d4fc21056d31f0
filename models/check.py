"""`twograd check`: run the registry's three-way gradient checks and print a table.

One line per (piece, parameter), over all of the piece's cases: the largest
graph-vs-manual and manual-vs-numeric differences, where the worst one is (case and
index), and whether every comparison is within its named tolerance (`engine.EXACT`,
`engine.NUMERIC`, or the piece's own). The loops forward is compared with the manual
forward too; a piece whose forwards disagree fails on every line. A failing piece also
gets its full report: every source's value at the worst index.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from engine import GradientReport, GradientRow
from engine.gradcheck import text_table
from nn.registry import Piece, all_pieces, check_piece

#: Modules outside `nn` that register whole-model pieces.
MODEL_PIECE_MODULES: tuple[str, ...] = ("models.mlp",)
#: The pseudo-input under which `check_three_way` compares the two forwards.
FORWARD = "output"


def pieces(names: Sequence[str] = ()) -> list[Piece]:
    """The registered pieces named (all by default); KeyError naming unknown ones."""
    for mod in MODEL_PIECE_MODULES:
        importlib.import_module(mod)
    known = {p.name: p for p in all_pieces()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown piece(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[n] for n in names] if names else list(known.values())


@dataclass
class CaseReport:
    """The three-way report of one piece on one case."""

    piece: str
    case: str
    report: GradientReport


def run_checks(names: Sequence[str] = (), seed: int = 0, progress: Callable[[str], None] | None = None) -> list[CaseReport]:
    """Check the named pieces (all by default) on every case."""
    out = []
    for piece in pieces(names):
        if progress:
            progress(piece.name)
        for case, report in zip(piece.cases, check_piece(piece, seed=seed)):
            out.append(CaseReport(piece.name, case.name, report))
    return out


def _excess(row: GradientRow) -> float:
    """How far the worst element is past its tolerance (> 1 fails): picks the line's 'worst at'."""
    allowed = row.tolerance.atol + row.tolerance.rtol * max(abs(v) for k, v in row.values.items() if k in (row.left, row.right))
    return row.max_abs / allowed if allowed > 0 else float("inf")


def _pair_summary(rows: list[tuple[str, GradientRow]]) -> dict[str, Any]:
    """Worst of one comparison (e.g. graph vs manual) over the cases."""
    case, worst = max(rows, key=lambda cr: _excess(cr[1]))
    return {
        "max_abs": max(r.max_abs for _, r in rows),
        "max_rel": max(r.max_rel for _, r in rows),
        "worst_case": case,
        "worst_index": list(worst.worst_index),
        "values": {k: v for k, v in worst.values.items() if v == v},  # drop NaN placeholders
        "atol": worst.tolerance.atol,
        "rtol": worst.tolerance.rtol,
        "passed": all(r.passed for _, r in rows),
    }


def summarize(results: list[CaseReport]) -> list[dict[str, Any]]:
    """One entry per (piece, parameter), each comparison summarised over the piece's cases."""
    grouped: dict[tuple[str, str], dict[str, list[tuple[str, GradientRow]]]] = {}
    forward: dict[str, list[tuple[str, GradientRow]]] = {}
    shapes: dict[tuple[str, str], list[list[int]]] = {}
    for res in results:
        for row in res.report.rows:
            if row.input == FORWARD:
                forward.setdefault(res.piece, []).append((res.case, row))
                continue
            key = (res.piece, row.input)
            grouped.setdefault(key, {}).setdefault(f"{row.left}_vs_{row.right}", []).append((res.case, row))
            if row.left == "graph" and row.right == "manual":
                shapes.setdefault(key, []).append(list(row.shape))
    entries = []
    for (piece, param), pairs in grouped.items():
        fwd = _pair_summary(forward[piece]) if piece in forward else None
        entry: dict[str, Any] = {"piece": piece, "parameter": param, "shapes": shapes.get((piece, param), [])}
        entry.update({pair: _pair_summary(rows) for pair, rows in pairs.items()})
        entry["forward"] = fwd
        entry["passed"] = all(entry[p]["passed"] for p in pairs) and (fwd is None or fwd["passed"])
        entries.append(entry)
    return entries


def _shape_text(shapes: list[list[int]]) -> str:
    """The distinct shapes over the cases, in case order ("2x3, 1x3"); "N shapes" past three."""
    texts = list(dict.fromkeys("x".join(map(str, s)) or "scalar" for s in shapes))
    return ", ".join(texts) if len(texts) <= 3 else f"{len(texts)} shapes"


def _worst_at(entry: dict[str, Any]) -> str:
    pairs = [entry[k] for k in ("graph_vs_manual", "manual_vs_numeric") if k in entry]
    failing = [p for p in pairs if not p["passed"]]
    p = failing[0] if failing else pairs[-1]
    return f"{p['worst_case']} {p['worst_index'] or ''}".rstrip()


def format_table(entries: list[dict[str, Any]]) -> str:
    """The entries as an aligned text table with a closing count line."""
    head = ["piece", "param", "shape", "graph-manual abs", "rel", "manual-numeric abs", "rel", "worst at", "ok"]
    rows = []
    for e in entries:
        gm, mn = e["graph_vs_manual"], e["manual_vs_numeric"]
        rows.append(
            [e["piece"], e["parameter"], _shape_text(e["shapes"]), f"{gm['max_abs']:.1e}", f"{gm['max_rel']:.1e}",
             f"{mn['max_abs']:.1e}", f"{mn['max_rel']:.1e}", _worst_at(e), "ok" if e["passed"] else "FAIL"]
        )
    lines = [text_table(head, rows)]
    failed = sum(not e["passed"] for e in entries)
    n_pieces = len({e["piece"] for e in entries})
    lines.append(f"{len(entries) - failed} passed, {failed} failed ({n_pieces} piece{'s' if n_pieces != 1 else ''}; "
                 "rel is shown where |value| > atol)")
    return "\n".join(lines)


def failure_details(results: list[CaseReport]) -> str:
    """The full report (all three values at the worst index) of every failing case."""
    return "\n\n".join(str(r.report) for r in results if not r.report.passed)


def format_summary(entries: list[dict[str, Any]]) -> str:
    """One line per piece: parameters checked, the worst differences of each pair."""
    head = ["piece", "cases", "params", "worst graph-manual", "worst manual-numeric", "ok"]
    by_piece: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_piece.setdefault(e["piece"], []).append(e)
    rows = []
    for name, es in by_piece.items():
        gm = max(e["graph_vs_manual"]["max_abs"] for e in es)
        mn = max(e["manual_vs_numeric"]["max_abs"] for e in es)
        n_cases = len(es[0]["shapes"])
        rows.append([name, str(n_cases), str(len(es)), f"{gm:.1e}", f"{mn:.1e}", "ok" if all(e["passed"] for e in es) else "FAIL"])
    return text_table(head, rows)


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage: every registered piece checked three ways, one summary line per piece."""
    del out_dir  # this stage draws nothing
    results = run_checks()
    entries = summarize(results)
    echo(format_summary(entries))
    failed = sum(not e["passed"] for e in entries)
    n_cases = len(results)
    echo(f"{len(entries) - failed} of {len(entries)} (piece, parameter) checks passed over {n_cases} cases; "
         "`twograd check NAME` prints the full table")
    if failed:
        echo(failure_details(results))
    return failed == 0


def _finite_or_none(obj: Any) -> Any:
    """`obj` with NaN and infinities replaced by None, so that --json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="three-way gradient check (graph, manual, numeric) of every registered piece",
        description="Run the three-way gradient check (graph vs manual vs finite differences) of the "
        "registered pieces on all their cases and print one line per (piece, parameter). "
        "Exit status 1 on any failure, with the failing reports.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="pieces to check (default: all); see --list")
    p.add_argument("--json", action="store_true", help="print one JSON entry per (piece, parameter) instead of a table")
    p.add_argument("--list", action="store_true", help="list the registered pieces and exit")
    p.add_argument("--seed", type=_seed, default=0, help="seed for inputs and the output weighting (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for piece in pieces():
            print(f"{piece.name:20s} {len(piece.cases)} cases  {piece.description}")
        return 0
    tty = sys.stderr.isatty() and not args.json
    results = run_checks(args.names, seed=args.seed, progress=(lambda n: print(f"checking {n} ...", file=sys.stderr)) if tty else None)
    entries = summarize(results)
    if args.json:
        print(json.dumps(_finite_or_none(entries), indent=1, allow_nan=False))
    else:
        print(format_table(entries))
        if not all(e["passed"] for e in entries):
            print("\n" + failure_details(results))
    return 0 if all(e["passed"] for e in entries) else 1
