"""`twograd check`: run the registry's three-way gradient checks and summarise them.

One line per (piece, parameter), over all of the piece's cases: the largest
graph-vs-manual and manual-vs-numeric differences, where the worst one is (case and
index), and whether every comparison is within its named tolerance (`engine.EXACT`,
`engine.NUMERIC`, or the piece's own). The loops forward is compared with the manual
forward too; a piece whose forwards disagree fails on every line. A failing piece also
gets its full report: every source's value at the worst index.

This module is the library behind the command (models/cli/check.py only parses arguments
and prints): `run_checks` -> `summarize` -> `format_table` / `check_report` (the --json
object), and `piece_listing` / `format_listing` for `--list`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import GradientReport, GradientRow, UnknownNameError
from engine.gradcheck import text_table
from nn.registry import Piece, all_pieces, check_piece

#: The pseudo-input under which `check_three_way` compares the two forwards.
FORWARD = "output"


def pieces(names: Sequence[str] = ()) -> list[Piece]:
    """The registered pieces named (all by default, from nn and models); UnknownNameError naming unknown ones."""
    known = {p.name: p for p in all_pieces()}
    unknown = [n for n in names if n not in known]
    if unknown:
        import difflib

        hints = [
            f"{n!r}"
            + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(n.lower(), known, 1)) else "")
            for n in unknown
        ]
        raise UnknownNameError(
            f"unknown piece{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; known: {', '.join(sorted(known))}"
        )
    return [known[n] for n in names] if names else list(known.values())


def piece_listing(names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Name, defining module, case names, tags, torch referee and description of each piece (for `--list`)."""
    return [
        {
            "name": p.name,
            "module": p.forward.__module__,
            "cases": [c.name for c in p.cases],
            "tags": list(p.tags),
            "torch_referee": p.torch is not None,
            "description": p.description,
        }
        for p in pieces(names)
    ]


def format_listing(listing: list[dict[str, Any]]) -> str:
    """One line per piece: name, number of cases, description; then a count by defining package."""
    width = max((len(e["name"]) for e in listing), default=0)
    lines = [
        f"{e['name']:{width}s}  {len(e['cases'])} case{'s' if len(e['cases']) != 1 else ' '}  {e['description']}"
        for e in listing
    ]
    by_package: dict[str, int] = {}
    for e in listing:
        top = e["module"].split(".")[0]
        by_package[top] = by_package.get(top, 0) + 1
    lines.append(
        f"{len(listing)} piece{'s' if len(listing) != 1 else ''} ("
        + ", ".join(f"{n} from {pkg}" for pkg, n in by_package.items())
        + ")"
    )
    return "\n".join(lines)


@dataclass
class CaseReport:
    """The three-way report of one piece on one case."""

    piece: str
    case: str
    report: GradientReport


def run_checks(
    names: Sequence[str] = (), seed: int = 0, progress: Callable[[str], None] | None = None
) -> list[CaseReport]:
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
    allowed = row.tolerance.atol + row.tolerance.rtol * max(
        abs(v) for k, v in row.values.items() if k in (row.left, row.right)
    )
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
            [
                e["piece"],
                e["parameter"],
                _shape_text(e["shapes"]),
                f"{gm['max_abs']:.1e}",
                f"{gm['max_rel']:.1e}",
                f"{mn['max_abs']:.1e}",
                f"{mn['max_rel']:.1e}",
                _worst_at(e),
                "ok" if e["passed"] else "FAIL",
            ]
        )
    lines = [text_table(head, rows)]
    failed = sum(not e["passed"] for e in entries)
    n_pieces = len({e["piece"] for e in entries})
    lines.append(
        f"{len(entries) - failed} passed, {failed} failed ({n_pieces} piece{'s' if n_pieces != 1 else ''}; "
        "rel is shown where |value| > atol)"
    )
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
        rows.append(
            [
                name,
                str(n_cases),
                str(len(es)),
                f"{gm:.1e}",
                f"{mn:.1e}",
                "ok" if all(e["passed"] for e in es) else "FAIL",
            ]
        )
    return text_table(head, rows)


def check_report(results: list[CaseReport], seed: int = 0) -> dict[str, Any]:
    """The `--json` object: the entries of `summarize`, counts, and on failure an "error" sentence."""
    entries = summarize(results)
    failed = sum(not e["passed"] for e in entries)
    report: dict[str, Any] = {
        "passed": failed == 0,
        "seed": seed,
        "n_pieces": len({e["piece"] for e in entries}),
        "n_cases": len(results),
        "n_checks": len(entries),
        "n_failed": failed,
        "entries": entries,
    }
    if failed:
        report["error"] = failure_sentence(entries)
    return report


def failure_sentence(entries: list[dict[str, Any]]) -> str:
    """ "2 of 58 (piece, parameter) checks failed: tanh x, linear W" (empty when all passed)."""
    bad = [e for e in entries if not e["passed"]]
    if not bad:
        return ""
    return f"{len(bad)} of {len(entries)} (piece, parameter) checks failed: " + ", ".join(
        f"{e['piece']} {e['parameter']}" for e in bad
    )
