"""One full-batch training step of a small MLP: twograd's numpy manual path vs torch.

    python benchmarks/mlp.py [--runs 7] [--block 200] [--seed 0]

A step is forward + backward + optimizer update over the whole training set, float64 on
both sides, Adam (lr 0.01, betas (0.9, 0.999), eps 1e-8):

* xor:   2-4-1 tanh MLP, mse loss, the 4 XOR points;
* moons: 2-16-16-2 tanh MLP, softmax cross-entropy, 200 two-moons points.

twograd: `MLP.fused_loss_and_grad` (the same math as the composed nn pieces, checked
against them and the registry in tests/models/test_mlp.py) + `nn.optim.Adam` over the flat
parameter vector. torch: `nn.Sequential` of `Linear`/`Tanh`, `F.mse_loss` /
`F.cross_entropy`, `loss.backward()`, and torch's fastest CPU Adam (`fused=True` where
this torch has it, else the default). Both run single-threaded (OPENBLAS_NUM_THREADS=1
for numpy, set before numpy is imported; `torch.set_num_threads(1)`): at these sizes
threads only add overhead, and the machine's other jobs would make them noisy.

Before timing, both sides start from the same weights and must agree on the first
step's loss and on the weights after 5 steps (so the work is equal). Timing: blocks of
`--block` steps of one side, then of the other, `--runs` times; the time per step is the
median over blocks. Targets (ours / torch): <= 0.25 for xor, <= 0.5 for moons; each
prints PASS/FAIL (exit status 1 on a FAIL). Without torch, twograd's time is printed alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout too

from models.data.datasets import load_dataset
from models.zoo.mlp import MLP, MLPConfig
from nn.optim import Adam

LR = 0.01
TARGETS = {"xor": 0.25, "moons": 0.5}  # ours / torch, median time per step
WORKLOADS = {  # name: (sizes, loss)
    "xor": ([2, 4, 1], "mse"),
    "moons": ([2, 16, 16, 2], "cross_entropy"),
}
AGREE_RTOL = 1e-9  # float64, different summation orders, 5 Adam steps
AGREE_ATOL = 1e-12
CHECK_STEPS = 5


def ours_factory(name: str, seed: int) -> tuple[Callable[[], float], MLP]:
    sizes, loss = WORKLOADS[name]
    data = load_dataset(name, seed=seed)
    model = MLP(MLPConfig(sizes=sizes, activation="tanh", loss=loss, seed=seed))
    opt = Adam([(model.flat_params, model.flat_grads)], lr=LR)
    X = data.X_train
    T = model.targets(data.y_train)

    def step() -> float:
        loss_value = model.fused_loss_and_grad(X, T)
        opt.step()
        return loss_value

    return step, model


def torch_factory(
    torch: Any, name: str, seed: int, start: MLP
) -> tuple[Callable[[], float], Callable[[], np.ndarray], str]:
    """The same network as `start` (same weights) in torch; returns (step, flat params, Adam variant)."""
    F = torch.nn.functional
    sizes, loss = WORKLOADS[name]
    data = load_dataset(name, seed=seed)
    layers: list[Any] = []
    for l in range(1, len(sizes)):
        lin = torch.nn.Linear(sizes[l - 1], sizes[l], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(start.params[f"W{l}"].T.copy()))  # torch stores W^T
            lin.bias.copy_(torch.from_numpy(start.params[f"b{l}"].copy()))
        layers.append(lin)
        if l < len(sizes) - 1:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    X = torch.from_numpy(data.X_train.copy())
    T = torch.from_numpy(start.targets(data.y_train))
    try:
        opt = torch.optim.Adam(net.parameters(), lr=LR, fused=True)
        variant = "fused"
    except (TypeError, RuntimeError):
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        variant = "default"
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = loss_fn(net(X), T)
        out.backward()
        opt.step()
        return out.item()

    def flat() -> np.ndarray:
        parts = []
        for lin in layers[::2]:
            parts += [lin.weight.detach().numpy().T.reshape(-1), lin.bias.detach().numpy().reshape(-1)]
        return np.concatenate(parts)

    return step, flat, variant


def time_blocks(sides: list[tuple[list[float], Callable[[], Any]]], runs: int, block: int) -> None:
    """Alternate blocks of `block` steps per side; append the time per step of each block."""
    for _ in range(runs):
        for times, step in sides:
            step()  # the first step after switching sides pays for the other's cache traffic
            t0 = time.perf_counter()
            for _ in range(block):
                step()
            times.append((time.perf_counter() - t0) / block)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed blocks per side")
    ap.add_argument("--block", type=int, default=200, help="steps per timed block")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, numpy {np.__version__}; float64 on both sides, 1 thread each")
    else:
        print(f"numpy {np.__version__}; torch is not installed: timing twograd alone (pip install 'twograd[oracle]')")

    failed = False
    for name, (sizes, loss) in WORKLOADS.items():
        ours_step, model = ours_factory(name, args.seed)
        line = f"{name:5s} {'-'.join(map(str, sizes))} tanh, {loss}, Adam:"
        ours_t: list[float] = []
        sides = [(ours_t, ours_step)]
        torch_t: list[float] = []
        if torch is not None:
            torch_step, torch_flat, variant = torch_factory(torch, name, args.seed, model)
            for k in range(CHECK_STEPS):
                a, b = ours_step(), torch_step()
                if k == 0 and not np.isclose(a, b, rtol=AGREE_RTOL, atol=AGREE_ATOL):
                    print(f"FAIL: {name}: first loss {a!r} (twograd) vs {b!r} (torch)")
                    return 1
            diff = float(np.max(np.abs(model.flat_params - torch_flat())))
            if not np.allclose(model.flat_params, torch_flat(), rtol=AGREE_RTOL, atol=AGREE_ATOL):
                print(f"FAIL: {name}: weights differ by {diff:.3e} after {CHECK_STEPS} steps")
                return 1
            sides.append((torch_t, torch_step))
            line += f" agree with torch after {CHECK_STEPS} steps (max weight diff {diff:.1e}); torch Adam {variant}"
        print(line)
        for _, step in sides:  # warm-up
            for _ in range(args.block):
                step()
        time_blocks(sides, args.runs, args.block)
        ours_med = statistics.median(ours_t) * 1e6
        msg = f"      twograd {ours_med:7.1f} us/step (min {min(ours_t) * 1e6:.1f})"
        if torch is not None:
            torch_med = statistics.median(torch_t) * 1e6
            ratio = ours_med / torch_med
            verdict = "PASS" if ratio <= TARGETS[name] else "FAIL"
            failed |= verdict == "FAIL"
            msg += f"   torch {torch_med:7.1f} us/step (min {min(torch_t) * 1e6:.1f})   ratio {ratio:.3f} (target <= {TARGETS[name]}) {verdict}"
        print(msg)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
