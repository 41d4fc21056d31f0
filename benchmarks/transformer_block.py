"""Forward + backward of one Transformer block: twograd's manual pair vs torch.nn.TransformerEncoderLayer.

    python benchmarks/transformer_block.py [--repeats 50] [--pre-norm] [--causal] [--seed 0]
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/transformer_block.py     # one core each

Shapes: B=8, T=32, d_model=64, 4 heads, d_ff=256, ReLU, layer norm, biases; post-norm (the
paper) unless --pre-norm. Both sides get the same weights; one step is forward + backward
from a fixed dout, with every parameter's gradient. Each dtype (float32, float64) is first
checked to agree with torch, then both sides are timed, alternating step by step (so load
drifts hit both alike), and the median step is printed in ms. No target: a measurement.

Threads: by default each library uses its own pool (a thread per core). On a busy machine
the pools oversubscribe the cores and both times balloon (two cores under load: ~140 ms a
step instead of ~3 ms); OMP_NUM_THREADS=1 (torch, and OpenBLAS built with OpenMP) with
OPENBLAS_NUM_THREADS=1 pins both to one thread and measures single-core work. The line
printed first says which pools ran.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout too

B, T, C, H, F = 8, 32, 64, 4, 256
#: Agreement with torch before timing, by dtype name: float64 is rounding order only;
#: float32 keeps ~7 digits through two norms, softmax and the FFN.
AGREE_ATOL = {"float32": 2e-3, "float64": 1e-10}


def ours_factory(block: Any, x: Any, dout: Any) -> Callable[[], tuple[Any, ...]]:
    from nn.transformer_block import block_param_names, transformer_block_backward, transformer_block_forward

    params = [block.params[n].astype(x.dtype) for n in block_param_names(block.norm, block.bias)]

    def step() -> tuple[Any, ...]:
        y, cache = transformer_block_forward(x, *params, n_heads=H, norm_first=block.norm_first, causal=block.causal)
        return (y, *transformer_block_backward(dout, cache))

    return step


def torch_factory(torch: Any, block: Any, x: Any, dout: Any) -> Callable[[], tuple[Any, ...]]:
    tdt = torch.float32 if x.dtype.name == "float32" else torch.float64
    layer = torch.nn.TransformerEncoderLayer(
        C, H, F, dropout=0.0, activation="relu", batch_first=True, norm_first=block.norm_first, dtype=tdt
    )
    p = {n: torch.from_numpy(a.astype(x.dtype)) for n, a in block.named_parameters()}
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([p["Wq"].T, p["Wk"].T, p["Wv"].T]))
        layer.self_attn.in_proj_bias.copy_(torch.cat([p["bq"], p["bk"], p["bv"]]))
        layer.self_attn.out_proj.weight.copy_(p["Wo"].T)
        layer.self_attn.out_proj.bias.copy_(p["bo"])
        for lin, W, b in ((layer.linear1, "W1", "b1"), (layer.linear2, "W2", "b2")):
            lin.weight.copy_(p[W].T)
            lin.bias.copy_(p[b])
        for ln, g, s in ((layer.norm1, "gamma1", "beta1"), (layer.norm2, "gamma2", "beta2")):
            ln.weight.copy_(p[g])
            ln.bias.copy_(p[s])
    xt = torch.tensor(x, requires_grad=True)
    dt = torch.from_numpy(dout)
    mask = ~torch.ones(T, T, dtype=torch.bool).tril() if block.causal else None

    def step() -> tuple[Any, ...]:
        xt.grad = None
        layer.zero_grad(set_to_none=True)
        y = layer(xt, src_mask=mask, is_causal=block.causal)
        y.backward(dt)
        return y.detach().numpy(), xt.grad.numpy()

    return step


def median_ms(steps: list[Callable[[], Any]], repeats: int) -> list[float]:
    """The median time of each step in ms, the steps run alternately `repeats` times (after one warm-up each)."""
    times: list[list[float]] = [[] for _ in steps]
    for step in steps:
        step()
    for _ in range(repeats):
        for i, step in enumerate(steps):
            t0 = time.perf_counter()
            step()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e3 for t in times]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--pre-norm", action="store_true", help="norm_first=True (GPT-2) instead of the paper's post-norm")
    ap.add_argument("--causal", action="store_true", help="a causal mask")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from nn.transformer_block import TransformerBlock

    try:
        import torch
    except ImportError:
        torch = None

    rng = np.random.default_rng(args.seed)
    block = TransformerBlock(C, H, F, norm_first=args.pre_norm, causal=args.causal, rng=rng)
    block.load_state_dict({n: p + 0.1 * rng.standard_normal(p.shape) for n, p in block.state_dict().items()})
    x64, dout64 = rng.standard_normal((B, T, C)), rng.standard_normal((B, T, C))
    print(
        f"Transformer block ({'pre' if args.pre_norm else 'post'}-norm{', causal' if args.causal else ''}), "
        f"B={B} T={T} d_model={C} heads={H} d_ff={F}, forward+backward, median of {args.repeats}, "
        f"threads: torch {torch.get_num_threads() if torch is not None else '-'}, "
        f"OpenBLAS {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
    )
    status = 0
    for dtype in (np.float32, np.float64):
        x, dout = x64.astype(dtype), dout64.astype(dtype)
        ours = ours_factory(block, x, dout)
        out = ours()
        if not all(a.dtype == dtype for a in out):
            print(f"FAIL: {np.dtype(dtype).name} in gave {sorted({a.dtype.name for a in out})} out")
            status = 1
        steps = [ours]
        if torch is not None:
            theirs = torch_factory(torch, block, x, dout)
            for name, a, b in zip(("y", "dx"), out, theirs()):
                if not np.allclose(a, b, rtol=0.0, atol=AGREE_ATOL[np.dtype(dtype).name]):
                    print(
                        f"FAIL: {name} disagrees with torch in {np.dtype(dtype).name} (max abs {np.abs(a - b).max():.2e})"
                    )
                    status = 1
            steps.append(theirs)
        ms = median_ms(steps, args.repeats)
        line = f"{np.dtype(dtype).name}: twograd {ms[0]:7.2f} ms"
        if torch is not None:
            line += f"   torch {torch.__version__} {ms[1]:7.2f} ms   ratio {ms[0] / ms[1]:.2f}"
        print(line)
    if torch is None:
        print("torch is not installed: twograd's times alone")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
