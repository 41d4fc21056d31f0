"""`twograd tour`: the main job. One stage per capability, each printing what it checked.

Every stage is a function `tour_stage(out_dir, echo) -> bool` in a module of its own in this
package (`models.tour_stages.neuron`, `models.tour_stages.xor`, ...); this module only runs
them in order and reports which passed (`run_tour` returns a `TourResult`, whose `to_json()` is the `twograd tour --json` object). The command line
(models/cli/tour.py) only parses arguments and prints.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        """"1 of 4 tour stages failed: ..." (empty when all passed)."""
        bad = [s.title for s in self.stages if not s.passed]
        return f"{len(bad)} of {len(self.stages)} tour stages failed: {'; '.join(bad)}" if bad else ""

    @property
    def metrics(self) -> dict[str, float]:
        """Stages passed, stages run, and the seconds they took."""
        return {"passed": sum(s.passed for s in self.stages), "stages": len(self.stages),
                "seconds": sum(s.seconds for s in self.stages)}

    def text(self) -> str:
        lines = [f"{i}/{len(self.stages)} {'passed' if s.passed else 'FAILED'}  {s.title} ({s.seconds:.1f} s)"
                 for i, s in enumerate(self.stages, 1)]
        lines.append(f"tour: {self.metrics['passed']} of {len(self.stages)} stages passed; pictures in {self.out_dir}/")
        return "\n".join(lines)

    def html_title(self) -> str:
        return f"twograd tour: {self.metrics['passed']} of {len(self.stages)} stages passed"

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        return (["stage", "title", "result", "seconds"],
                [[str(i), s.title, "passed" if s.passed else "FAILED", f"{s.seconds:.1f}"] for i, s in enumerate(self.stages, 1)])

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


def prepare_tour_dir(out_dir: Path) -> Path:
    """Create `out_dir` and check it is writable; InputError (naming --out) when it is a file or read-only."""
    from models.training.runs import writable_folder

    return writable_folder(out_dir, "--out")


def run_tour(out_dir: Path, echo: Callable[[str], None] = print) -> TourResult:
    """Run every stage, writing pictures into `out_dir`; every line a stage prints goes to `echo`
    and is kept in its `StageResult.lines`."""
    out_dir = prepare_tour_dir(Path(out_dir))  # a bad --out fails here, in one line, before any stage runs
    result = TourResult(out_dir=out_dir)
    for i, (title, module) in enumerate(STAGES, 1):
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
