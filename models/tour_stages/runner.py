"""`twograd tour`: the main job. One stage per capability, each printing what it checked.

Every stage is a function `tour_stage(out_dir, echo) -> bool` in a module of its own in this
package (`models.tour_stages.neuron`, `models.tour_stages.xor`, ...); this module only runs
them in order and reports which passed (`run_tour` returns a `TourResult`, whose `to_json()` is the `twograd tour --json` object). The command line
(models/cli/tour.py) only parses arguments and prints.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import InputError
from models.reports import Shown

#: (title, module whose `tour_stage` runs it), in the order a reader should meet them.
STAGES: tuple[tuple[str, str], ...] = (
    ("a tanh neuron, differentiated three ways", "models.tour_stages.neuron"),
    ("every nn piece, checked three ways", "models.tour_stages.pieces"),
    ("an MLP learns XOR, by manual backprop and on the graph", "models.tour_stages.xor"),
    ("causal multi-head attention, three ways", "models.tour_stages.attention"),
    ("the Transformer block, three ways and drawn by sub-layer", "models.tour_stages.transformer"),
    ("a tiny transformer learns to reverse", "models.tour_stages.reverse"),
    ("the scalar engine trains a micro GPT, a Value per number", "models.tour_stages.micro"),
    ("a wide MLP distilled into a narrow one that sees 15 labels", "models.tour_stages.distill"),
    ("alignment: a reward model, best-of-n, REINFORCE+KL and DPO", "models.tour_stages.align"),
)


def _number(stage: StageResult) -> int:
    """A stage's place in the whole tour (1-based), also when only some stages ran."""
    return [module for _, module in STAGES].index(stage.module) + 1


@dataclass
class StageResult:
    """One stage: its title, the module that ran it, whether it passed, its time and what it printed."""

    title: str
    module: str
    passed: bool
    seconds: float
    lines: list[str] = field(default_factory=list)


@dataclass(repr=False)
class TourResult(Shown):
    """Every stage's result, in order, and the folder the pictures went to; it prints as one line
    per stage in a REPL and as a table of the stages in a notebook."""

    out_dir: Path
    stages: list[StageResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.stages)

    def failure_sentence(self) -> str:
        """ "1 of 4 tour stages failed: ..." (empty when all passed)."""
        bad = [s.title for s in self.stages if not s.passed]
        return f"{len(bad)} of {len(self.stages)} tour stages failed: {'; '.join(bad)}" if bad else ""

    @property
    def metrics(self) -> dict[str, float]:
        """Stages passed, stages run, and the seconds they took."""
        return {
            "passed": sum(s.passed for s in self.stages),
            "stages": len(self.stages),
            "seconds": sum(s.seconds for s in self.stages),
        }

    def text(self) -> str:
        lines = [
            f"{_number(s)}/{len(STAGES)} {'passed' if s.passed else 'FAILED'}  {s.title} ({s.seconds:.1f} s)"
            for s in self.stages
        ]
        lines.append(f"tour: {self.metrics['passed']} of {len(self.stages)} stages passed; pictures in {self.out_dir}/")
        return "\n".join(lines)

    def html_title(self) -> str:
        return f"twograd tour: {self.metrics['passed']} of {len(self.stages)} stages passed"

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        return (
            ["stage", "title", "result", "seconds"],
            [[str(_number(s)), s.title, "passed" if s.passed else "FAILED", f"{s.seconds:.1f}"] for s in self.stages],
        )

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: passed, out_dir, each stage (with its printed lines), and "error" on failure."""
        out: dict[str, Any] = {
            "passed": self.passed,
            "out_dir": str(self.out_dir),
            "stages": [
                {"title": s.title, "module": s.module, "passed": s.passed, "seconds": s.seconds, "lines": s.lines}
                for s in self.stages
            ],
        }
        if not self.passed:
            out["error"] = self.failure_sentence()
        return out


#: top-level entries of the tour's folder it never looks at: twograd-out/runs/ keeps the runs that
#: were interrupted without --out (models.training.runs.DEFAULT_ROOT), which are not the tour's.
TOUR_SKIPS = frozenset({"runs"})


def prepare_tour_dir(out_dir: Path, overwrite: bool = False, replace_own: bool = True) -> Path:
    """Create `out_dir` by the one --out rule (models.training.runs.prepare_out), the tour owning its
    folder: its own files from an earlier tour are removed first (no stale .dot beside a new .svg),
    and only files it did not write stop it (unless `overwrite`). `replace_own` False (a run of some
    stages) keeps the earlier tour's files, replacing only those written again. InputError (naming
    --out) when it is a file or read-only."""
    from models.training.runs import prepare_out

    return prepare_out(
        out_dir,
        overwrite=overwrite,
        resumable=False,
        command="tour",
        owns_its_files=True,
        skip_top=TOUR_SKIPS,
        replace_own=replace_own,
    )


def stage_name(module: str) -> str:
    """A stage's short name, as `--stage` takes it: the last part of its module ("micro")."""
    return module.rsplit(".", 1)[1]


def select_stages(wanted: Sequence[str] | None) -> list[int]:
    """The 1-based numbers of the stages `wanted` names (a number 1..9 or a short name such as
    "micro"), in tour order; every stage when `wanted` is None or empty. InputError for an unknown one."""
    if not wanted:
        return list(range(1, len(STAGES) + 1))
    names = {stage_name(module): i for i, (_, module) in enumerate(STAGES, 1)}
    chosen: set[int] = set()
    for item in wanted:
        key = str(item).strip().lower()
        if key.isdigit() and 1 <= int(key) <= len(STAGES):
            chosen.add(int(key))
        elif key in names:
            chosen.add(names[key])
        else:
            raise InputError(f"--stage: no stage {item!r}; give a number 1-{len(STAGES)} or one of: {', '.join(names)}")
    return sorted(chosen)


def run_tour(
    out_dir: Path, echo: Callable[[str], None] = print, stages: Sequence[str] | None = None, overwrite: bool = False
) -> TourResult:
    """Run every stage (or those `stages` names: numbers or short names, see `select_stages`), writing
    pictures into `out_dir`; every line a stage prints goes to `echo` and is kept in its `StageResult.lines`.
    A whole tour replaces the tour's files from an earlier one; some stages add to them."""
    from models.training.runs import release_folder

    numbers = select_stages(stages)  # an unknown stage fails here, before anything is written
    whole = len(numbers) == len(STAGES)
    out_dir = prepare_tour_dir(Path(out_dir), overwrite, replace_own=whole)  # a bad --out fails here, before any stage
    try:
        return _run_stages(out_dir, echo, numbers)
    finally:
        release_folder(out_dir)  # lists what the tour wrote, so the next tour replaces exactly that


def _run_stages(out_dir: Path, echo: Callable[[str], None], numbers: list[int]) -> TourResult:
    result = TourResult(out_dir=out_dir)
    for i, (title, module) in enumerate(STAGES, 1):
        if i not in numbers:
            continue
        echo(f"\n== {i}/{len(STAGES)}: {title} ==")
        lines: list[str] = []

        def stage_echo(msg: str, lines: list[str] = lines) -> None:  # this stage's list, bound now
            lines.append(msg)
            echo(msg)

        start = time.perf_counter()
        ok = bool(importlib.import_module(module).tour_stage(out_dir, stage_echo))
        seconds = time.perf_counter() - start
        result.stages.append(StageResult(title, module, ok, seconds, lines))
        echo(f"-- stage {i} {'passed' if ok else 'FAILED'} ({seconds:.1f} s)")
    passed = sum(s.passed for s in result.stages)
    echo(f"\ntour: {passed} of {len(result.stages)} stages passed; pictures in {out_dir}/")
    return result
