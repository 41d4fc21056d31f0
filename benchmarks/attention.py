"""Forward + backward of causal multi-head self-attention: twograd's numpy manual path vs torch.

    python benchmarks/attention.py [--repeats 100] [--block 10] [--warmup 5] [--threads N] [--seed 0]

Shapes: B=16, T=64, d_model=64, 4 heads (head width 16), float32, with all four
projections and their biases. One timed step is forward + backward with a fixed upstream
gradient dout. Both sides do the same math:

* twograd: `nn.mha.self_attention_forward` / `self_attention_backward` with
  `causal_mask(T)` (numpy, hand-derived backward, attention weights cached).
* torch:   x @ Wq + bq etc. as matmuls, `torch.nn.functional.scaled_dot_product_attention
  (is_causal=True)`, output projection, `out.backward(dout)` (autograd).

First the two are checked to agree (the output and all nine gradients), so the comparison
is of equal work. Then they are timed in alternating blocks of `--block` steps (slow drifts
of machine load hit both alike; the first step of each block is not timed, see below) and
the median step of each is reported, with the ratio ours/torch and PASS/FAIL against the
target ratio <= 1.5 (exit status 1 on FAIL). Without torch, twograd's time is printed alone.

Threads: by default both libraries use their own defaults (numpy's OpenBLAS and torch's
intra-op pool, one thread per core). `--threads N` pins both to N threads (set before numpy
is imported); `--threads 1` compares single-core efficiency and is much less sensitive to
other processes competing for the cores.
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

B, T, C, H = 16, 64, 64, 4
TARGET_RATIO = 1.5  # ours / torch, median forward+backward time
AGREE_RTOL = 1e-3  # float32 results of two different summation orders
AGREE_ATOL = 1e-4
NAMES = ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def make_inputs(np: Any, seed: int) -> tuple[Any, dict[str, Any], Any]:
    from nn.mha import init_mha_params

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    params = init_mha_params(C, H, rng, bias=True, dtype=np.float32)
    for n in ("bq", "bk", "bv", "bo"):
        params[n] = (0.1 * rng.standard_normal(C)).astype(np.float32)
    dout = rng.standard_normal((B, T, C)).astype(np.float32)
    return x, params, dout


def ours_step_factory(x: Any, p: dict[str, Any], dout: Any) -> Callable[[], tuple[Any, ...]]:
    from nn.masks import causal_mask
    from nn.mha import self_attention_backward, self_attention_forward

    mask = causal_mask(T)
    weights = [p[n] for n in NAMES]

    def step() -> tuple[Any, ...]:
        out, cache = self_attention_forward(x, *weights, n_heads=H, mask=mask)
        return (out, *self_attention_backward(dout, cache))

    return step


def torch_step_factory(
    torch: Any, x: Any, p: dict[str, Any], dout: Any
) -> tuple[Callable[[], None], Callable[[], list[Any]]]:
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    pt = {n: torch.tensor(a, requires_grad=True) for n, a in p.items()}
    dt = torch.tensor(dout)

    def forward_backward() -> Any:
        for t in (xt, *pt.values()):
            t.grad = None
        q = (xt @ pt["Wq"] + pt["bq"]).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        k = (xt @ pt["Wk"] + pt["bk"]).view(B, T, H, C // H).transpose(1, 2)
        v = (xt @ pt["Wv"] + pt["bv"]).view(B, T, H, C // H).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        out = o.transpose(1, 2).reshape(B, T, C) @ pt["Wo"] + pt["bo"]
        out.backward(dt)
        return out

    def step() -> None:
        forward_backward()

    def results() -> list[Any]:
        out = forward_backward()
        return [out.detach().numpy(), xt.grad.numpy()] + [pt[n].grad.numpy() for n in NAMES]

    return step, results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=100, help="timed steps per side")
    ap.add_argument("--block", type=int, default=10, help="steps of one side timed back to back")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="pin numpy's BLAS and torch to this many threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads is not None:
        if "numpy" in sys.modules:
            print("note: numpy was imported before --threads was read; its BLAS keeps its thread count")
        for var in THREAD_VARIABLES:
            os.environ[var] = str(args.threads)
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout too
    x, p, dout = make_inputs(np, args.seed)
    ours_step = ours_step_factory(x, p, dout)
    print(f"causal multi-head self-attention, B={B} T={T} d_model={C} heads={H}, float32, forward+backward")
    ours_res = ours_step()
    if not all(r.dtype == np.float32 for r in ours_res):
        print("FAIL: twograd's float32 path upcast something")
        return 1

    try:
        import torch
    except ImportError:
        torch = None
    tstep = None
    if torch is not None:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        tstep, tresults = torch_step_factory(torch, x, p, dout)
        for name, a, b in zip(("out", "dx") + NAMES, ours_res, tresults()):
            if not np.allclose(a, b, rtol=AGREE_RTOL, atol=AGREE_ATOL):
                print(f"FAIL: {name} disagrees with torch (max abs diff {np.abs(a - b).max():.3e})")
                return 1
        print(
            f"torch {torch.__version__} agrees on out and all 9 gradients (rtol {AGREE_RTOL}, atol {AGREE_ATOL}); "
            f"threads: torch {torch.get_num_threads()}, numpy BLAS {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
        )
    else:
        print("torch is not installed: timing twograd alone (pip install 'twograd[oracle]' for the comparison)")

    # Blocks of `--block` steps of one side, then of the other. Right after a step of one
    # library its worker threads keep spinning for a moment and would steal the cores from
    # the other library's next step, so the first step of each block runs untimed.
    ours_t: list[float] = []
    torch_t: list[float] = []
    sides: list[tuple[list[float], Callable[[], Any]]] = [(ours_t, ours_step)]
    if tstep is not None:
        sides.append((torch_t, tstep))
    for _ in range(args.warmup):
        for _, step in sides:
            step()
    n_blocks = max(1, -(-args.repeats // args.block))
    for _ in range(n_blocks):
        for times, step in sides:
            step()
            for _ in range(args.block):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)

    ours_med = statistics.median(ours_t)
    print(f"twograd numpy manual:  median {ours_med * 1e3:7.3f} ms  (min {min(ours_t) * 1e3:.3f}, {len(ours_t)} steps)")
    if tstep is None:
        return 0
    torch_med = statistics.median(torch_t)
    ratio = ours_med / torch_med
    print(
        f"torch autograd + SDPA: median {torch_med * 1e3:7.3f} ms  (min {min(torch_t) * 1e3:.3f}, {len(torch_t)} steps)"
    )
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio ours/torch = {ratio:.2f}  (target <= {TARGET_RATIO})  {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
