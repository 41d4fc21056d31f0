"""What replaceable kernels cost: the default paths (twograd's own pieces) and a learner's pieces.

    PYTHONPATH=TREE python benchmarks/learner_pieces.py [--repeats 30] [--xor-runs 5] [--learner DIR]

Times, in this process, on the tree that PYTHONPATH names (so the same script measures a tree
before and after a change):

* gpt fused:     one `GPT.loss_and_grad` (the fused step) on the reverse task's model and batch
                 (vocabulary 11, context 10, width 32, 2 heads, 2 blocks, batch 32, float64);
* gpt composed:  one `GPT.loss_and_grad_composed` (the composed nn pairs) on the same;
* mlp composed:  one `MLP.loss_and_grads` on xor (2-4-1 tanh, mse);
* train xor:     a whole `models.train("xor", quiet=True)` (500 fused steps and the evaluation);
* with --learner DIR (a workspace whose pieces passed `twograd learn check`): the GPT's and the
  MLP's composed steps on the learner's kernels (`models.training.learner`), and `train xor`
  and `train reverse` with `learner=DIR`.

Printed: the median ms of each (after warm-up), in CPU time of this process (`time.process_time`,
one BLAS thread): on a machine shared with other work, wall time measures the neighbours as much
as the code. `--clock wall` prints wall time instead. It measures; it does not gate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# benchmarks/engine.py would shadow the package `engine`: import the tree PYTHONPATH names instead
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import os  # noqa: E402

# one BLAS thread unless told: on a shared machine the default threads spin and the medians mean nothing
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCK["cpu"]


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--xor-runs", type=int, default=5)
    parser.add_argument("--learner", metavar="DIR", help="also time a learner's pieces from this workspace")
    parser.add_argument(
        "--clock", choices=tuple(CLOCK), default="cpu", help="CPU time of this process (default) or wall time"
    )
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]

    import models
    from models.data.sequences import DigitSequences
    from models.zoo.gpt import GPT, GPTConfig
    from models.zoo.mlp import MLP, MLPConfig

    print(f"tree: {models.__file__}  ({args.clock} time)")
    config = GPTConfig(vocab_size=11, context=10, d_model=32, n_heads=2, n_layers=2, activation="gelu_tanh")
    data = DigitSequences("reverse", n_symbols=10, length=5, seed=0)
    idx, targets = data.batch(np.random.default_rng(0), 32)
    gpt = GPT(config)
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    mlp = MLP(MLPConfig(sizes=[2, 4, 1]))
    rows = [
        ("gpt fused step", median_ms(lambda: gpt.loss_and_grad(idx, targets), args.repeats)),
        ("gpt composed step", median_ms(lambda: gpt.loss_and_grad_composed(idx, targets), args.repeats)),
        ("mlp composed step (xor)", median_ms(lambda: mlp.loss_and_grads(x, y), args.repeats * 10)),
        ("train xor (whole run)", median_ms(lambda: models.train("xor", quiet=True), args.xor_runs, warmup=1)),
    ]
    if args.learner:
        from models.training.learner import load_pieces

        gpt_pieces = load_pieces(args.learner, "reverse", {"gpt": config.to_dict()})
        mlp_pieces = load_pieces(args.learner, "xor", MLPConfig(sizes=[2, 4, 1]).to_dict())
        gpt_l = GPT(config, kernels=gpt_pieces.kernels)
        mlp_l = MLP(MLPConfig(sizes=[2, 4, 1]), kernels=mlp_pieces.kernels)
        rows += [
            ("gpt step on the learner's pieces", median_ms(lambda: gpt_l.loss_and_grad(idx, targets), args.repeats)),
            ("mlp step on the learner's pieces", median_ms(lambda: mlp_l.loss_and_grads(x, y), args.repeats * 10)),
            (
                "train xor --learner (whole run)",
                median_ms(lambda: models.train("xor", learner=args.learner, quiet=True), args.xor_runs, warmup=1),
            ),
            ("train reverse (whole run)", median_ms(lambda: models.train("reverse", quiet=True), 1, warmup=0)),
            (
                "train reverse --learner (whole run)",
                median_ms(lambda: models.train("reverse", learner=args.learner, quiet=True), 1, warmup=0),
            ),
        ]
    width = max(len(name) for name, _ in rows)
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:10.3f} ms")


if __name__ == "__main__":
    main()
