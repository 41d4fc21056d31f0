"""Gradient checking: finite differences, graph gradients of loops-form code, comparisons.

This is the spine every layer and model is judged by. Three sources of a gradient:

* **graph**   `graph_gradients`: run a loops-form function on `Value`s, call `backward()`.
* **manual**  a hand-derived backward (written in `nn`, not here).
* **numeric** `numerical_gradient` / `numerical_gradient_arrays`: central differences

      df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

  whose error is O(eps^2) from truncation plus O(u |f| / eps) from rounding
  (u ~ 1.1e-16 in float64): eps = 1e-6 balances the two at about 1e-10 relative.

`compare_gradients` lines two or three of these up and returns a `GradientReport`; its
text form is a table; `assert_gradients_close` raises AssertionError carrying that table.

Nothing here imports numpy: the array functions use only methods of the arrays they are
given (`.shape`, `.reshape()`, `.copy()`, `.flat`, `.tolist()`), so `import engine` stays numpy-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from engine.functions import data_of
from engine.value import Value

DEFAULT_EPS = 1e-6


# ------------------------------------------------------------------ tolerances
@dataclass(frozen=True)
class Tolerance:
    """An element passes when |a - b| <= atol + rtol * max(|a|, |b|)."""

    atol: float
    rtol: float
    why: str = ""

    def allowed(self, a: float, b: float) -> float:
        return self.atol + self.rtol * max(abs(a), abs(b))


#: graph vs manual: the same arithmetic in float64, only the order of rounding differs.
EXACT = Tolerance(atol=1e-12, rtol=1e-10, why="same math in float64; only rounding order differs")
#: anything vs central differences with eps=1e-6: truncation O(eps^2) + rounding O(u|f|/eps).
NUMERIC = Tolerance(atol=1e-7, rtol=1e-6, why="central differences, eps=1e-6: error ~1e-10*|f|")


# ------------------------------------------------------------------ numeric gradients
def numerical_gradient(f: Callable[..., float], xs: Sequence[float], eps: float = DEFAULT_EPS) -> list[float]:
    """Central-difference gradient of a function of scalars, `f(*xs) -> float`."""
    point = [float(x) for x in xs]
    grad = []
    for i, x in enumerate(point):
        point[i] = x + eps
        f_plus = data_of(f(*point))
        point[i] = x - eps
        f_minus = data_of(f(*point))
        point[i] = x
        grad.append((f_plus - f_minus) / (2.0 * eps))
    return grad


def numerical_gradient_arrays(
    f: Callable[[dict[str, Any]], float],
    arrays: Mapping[str, Any],
    eps: float = DEFAULT_EPS,
    names: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Central-difference gradient of `f(arrays) -> float` for each array in `names`.

    `arrays` maps names to float64 numpy arrays; each entry of each array named in
    `names` (default: all) is nudged by +-eps in turn. Returns name -> array of the
    same shape. The caller's arrays are not modified.
    """
    # float64 copies: a nudge of eps written into an int or float32 array would be lost.
    work = {k: v.astype("float64", order="C", copy=True) for k, v in arrays.items()}
    grads = {}
    for name in names if names is not None else list(arrays):
        a = work[name]
        g = a.astype("float64", copy=True)
        flat = a.reshape(-1)  # a view: writing to it nudges `work[name]`
        for i in range(flat.shape[0]):
            x = flat[i]
            flat[i] = x + eps
            f_plus = data_of(f(work))
            flat[i] = x - eps
            f_minus = data_of(f(work))
            flat[i] = x
            g.flat[i] = (f_plus - f_minus) / (2.0 * eps)
        grads[name] = g
    return grads


# ------------------------------------------------------------------ graph gradients
def to_values(array: Any, name: str = "") -> Any:
    """Nested lists of leaf `Value`s with the shape of `array`, labelled `name[i,j]`.

    A 0-d array (or a float) becomes a single Value.
    """
    return _leaves(array, name)[0]


@lru_cache(maxsize=1024)
def _labels(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """The labels `name[i,j,...]` of an array of `shape`, row-major. Cached: a model's parameters
    keep their names and shapes from step to step, and formatting a label per leaf per step
    costs more than the leaf itself."""
    if not name:
        return ("",) * math.prod(shape)
    index_texts = [""]
    for n in shape:  # "0,1" for every index, built one axis at a time, in row-major order
        index_texts = [f"{head},{i}" if head else str(i) for head in index_texts for i in range(n)]
    return tuple(f"{name}[{t}]" for t in index_texts)


def _leaves(array: Any, name: str) -> tuple[Any, list[Value]]:
    """(the nested lists of `to_values`, the same leaves flat, row-major)."""
    if not hasattr(array, "tolist") or not getattr(array, "shape", ()):
        leaf = Value(float(array.tolist() if hasattr(array, "tolist") else array), name)
        return leaf, [leaf]
    shape = tuple(array.shape)
    if 0 in shape:  # no leaves: the nested empty lists themselves
        return array.tolist(), []
    data = array.reshape(-1).tolist()
    if set(map(type, data)) != {float}:  # an integer or boolean array: Value wants floats
        data = [float(d) for d in data]
    flat = list(map(Value, data, _labels(name, shape)))
    nested: Any = flat
    for n in reversed(shape[1:]):  # group the flat leaves into rows, then rows of rows ...
        nested = [nested[i : i + n] for i in range(0, len(nested), n)]
    return nested, flat


def _flatten(nested: Any) -> list[Any]:
    """Leaves of a nested list, in row-major order (a non-list is one leaf)."""
    out: list[Any] = []
    stack = [nested]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def graph_gradients(
    f: Callable[[dict[str, Any]], Value],
    arrays: Mapping[str, Any],
    names: Iterable[str] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Run loops-form `f` on Values built from `arrays`, backpropagate, collect gradients.

    `f` receives name -> nested lists of Values (the arrays' shapes) and returns a scalar
    Value. Arrays not in `names` (default: all) are passed as nested lists of plain floats,
    so they are constants of the graph. Returns (f's value, name -> gradient array of the
    input's shape and dtype float64).
    """
    wanted = list(names) if names is not None else list(arrays)
    inputs: dict[str, Any] = {}
    leaves: dict[str, list[Value]] = {}
    for name, a in arrays.items():
        if name in wanted:
            inputs[name], leaves[name] = _leaves(a, name)
        else:
            inputs[name] = a.tolist() if hasattr(a, "tolist") else a
    out = f(inputs)
    if not isinstance(out, Value):
        raise TypeError(f"the loops-form function must return a scalar Value, got {type(out).__name__}")
    out.backward()
    grads = {}
    for name in wanted:
        g = arrays[name].astype("float64", copy=True)
        g.flat[:] = [leaf.grad for leaf in leaves[name]]  # one assignment, not one per entry
        grads[name] = g
    return out.data, grads


# ------------------------------------------------------------------ comparison
def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, a dashed rule under the header."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _as_flat(x: Any) -> tuple[tuple[int, ...], list[float]]:
    """(shape, row-major list of floats) of an array, a nested list or a number."""
    if hasattr(x, "shape") and hasattr(x, "tolist"):
        shape = tuple(x.shape)
        data = x.tolist()
        return shape, [float(v) for v in _flatten(data)]
    if isinstance(x, (list, tuple)):
        shape_l: list[int] = []
        probe: Any = x
        while isinstance(probe, (list, tuple)):
            shape_l.append(len(probe))
            probe = probe[0] if probe else None
        return tuple(shape_l), [float(v) for v in _flatten(x)]
    return (), [float(x)]


def _unravel(i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for n in reversed(shape):
        index.append(i % n)
        i //= n
    return tuple(reversed(index))


@dataclass
class GradientRow:
    """One (input, pair of sources) comparison."""

    input: str
    left: str
    right: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    values: dict[str, float]  # every source's value at the worst index
    tolerance: Tolerance
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "pair": [self.left, self.right],
            "shape": list(self.shape),
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "worst_index": list(self.worst_index),
            "values": self.values,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "passed": self.passed,
        }


@dataclass
class GradientReport:
    """The result of `compare_gradients`: one row per (input, pair); `str()` is a table."""

    rows: list[GradientRow]
    title: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[GradientRow]:
        return [r for r in self.rows if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "passed": self.passed, "rows": [r.to_dict() for r in self.rows]}

    def __str__(self) -> str:
        head = (
            ["input", "shape", "pair", "max abs", "max rel", "worst at"]
            + [f"{s} there" for s in self.sources]
            + ["atol", "rtol", "ok"]
        )
        body = []
        for r in self.rows:
            body.append(
                [
                    r.input,
                    "x".join(map(str, r.shape)) or "scalar",
                    f"{r.left} vs {r.right}",
                    f"{r.max_abs:.2e}",
                    f"{r.max_rel:.2e}",
                    str(list(r.worst_index)) if r.worst_index else "-",
                ]
                + [
                    f"{r.values[s]: .10g}" if s in r.values else "-" for s in self.sources
                ]  # "-": not in this row's pair
                + [f"{r.tolerance.atol:.0e}", f"{r.tolerance.rtol:.0e}", "ok" if r.passed else "FAIL"]
            )
        lines = [self.title] if self.title else []
        lines.append(text_table(head, body))
        n_fail, n = len(self.failures), len(self.rows)
        lines.append(f"all {n} comparisons passed" if not n_fail else f"{n_fail} of {n} comparisons FAILED")
        return "\n".join(lines)


def compare_gradients(
    sets: Mapping[str, Mapping[str, Any]],
    pairs: Sequence[tuple[str, str, Tolerance]] | None = None,
    title: str = "",
) -> GradientReport:
    """Compare gradient sets, e.g. {"graph": {...}, "manual": {...}, "numeric": {...}}.

    Each set maps input names to gradients (arrays, nested lists or numbers). `pairs`
    says which sources to compare under which tolerance; by default, with sources named
    graph/manual/numeric, graph-vs-manual uses `EXACT` and each against numeric uses
    `NUMERIC`; otherwise every later source is compared with the first under `NUMERIC`.

    For each input and pair the report gives the largest absolute and relative
    difference, the worst index (where the difference most exceeds what the tolerance
    allows) and every source's value there. A non-finite gradient always fails.
    """
    sources = list(sets)
    if len(sources) < 2:
        raise ValueError(f"compare_gradients needs at least two gradient sets, got {sources}")
    if pairs is None:
        pairs = _default_pairs(sources)
    inputs = list(sets[sources[0]])
    for s in sources[1:]:
        if set(sets[s]) != set(inputs):
            raise ValueError(
                f"gradient sets name different inputs: {sources[0]} has {sorted(inputs)}, {s} has {sorted(sets[s])}"
            )
    flat = {s: {name: _as_flat(sets[s][name]) for name in inputs} for s in sources}
    rows = []
    for name in inputs:
        shape = flat[sources[0]][name][0]
        for s in sources[1:]:
            other = flat[s][name][0]
            # A number and a one-element array are the same gradient; otherwise shapes must match.
            if other != shape and not (len(flat[s][name][1]) == len(flat[sources[0]][name][1]) == 1):
                raise ValueError(f"gradient of {name!r}: {sources[0]} has shape {shape}, {s} has {other}")
        for left, right, tol in pairs:
            a_vals, b_vals = flat[left][name][1], flat[right][name][1]
            max_abs = max_rel = 0.0
            worst, worst_excess, passed = 0, -math.inf, True
            for i, (a, b) in enumerate(zip(a_vals, b_vals)):
                if not (math.isfinite(a) and math.isfinite(b)):
                    err, rel, excess = math.inf, math.inf, math.inf
                else:
                    err = abs(a - b)
                    scale = max(abs(a), abs(b))
                    # Relative error only where the values are above atol: 1e-17 vs 0 is
                    # not "100% off", and the absolute error governs there anyway.
                    rel = err / scale if scale > tol.atol else 0.0
                    excess = err / tol.allowed(a, b) if tol.allowed(a, b) > 0 else (math.inf if err else 0.0)
                if excess > 1.0:
                    passed = False
                max_abs, max_rel = max(max_abs, err), max(max_rel, rel)
                if excess > worst_excess:
                    worst, worst_excess = i, excess
            rows.append(
                GradientRow(
                    input=name,
                    left=left,
                    right=right,
                    shape=shape,
                    max_abs=max_abs,
                    max_rel=max_rel,
                    worst_index=_unravel(worst, shape) if shape and a_vals else (),
                    values={s: flat[s][name][1][worst] if flat[s][name][1] else math.nan for s in sources},
                    tolerance=tol,
                    passed=passed,
                )
            )
    return GradientReport(rows=rows, title=title, sources=sources)


def _default_pairs(sources: list[str]) -> list[tuple[str, str, Tolerance]]:
    if set(sources) <= {"graph", "manual", "numeric"}:
        pairs = []
        if "graph" in sources and "manual" in sources:
            pairs.append(("graph", "manual", EXACT))
        for s in ("graph", "manual"):
            if s in sources and "numeric" in sources:
                pairs.append((s, "numeric", NUMERIC))
        return pairs
    return [(sources[0], s, NUMERIC) for s in sources[1:]]


def assert_gradients_close(
    sets: Mapping[str, Mapping[str, Any]],
    pairs: Sequence[tuple[str, str, Tolerance]] | None = None,
    title: str = "",
) -> GradientReport:
    """`compare_gradients`, raising AssertionError with the report's table on any failure."""
    report = compare_gradients(sets, pairs=pairs, title=title)
    if not report.passed:
        worst = report.failures[0]
        raise AssertionError(
            f"gradients disagree{' for ' + title if title else ''}: input {worst.input!r} at index "
            f"{list(worst.worst_index)}, {worst.left} vs {worst.right}\n{report}"
        )
    return report
