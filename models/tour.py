"""`twograd tour`: the main job. One stage per capability, each printing what it checked.

Every stage is a function `tour_stage(out_dir, echo) -> bool` living next to the code it
shows; this module only runs them in order and reports which passed.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path
from typing import Callable

#: (title, module whose `tour_stage` runs it), in the order a reader should meet them.
STAGES: tuple[tuple[str, str], ...] = (
    ("a tanh neuron, differentiated three ways", "models.neuron"),
    ("every nn piece, checked three ways", "models.check"),
    ("an MLP learns XOR, by manual backprop and on the graph", "models.train"),
    ("causal multi-head attention, three ways", "models.attention_demo"),
)


def run_tour(out_dir: Path, echo: Callable[[str], None] = print) -> bool:
    """Run every stage, writing pictures into `out_dir`; True when all stages passed."""
    from models.train import prepare_out_dir

    prepare_out_dir(out_dir)  # a bad --out fails here, in one line, before any stage runs
    results = []
    for i, (title, module) in enumerate(STAGES, 1):
        echo(f"\n== {i}/{len(STAGES)}: {title} ==")
        start = time.perf_counter()
        ok = importlib.import_module(module).tour_stage(out_dir, echo)
        results.append(ok)
        echo(f"-- stage {i} {'passed' if ok else 'FAILED'} ({time.perf_counter() - start:.1f} s)")
    passed = sum(results)
    echo(f"\ntour: {passed} of {len(results)} stages passed; pictures in {out_dir}/")
    return all(results)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tour",
        help="the main job: every capability, checked and drawn",
        description="Walk through twograd's capabilities in order: each stage prints its three-way "
        "gradient check and writes its pictures into --out.",
    )
    p.add_argument("--out", type=Path, default=Path("twograd-out"), help="folder for pictures (default: twograd-out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return 0 if run_tour(args.out) else 1
