"""The engine at the edges of its ops' domains (NaN, -0.0), refereed by PyTorch autograd in float64.

Each case was once different from torch: sqrt(nan) had slope inf, sqrt(-0.0) slope +inf, relu(nan)
slope 0, abs(nan) slope nan. Here both value and slope must be torch's, bit for bit (NaN == NaN,
and the sign of an infinity or a zero counts): these are special values, not rounding, so there is
no tolerance to name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
from engine import Value  # noqa: E402

NAN = math.nan

# (name, engine function, torch function, point)
EDGES: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], float]] = [
    ("sqrt(nan)", engine.sqrt, torch.sqrt, NAN),
    ("sqrt(-0.0)", engine.sqrt, torch.sqrt, -0.0),
    ("sqrt(0.0)", engine.sqrt, torch.sqrt, 0.0),
    ("sqrt(inf)", engine.sqrt, torch.sqrt, math.inf),
    ("relu(nan)", engine.relu, torch.relu, NAN),
    ("relu(0.0)", engine.relu, torch.relu, 0.0),
    ("relu(inf)", engine.relu, torch.relu, math.inf),
    ("abs(nan)", abs, torch.abs, NAN),
    ("abs(-0.0)", abs, torch.abs, -0.0),
    ("abs(-inf)", abs, torch.abs, -math.inf),
]


def _same_float(a: float, b: float) -> bool:
    """Equal as IEEE doubles, sign included: NaN equals NaN, -0.0 differs from 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.parametrize("name, f_engine, f_torch, x", EDGES, ids=[e[0] for e in EDGES])
def test_edge_value_and_slope_are_torchs(name: str, f_engine: Callable, f_torch: Callable, x: float) -> None:
    v = Value(x)
    out = f_engine(v)
    out.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    f_torch(t).backward()
    assert _same_float(v.grad, t.grad.item()), f"{name}: slope {v.grad!r}, torch {t.grad.item()!r}"
    assert _same_float(out.data, f_torch(t.detach()).item()), f"{name}: value {out.data!r}"
