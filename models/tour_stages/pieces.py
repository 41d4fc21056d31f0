"""Tour stage 2: every registered nn piece checked three ways (graph, manual, numeric), one line per piece."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.check import failure_details, format_summary, run_checks, summarize


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage: every registered piece checked three ways, one summary line per piece."""
    del out_dir  # this stage draws nothing
    results = run_checks()
    entries = summarize(results)
    echo(format_summary(entries))
    failed = sum(not e["passed"] for e in entries)
    n_cases = len(results)
    echo(
        f"{len(entries) - failed} of {len(entries)} (piece, parameter) checks passed over {n_cases} cases; "
        "`twograd check NAME` prints the full table"
    )
    if failed:
        echo(failure_details(results))
    return failed == 0
