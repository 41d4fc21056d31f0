"""Grading: the learner's forward against twograd's on fixed, random and edge cases; then the three-way
check of their backward (their loops on engine Values = graph, their backward = manual, central
differences of their forward = numeric), each against twograd's own gradient.

An nn-piece exercise is graded by `PieceGrader`, built from `nn.registry` pieces: the piece's
forward and backward are the reference, its `cases` are the fixed cases (run with all three
paths), the exercise adds edge cases (`cases.py`) and, per piece, what its mistakes look like
(`Knowledge`: the named terms of the derivation, variants computed with a known mistake, the
constants a mistake multiplies by). The diagnosis of a wrong array is `diagnose.classify`.

`check(exercise, path)` runs the learner's file in the sandbox and returns a `CheckResult`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.learn import sandbox
from models.learn.diagnose import (
    BACKWARD_TOL,
    FLOAT32_ROUNDING,
    FLOAT32_TOL,
    FORWARD_TOL,
    Finding,
    Tol,
    classify,
    close,
    fmt,
    worst_index,
)

Inputs = dict[str, np.ndarray]
Static = dict[str, Any]


@dataclass(frozen=True)
class Knowledge:
    """What a piece's mistakes look like on one case, keyed by "output" or a gradient's input name.

    terms:    name -> (target -> the term's contribution to that gradient), from the reference's cache
    variants: name -> (kind, target -> the reference's result with that mistake)
    factors:  name -> (value, kind): constants a mistake multiplies by (1/B, sqrt(d), ...)
    """

    terms: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    variants: Mapping[str, tuple[str, Mapping[str, np.ndarray]]] = field(default_factory=dict)
    factors: Mapping[str, tuple[float, str]] = field(default_factory=dict)

    def for_target(self, target: str) -> tuple[dict, dict, dict]:
        terms = {n: t[target] for n, t in self.terms.items() if target in t}
        variants = {n: (k, v[target]) for n, (k, v) in self.variants.items() if target in v}
        return terms, variants, dict(self.factors)


#: knowledge(inputs, static, R, reference cache) -> Knowledge for that case
KnowledgeFn = Callable[[Inputs, Static, np.ndarray, Any], Knowledge]


@dataclass(frozen=True)
class EdgeCase:
    """A case of the exercise's own (cases.py): `mode` "full" (three ways), "forward" or "raises"
    (the reference refuses the input with ValueError, so must theirs: a fully masked row)."""

    name: str
    make: Callable[[np.random.Generator], tuple[Inputs, Static]]
    mode: str = "full"
    #: in "forward" mode, run the loops form too (on floats): an edge case it can overflow on (logits of +-1000)
    loops: bool = False


@dataclass(frozen=True)
class PieceSpec:
    """One nn piece of an exercise: the registry's name, the learner's three function names, extras."""

    piece: str
    loops: str
    forward: str
    backward: str
    edge: tuple[EdgeCase, ...] = ()
    knowledge: KnowledgeFn | None = None
    #: graph and numeric paths only on the first n registry cases (the big ones cost seconds on Values)
    max_full_cases: int = 4
    #: the backward is a stretch goal: when it raises NotImplementedError the exercise still passes
    optional_backward: bool = False
    #: the module that registers the piece (imported alone, so a check does not import every piece)
    home: str = ""

    def reference(self) -> Any:
        return registry_piece(self.piece, self.home)


def registry_piece(name: str, home: str = "") -> Any:
    """The registered piece `name`, importing only `home` when given (nn.registry.get_piece imports every piece)."""
    import importlib

    from nn.registry import get_piece, registered

    if home:
        importlib.import_module(home)
        piece = registered(name)
        if piece is not None:
            return piece
    return get_piece(name)


@dataclass
class CaseContext:
    task_id: str
    spec: PieceSpec
    case: str
    mode: str
    names: list[str]
    inputs: Inputs
    static: Static
    R: np.ndarray | None
    ref_out: Any
    ref_grads: list[np.ndarray] | None
    knowledge: Knowledge
    ref_error: str = ""


def _static_for_child(static: Static, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in static.items():
        if isinstance(v, np.ndarray):
            key = f"{prefix}.{k}"
            arrays[key] = v
            out[k] = {"array": key}
        elif isinstance(v, (np.integer, np.floating, np.bool_)):
            out[k] = v.item()
        else:
            out[k] = v
    return out


class PieceGrader:
    """Grades one or more nn pieces (activations has three) against the registry's reference."""

    def __init__(self, *specs: PieceSpec) -> None:
        self.specs = specs

    def plan(
        self, seed: int, random_seed: int | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[CaseContext]]:
        """The registry's cases made with `seed` (all three ways on the first `max_full_cases`), the edge cases,
        and the registry's cases again with `random_seed` (forward only): fixed cases and random ones."""
        tasks: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        contexts: list[CaseContext] = []
        for spec in self.specs:
            piece = spec.reference()
            runs: list[tuple[str, Callable, str, bool]] = []
            for i, c in enumerate(piece.cases):
                runs.append((c.name, c.make, "full" if i < spec.max_full_cases else "forward", False))
            runs += [(e.name, e.make, e.mode, e.loops) for e in spec.edge]
            if random_seed is not None:
                runs += [(f"random (seed {random_seed}): {c.name}", c.make, "random", False) for c in piece.cases]
            for case_name, make, mode, with_loops in runs:
                rng = np.random.default_rng(random_seed if mode == "random" else seed)
                inputs, static = make(rng)
                tid = f"t{len(tasks)}"
                names = list(inputs)
                ctx = CaseContext(tid, spec, case_name, mode, names, inputs, static, None, None, None, Knowledge())
                try:
                    out, cache = piece.forward(*inputs.values(), **static)
                    ctx.ref_out = np.asarray(out)
                    if mode == "full":
                        ctx.R = rng.standard_normal(np.shape(out))
                        ctx.ref_grads = [np.asarray(g, dtype=np.float64) for g in piece.backward(ctx.R.copy(), cache)]
                        if spec.knowledge is not None:
                            ctx.knowledge = spec.knowledge(inputs, static, ctx.R, cache)
                except ValueError as err:
                    if mode != "raises":
                        raise
                    ctx.ref_error = str(err)
                for n, a in inputs.items():
                    arrays[f"{tid}.{n}"] = a
                task: dict[str, Any] = {
                    "id": tid,
                    "op": "three_way",
                    "inputs": names,
                    "arrays": {n: f"{tid}.{n}" for n in names},
                    "static": _static_for_child(static, arrays, tid),
                    "forward": spec.forward,
                    "forward_only": mode != "full",
                }
                if mode == "forward" and with_loops:
                    task["loops"] = spec.loops
                if mode == "full":
                    assert ctx.R is not None  # set with the reference gradients above (full mode re-raises)
                    arrays[f"{tid}.R"] = ctx.R
                    task.update(
                        R=f"{tid}.R", backward=spec.backward, loops=spec.loops, numeric=True, graph=True, eps=piece.eps
                    )
                tasks.append(task)
                contexts.append(ctx)
        return tasks, arrays, contexts

    def judge(self, outcome: sandbox.Outcome, contexts: list[CaseContext]) -> list[Finding]:
        findings: list[Finding] = []
        seen: set[str] = set()  # one finding per (function, input): its first failing case

        def add(f: Finding) -> None:
            if f.input not in seen:
                seen.add(f.input)
                findings.append(f)

        for ctx in contexts:
            rec = outcome.results["tasks"].get(ctx.task_id, {})
            for f in _judge_case(outcome, ctx, rec):
                add(f)
        stage = {"forward": 0, "backward": 1, "loops": 2, "graph": 3}
        findings.sort(key=lambda f: stage.get(f.input.split(" ")[0].rsplit("_", 1)[-1].split(":")[0], 4))
        return findings


def error_finding(err: dict[str, Any], where: str, case: str) -> Finding:
    """A raised exception as a finding: not_implemented, or error with their line."""
    line = f" ({err['where']})" if err.get("where") else ""
    if err["type"] == "NotImplementedError":
        return Finding(
            "not_implemented", where, f"{where} is not written yet (it raises NotImplementedError){line}", case
        )
    if err["type"] == "OverflowError":  # e^1000 on a float: the loops form of a softmax without the max shift
        on = f" on the case {case!r}" if case else ""
        return Finding(
            "overflow",
            where,
            f"{where} overflowed{on}: {err['message']}{line}; write it so that no exp of "
            f"a large number is formed (a softmax subtracts the row max first, a sigmoid "
            f"picks its form by the sign of x)",
            case,
        )
    return Finding("error", where, f"{where} raised {err['type']}: {err['message']}{line}", case)


def _stage_error(rec: dict[str, Any], stage: str, where: str, case: str) -> Finding | None:
    got = rec.get(stage)
    if isinstance(got, dict) and "error" in got:
        return error_finding(got["error"], where, case)
    if (
        isinstance(got, dict) and "message" in got
    ):  # the child said what is wrong in its own sentence (a broken contract)
        return Finding(got.get("kind", "other"), where, got["message"], case)
    if isinstance(got, dict) and "bad" in got:
        if stage == "backward":
            return Finding(
                "shape",
                where,
                f"{where} returned {got['bad']}: return a tuple of gradients, one per input "
                f"in input order, a tuple even for one input",
                case,
            )
        return Finding("dtype", where, f"{where} returned {got['bad']}, not an array of numbers", case)
    return None


def _compare(
    y: np.ndarray,
    r: np.ndarray,
    where: str,
    case: str,
    tol: Tol,
    knowledge: Knowledge,
    target: str,
    extra: Mapping[str, np.ndarray | None] | None = None,
) -> Finding | None:
    """None if y agrees with r; else the finding with its kind, worst index and the numbers there."""
    if r.dtype == np.float32 and y.dtype != np.float32 and y.shape == r.shape:
        return Finding(
            "dtype",
            where,
            f"{where} gives {y.dtype} for float32 input; keep the input's dtype (float32 in, float32 out)",
            case,
        )
    y64, r64 = np.asarray(y, dtype=np.float64), np.asarray(r, dtype=np.float64)
    if y.dtype == np.float32 and tol is not FLOAT32_TOL:
        tol = FLOAT32_TOL  # float32 arithmetic inside, by their choice: judged at float32's precision
    if close(y64, r64, tol):
        return None
    if y.dtype == np.float64 and close(y64, r64, FLOAT32_ROUNDING):
        return Finding(
            "dtype",
            where,
            f"{where} is right only to float32's precision, though it is float64: a float32 "
            f"array inside (np.zeros(..., dtype=np.float32)?) rounds float64 values",
            case,
        )
    terms, variants, factors = knowledge.for_target(target)
    kind, what = classify(y64, r64, tol=tol, terms=terms, variants=variants, factors=factors)
    message = f"{where} {what}"
    index: list[int] = []
    values: dict[str, float] = {}
    if y64.shape == r64.shape and y64.size:
        idx = worst_index(y64, r64, tol)
        index = list(idx)
        values = {"yours": float(y64[idx]), "expected": float(r64[idx])}
        for name, arr in (extra or {}).items():
            if arr is not None and arr.shape == r64.shape:
                values[name] = float(arr[idx])
        shown = ", ".join(f"{k} {fmt(v)}" for k, v in values.items())
        message += f"; worst at {index}: {shown}"
    elif kind == "transposed" and y64.ndim == 2 and r64.size:
        i, j = np.unravel_index(int(np.argmax(np.abs(r64))), r64.shape)
        index, values = [int(i), int(j)], {"expected": float(r64[i, j]), "yours": float(y64[j, i])}
        message += (
            f": its shape is {tuple(y64.shape)}, expected {tuple(r64.shape)}; the right [{i}, {j}] = "
            f"{fmt(float(r64[i, j]))} is yours at [{j}, {i}]"
        )
    return Finding(kind, where, message, case, index, values)


def _judge_loops_output(outcome: sandbox.Outcome, ctx: CaseContext, rec: dict[str, Any]) -> Finding | None:
    """Their loops form's output (on floats) against ours; None when it agrees."""
    lo = outcome.array(rec["loops"])
    f = _compare(
        lo,
        np.asarray(ctx.ref_out, dtype=np.float64),
        f"{ctx.spec.loops} output",
        ctx.case,
        FORWARD_TOL,
        ctx.knowledge,
        "output",
    )
    if f is not None:
        f.message += f" (case {ctx.case!r})"
    return f


def _judge_loops(outcome: sandbox.Outcome, ctx: CaseContext, rec: dict[str, Any]) -> list[Finding]:
    """The loops form on a forward-only edge case (run on floats only): its error or its wrong output."""
    bad = _stage_error(rec, "loops", ctx.spec.loops, ctx.case)
    if bad is not None:
        return [bad]
    if isinstance(rec.get("loops"), dict) and "key" in rec["loops"]:
        f = _judge_loops_output(outcome, ctx, rec)
        return [] if f is None else [f]
    return []


def _get_many(outcome: sandbox.Outcome, rec: dict[str, Any], stage: str) -> list[np.ndarray] | None:
    got = rec.get(stage)
    if not (isinstance(got, dict) and "items" in got) or any("key" not in m for m in got["items"]):
        return None
    return [outcome.array(m) for m in got["items"]]


def _judge_case(outcome: sandbox.Outcome, ctx: CaseContext, rec: dict[str, Any]) -> list[Finding]:
    spec, case = ctx.spec, ctx.case
    fwd = f"{spec.forward}"
    out: list[Finding] = []
    if "error" in rec:
        return [error_finding(rec["error"], fwd, case)]
    for name in rec.get("mutated", []):
        who = spec.backward if name == "dout" else fwd
        out.append(
            Finding(
                "mutated_input",
                f"{who}: {name}",
                f"{who} changed its input {name} in place (case {case!r}); work on a copy, the caller still needs it",
                case,
            )
        )
    if ctx.mode == "raises":
        got = rec.get("forward", {})
        if isinstance(got, dict) and "error" in got:
            if got["error"]["type"] in ("ValueError", "InputError", "AssertionError", "ZeroDivisionError"):
                return out
            return out + [error_finding(got["error"], fwd, case)]
        return out + [
            Finding(
                "other",
                fwd,
                f"{fwd} returned a result for case {case!r}, which has no answer: ours "
                f"raises ValueError ({ctx.ref_error}); raise ValueError too",
                case,
            )
        ]
    bad = _stage_error(rec, "forward", fwd, case)
    if bad is not None:
        return out + [bad]
    y = outcome.array(rec["forward"])
    tol = FLOAT32_TOL if ctx.ref_out.dtype == np.float32 else FORWARD_TOL
    f = _compare(y, ctx.ref_out, f"{fwd} output", case, tol, ctx.knowledge, "output")
    if f is not None:
        f.message += f" (case {case!r})"
        out.append(f)
    if ctx.mode != "full":  # "forward", "random": forward only (and the loops form on an edge case that asks for it)
        return out + _judge_loops(outcome, ctx, rec)
    bwd = spec.backward
    bad = _stage_error(rec, "backward", bwd, case)
    if bad is not None:
        if not (spec.optional_backward and bad.kind == "not_implemented"):
            out.append(bad)
    else:
        grads = _get_many(outcome, rec, "backward")
        got = rec.get("backward", {})
        if grads is None:
            bad_items = [m.get("bad") for m in got.get("items", []) if "bad" in m]
            why = got.get("bad") or (bad_items[0] if bad_items else "something else")
            out.append(
                Finding(
                    "shape",
                    bwd,
                    f"{bwd} must return a tuple of {len(ctx.names)} gradient arrays "
                    f"({', '.join('d' + n for n in ctx.names)}), a tuple even for one input; got {why}",
                    case,
                )
            )
        elif len(grads) != len(ctx.names):
            out.append(
                Finding(
                    "shape",
                    bwd,
                    f"{bwd} returned {len(grads)} gradients for the {len(ctx.names)} inputs "
                    f"({', '.join(ctx.names)}); return one per input, in input order, as a tuple",
                    case,
                )
            )
        else:
            absent: list[np.ndarray | None] = [None] * len(grads)  # a stage that did not run
            numeric: Sequence[np.ndarray | None] = _get_many(outcome, rec, "numeric") or absent
            graph: Sequence[np.ndarray | None] = _get_many(outcome, rec, "graph") or absent
            assert ctx.ref_grads is not None  # full mode: set with ctx.R when the case was made
            for n, g, r, num, gr in zip(ctx.names, grads, ctx.ref_grads, numeric, graph):
                f = _compare(
                    g,
                    r,
                    f"{bwd}: d{n}",
                    case,
                    BACKWARD_TOL,
                    ctx.knowledge,
                    n,
                    extra={"graph": gr, "manual": g, "numeric": num},
                )
                if f is not None:
                    if all(np.shape(a) == np.shape(b) for a, b in zip(grads, ctx.ref_grads)):  # painted leaf by leaf
                        f.drawable = (spec, ctx.inputs, ctx.static, ctx.R, dict(zip(ctx.names, grads)))
                    f.message += (
                        f" (case {case!r}; graph = your loops on engine Values, manual = your backward, "
                        f"numeric = central differences of your forward)"
                    )
                    out.append(f)
    loops = spec.loops
    bad = _stage_error(rec, "loops", loops, case)
    if bad is not None:
        out.append(bad)
    elif "loops" in rec:
        f = _judge_loops_output(outcome, ctx, rec)
        if f is not None:
            out.append(f)
        else:
            bad = _stage_error(rec, "graph", f"{loops} on engine Values", case)
            if bad is not None:
                out.append(bad)
            else:
                graph_grads = _get_many(outcome, rec, "graph")
                for n, g, r in zip(ctx.names, graph_grads or [], ctx.ref_grads or []):
                    f = _compare(g, r, f"{loops} on engine Values: d{n}", case, BACKWARD_TOL, ctx.knowledge, n)
                    if f is not None:
                        out.append(f)
    return out


# ---------------------------------------------------------------------------- the check
@dataclass
class CheckResult:
    """The outcome of `learn check NAME`: passed, the findings (first = the headline), timings."""

    exercise: str
    passed: bool
    findings: list[Finding]
    file: str
    seed: int
    seconds: float
    cases: int = 0
    random_seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "passed": self.passed,
            "file": self.file,
            "seed": self.seed,
            "random_seed": self.random_seed,
            "cases": self.cases,
            "seconds": round(self.seconds, 3),
            "diagnosis": [f.to_dict() for f in self.findings],
        }


def _plan(
    exercise: Any, seed: int, random_seed: int | None
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], Any, int]:
    if random_seed is None:
        random_seed = int.from_bytes(os.urandom(4), "little")
    plan = exercise.grader.plan
    tasks, arrays, context = plan(seed, random_seed) if isinstance(exercise.grader, PieceGrader) else plan(seed)
    return tasks, arrays, context, random_seed


def _result(
    exercise: Any,
    path: Path,
    outcome: sandbox.Outcome,
    context: Any,
    tasks: list,
    seed: int,
    random_seed: int,
    start: float,
) -> CheckResult:
    where = Path(path).name
    if not outcome.finished:
        findings = [Finding(outcome.kind, where, outcome.message)]
    elif "load_error" in outcome.results:
        err = outcome.results["load_error"]
        f = error_finding(err, where, "")
        f.message = f"importing {where} failed: {err['type']}: {err['message']}" + (
            f" ({err['where']})" if err.get("where") else ""
        )
        findings = [f]
    elif outcome.results.get("missing"):
        names = outcome.results["missing"]
        findings = [
            Finding(
                "not_implemented",
                where,
                f"{where} does not define {', '.join(names)}: write "
                f"{'them' if len(names) > 1 else 'it'} with exactly the names of "
                f"`twograd learn show {exercise.name}`",
            )
        ]
    else:
        findings = exercise.grader.judge(outcome, context)
    return CheckResult(
        exercise.name, not findings, findings, str(path), seed, time.perf_counter() - start, len(tasks), random_seed
    )


def check(
    exercise: Any,
    path: Path,
    *,
    seed: int = 0,
    random_seed: int | None = None,
    time_limit: float = sandbox.DEFAULT_TIME_LIMIT,
    memory_limit: int = sandbox.DEFAULT_MEMORY_LIMIT,
) -> CheckResult:
    """Grade the learner's file `path` for `exercise` (never raises for what their file does).

    `seed` makes the fixed cases (0: the same every time); `random_seed` adds the piece's cases made
    from it, forward only (None: a fresh one drawn here, recorded in the result so a failure can be
    repeated with it).
    """
    start = time.perf_counter()
    tasks, arrays, context, random_seed = _plan(exercise, seed, random_seed)
    outcome = sandbox.run_file(
        path, exercise.name, tasks, arrays, required=exercise.required, time_limit=time_limit, memory_limit=memory_limit
    )
    return _result(exercise, path, outcome, context, tasks, seed, random_seed, start)


def check_many(
    items: list[tuple[Any, Path]],
    *,
    seed: int = 0,
    random_seed: int | None = None,
    time_limit: float = sandbox.DEFAULT_TIME_LIMIT,
) -> list[CheckResult]:
    """`check` of several (exercise, file) pairs in ONE child process (one start-up instead of one per file).

    When that child does not finish (a file that loops, exits or crashes it), each file is checked
    again alone, so the one-line report lands on the file that caused it.
    """
    start = time.perf_counter()
    plans = [_plan(ex, seed, random_seed) for ex, _ in items]
    jobs = [sandbox.Job(Path(path), ex.name, p[0], p[1], ex.required) for (ex, path), p in zip(items, plans)]
    outcomes = sandbox.run_jobs(jobs, time_limit=time_limit)
    if not outcomes[0].finished:
        return [
            check(ex, path, seed=seed, random_seed=p[3], time_limit=time_limit) for (ex, path), p in zip(items, plans)
        ]
    return [_result(ex, path, o, p[2], p[0], seed, p[3], start) for (ex, path), o, p in zip(items, outcomes, plans)]
