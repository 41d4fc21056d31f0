"""Tour stage 8: a wide spirals MLP distilled into a narrow one that sees 15 labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.experiments.distill import SETTINGS, SUMMARY, distill, format_distill_report

#: the tour's quick spirals run: fewer steps than the recipe, two seeds.
TOUR_SEEDS, TOUR_STEPS = 2, 600


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Distil a wide spirals MLP into a narrow one that sees 15 labels; True when it beats the labels-only student."""
    from dataclasses import replace

    recipe = replace(SETTINGS["spirals"], teacher_steps=TOUR_STEPS, eval_every=TOUR_STEPS // 6)
    folder = Path(out_dir) / "distill"
    (folder / SUMMARY).unlink(missing_ok=True)  # the tour's own folder: each tour writes a new summary
    report = distill("spirals", seeds=TOUR_SEEDS, steps=TOUR_STEPS, out=folder, echo=echo, recipe=recipe)
    for line in format_distill_report(report).splitlines():
        echo(line)
    return report.stat("distilled_metric")["mean"] > report.stat("student_metric")["mean"]
