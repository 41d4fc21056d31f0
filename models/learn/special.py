"""Graders of the exercises that are not one nn piece: gradcheck, value, causal_mask, training_loop, adam.

Each follows `exercise.Grader`: `plan(seed) -> (tasks, arrays, context)` for the child, and
`judge(outcome, context) -> findings`. The reference is still twograd's own code, run here in
the parent: `engine.numerical_gradient` and exact derivatives, `engine.Value`, `nn.masks.causal_mask`,
`nn.optim.SGD` and `nn.optim.Adam` / `AdamW`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.learn import sandbox
from models.learn.diagnose import BACKWARD_TOL, FORWARD_TOL, Finding, Tol, classify, close, fmt, worst_index
from models.learn.grade import error_finding


def _err(rec: dict[str, Any], where: str, case: str) -> Finding | None:
    got = rec.get("call") if "error" not in rec else rec
    if isinstance(got, dict) and "error" in got:
        return error_finding(got["error"], where, case)
    if isinstance(got, dict) and "bad" in got:
        return Finding("dtype", where, f"{where} returned {got['bad']}, not numbers", case)
    return None


def _mismatch(y: np.ndarray, r: np.ndarray, where: str, case: str, tol: Tol, **known: Any) -> Finding | None:
    y64, r64 = np.asarray(y, dtype=np.float64), np.asarray(r, dtype=np.float64)
    if close(y64, r64, tol):
        return None
    kind, what = classify(y64, r64, tol=tol, **known)
    msg = f"{where} {what} (case {case!r})"
    idx: list[int] = []
    vals: dict[str, float] = {}
    if y64.shape == r64.shape and y64.size:
        i = worst_index(y64, r64, tol)
        idx, vals = list(i), {"yours": float(y64[i]), "expected": float(r64[i])}
        msg += f"; worst at {idx}: yours {fmt(vals['yours'])}, expected {fmt(vals['expected'])}"
    return Finding(kind, where, msg, case, idx, vals)


# ---------------------------------------------------------------------------- gradcheck
#: the known derivatives of runner.KNOWN_FUNCTIONS, and the points they are checked at
DERIVATIVES: dict[str, tuple[list[float], Any]] = {
    "x^3": ([1.3], lambda x: [3 * x * x]),
    "sin(x) y": ([0.7, -1.9], lambda x, y: [math.cos(x) * y, math.sin(x)]),
    "exp(x) + x y^2": ([0.4, 1.6], lambda x, y: [math.exp(x) + y * y, 2 * x * y]),
    "1/x": ([0.8], lambda x: [-1 / (x * x)]),
    "big: 1e6 x^2": ([2.5], lambda x: [2e6 * x]),
}
#: a central difference with a good step (1e-6) is within ~1e-9 relative of the exact derivative on these;
#: a step of 1e-3 or more (truncation ~h^2) or 1e-10 or less (rounding ~1e-16 |f| / h) is not.
GRADCHECK_TOL = Tol(1e-7, 1e-6, "central differences with h ~ 1e-6: error ~1e-10 relative")
#: the step the learner is given explicitly; their result must be the central difference at that step
GIVEN_STEP = 1e-3


class GradcheckGrader:
    """numerical_gradient(f, xs, eps) on functions with known derivatives: with its default step (too small
    or too large a default is a mistake) and with a given step (it must be used, and centred)."""

    def plan(
        self, seed: int
    ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[tuple[str, str, float | None]]]:
        tasks: list[dict[str, Any]] = []
        ctx: list[Any] = []
        for name, (xs, _) in DERIVATIVES.items():
            for eps in (None, GIVEN_STEP):
                tid = f"t{len(tasks)}"
                tasks.append(
                    {"id": tid, "op": "gradcheck", "fn": "numerical_gradient", "function": name, "xs": xs, "eps": eps}
                )
                ctx.append((tid, name, eps))
        return tasks, {}, ctx

    def judge(self, outcome: sandbox.Outcome, ctx: list[tuple[str, str, float | None]]) -> list[Finding]:
        from engine import numerical_gradient
        from models.learn.runner import KNOWN_FUNCTIONS

        where = "numerical_gradient"
        for tid, name, eps in ctx:
            rec = outcome.results["tasks"].get(tid, {})
            case = f"{name} at {DERIVATIVES[name][0]}" + (f", eps={eps:g}" if eps else ", your default step")
            bad = _err(rec, where, case)
            if bad is not None:
                return [bad]
            if rec.get("mutated"):
                return [
                    Finding(
                        "mutated_input",
                        where,
                        f"{where} left xs changed after it returned (case {case!r}): "
                        "put each nudged entry back, the caller's point must not move",
                        case,
                    )
                ]
            y = outcome.array(rec["call"]).reshape(-1)
            f, xs = KNOWN_FUNCTIONS[name], DERIVATIVES[name][0]
            exact = np.array(DERIVATIVES[name][1](*xs))
            if y.shape != exact.shape:
                return [
                    Finding(
                        "shape", where, f"{where} returned {y.size} numbers for {len(xs)} inputs (case {case!r})", case
                    )
                ]
            h = eps if eps else 1e-6
            ref = np.array(numerical_gradient(f, xs, eps=h))
            target, tol = (ref, Tol(1e-12, 1e-9, "the same central difference")) if eps else (exact, GRADCHECK_TOL)
            if close(y, target, tol):
                continue
            variants = {}
            for step in (1e-1, 1e-2, 1e-3, 1e-4, 1e-8, 1e-10, 1e-12, 1e-14):
                if eps is None or step != eps:
                    label = "too large" if step > 1e-5 else "too small"
                    variants[
                        f"a step of {step:g} ({label}: {'truncation' if step > 1e-5 else 'rounding'} error dominates)"
                    ] = ("other", np.array(numerical_gradient(f, xs, eps=step)))
            one_sided = np.array(
                [(f(*[x + (h if j == i else 0) for j, x in enumerate(xs)]) - f(*xs)) / h for i in range(len(xs))]
            )
            variants["a one-sided difference (f(x+h) - f(x)) / h, whose error is O(h), not O(h^2)"] = (
                "other",
                one_sided,
            )
            if eps:
                variants["the given eps ignored (your default step used)"] = (
                    "other",
                    np.array(numerical_gradient(f, xs)),
                )
            f0 = _mismatch(y, target, where, case, tol, variants=variants)
            return [f0] if f0 else []
        return []


# ---------------------------------------------------------------------------- value
def _programs(seed: int) -> list[tuple[str, list[list[Any]]]]:
    """(name, program): single ops, a node used twice, random expressions with reuse, a deep chain."""
    rng = np.random.default_rng(seed)
    a, b = round(float(rng.uniform(0.3, 1.2)), 3), round(float(rng.uniform(-1.5, -0.2)), 3)
    progs: list[tuple[str, list[list[Any]]]] = [
        ("a + b", [["leaf", a], ["leaf", b], ["add", 0, 1]]),
        ("a * b", [["leaf", a], ["leaf", b], ["mul", 0, 1]]),
        ("a ** 3", [["leaf", a], ["pow", 0, 3]]),
        ("a ** -0.5", [["leaf", a], ["pow", 0, -0.5]]),
        ("exp(a)", [["leaf", a], ["exp", 0]]),
        ("tanh(a)", [["leaf", b], ["tanh", 0]]),
        ("2 + a, 3 * a (a number on the left)", [["leaf", a], ["radd", 2.0, 0], ["rmul", 3.0, 1]]),
        ("a * a (a node used twice)", [["leaf", a], ["mul", 0, 0]]),
        ("a * b + a (a node used twice)", [["leaf", a], ["leaf", b], ["mul", 0, 1], ["add", 2, 0]]),
        ("c = a * b; c + c (an interior node used twice)", [["leaf", a], ["leaf", b], ["mul", 0, 1], ["add", 2, 2]]),
    ]
    for r in range(3):
        prog: list[list[Any]] = [["leaf", round(float(rng.uniform(-1, 1)), 3)] for _ in range(3)]
        for _ in range(10):
            n = len(prog)
            op = ["add", "mul", "tanh", "pow", "exp", "rmul"][int(rng.integers(6))]
            i, j = int(rng.integers(n)), int(rng.integers(n))
            prog.append(
                {
                    "add": ["add", i, j],
                    "mul": ["mul", i, j],
                    "tanh": ["tanh", i],
                    "pow": ["pow", i, 2],
                    "exp": ["tanh", i] if rng.random() < 0.5 else ["exp", n - 1],
                    "rmul": ["rmul", 0.5, i],
                }[op]
            )
        prog.append(["tanh", len(prog) - 1])
        progs.append((f"random expression {r + 1} (13 ops, nodes reused)", prog))
    deep = [["leaf", 0.9]] + [["rmul", 1.0001, i] for i in range(3000)]
    progs.append(("a deep chain of 3000 ops", deep))
    return progs


def _engine_run(program: list[list[Any]]) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """Data and grads of every node with engine.Value (the reference), and each node's incoming edge contributions."""
    from engine import Value, exp, tanh

    nodes: list[Any] = []
    edges: list[list[tuple[int, int, float]]] = []  # per node: (parent index, child index, partial)
    for k, op in enumerate(program):
        kind = op[0]
        if kind == "leaf":
            nodes.append(Value(op[1]))
            continue
        if kind in ("add", "mul"):
            x, y = nodes[op[1]], nodes[op[2]]
            nodes.append(x + y if kind == "add" else x * y)
            pa, pb = (1.0, 1.0) if kind == "add" else (y.data, x.data)
            edges.append([(op[1], k, pa), (op[2], k, pb)])
        elif kind in ("radd", "rmul"):
            nodes.append(op[1] + nodes[op[2]] if kind == "radd" else op[1] * nodes[op[2]])
            edges.append([(op[2], k, 1.0 if kind == "radd" else op[1])])
        elif kind == "pow":
            x = nodes[op[1]]
            nodes.append(x ** op[2])
            edges.append([(op[1], k, op[2] * x.data ** (op[2] - 1))])
        elif kind == "exp":
            nodes.append(exp(nodes[op[1]]))
            edges.append([(op[1], k, nodes[-1].data)])
        elif kind == "tanh":
            nodes.append(tanh(nodes[op[1]]))
            edges.append([(op[1], k, 1 - nodes[-1].data ** 2)])
    nodes[-1].backward()
    grads = np.array([n.grad for n in nodes])
    contributions: list[list[float]] = [[] for _ in nodes]
    for es in edges:
        for parent, child, partial in es:
            contributions[parent].append(grads[child] * partial)
    return np.array([n.data for n in nodes]), grads, contributions


class ValueGrader:
    """Their Value (+ * ** exp tanh, backward by topological sort) against engine.Value on small programs."""

    def plan(self, seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[tuple[str, str, list]]]:
        tasks: list[dict[str, Any]] = []
        ctx: list[Any] = []
        for name, prog in _programs(seed):
            tid = f"t{len(tasks)}"
            tasks.append({"id": tid, "op": "value", "program": prog})
            ctx.append((tid, name, prog))
        return tasks, {}, ctx

    def judge(self, outcome: sandbox.Outcome, ctx: list[tuple[str, str, list]]) -> list[Finding]:
        for tid, name, prog in ctx:
            rec = outcome.results["tasks"].get(tid, {})
            bad = _err(rec, "Value", name)
            if bad is not None:
                if "Recursion" in bad.message:
                    bad.message += "; sort the graph with an explicit stack instead of recursion"
                return [bad]
            data, grads = outcome.array(rec["data"]), outcome.array(rec["grads"])
            ref_data, ref_grads, contributions = _engine_run(prog)
            f = _mismatch(data, ref_data, "Value's forward (node data)", name, FORWARD_TOL)
            if f is not None:
                return [f]
            if close(grads, ref_grads, BACKWARD_TOL):
                continue
            # `=` where `+=` belongs: a node used twice keeps one contribution instead of their sum
            for i, contrib in enumerate(contributions):
                if (
                    len(contrib) > 1
                    and not math.isclose(grads[i], ref_grads[i], rel_tol=1e-6, abs_tol=1e-9)
                    and any(math.isclose(grads[i], c, rel_tol=1e-6, abs_tol=1e-9) for c in contrib)
                ):
                    return [
                        Finding(
                            "overwrite",
                            "Value.backward",
                            f"Value.backward overwrites a gradient where it must add: "
                            f"node {i} is used {len(contrib)} times, its grad {fmt(grads[i])} is one of its "
                            f"contributions {[fmt(c) for c in contrib]}, not their sum {fmt(ref_grads[i])}; "
                            f"write `+=` (case {name!r})",
                            name,
                            [i],
                            {"yours": float(grads[i]), "expected": float(ref_grads[i])},
                        )
                    ]
            terms = {}
            if prog[-1][0] == "tanh":
                t = ref_data[-1]
                terms = {"-tanh^2 (tanh' = 1 - tanh^2)": np.where(np.arange(len(prog)) == prog[-1][1], -t * t, 0.0)}
            if prog[-1][0] == "mul" and len(prog) == 3:
                x, y = ref_data[0], ref_data[1]
                terms = {"the product rule's other factor": np.array([y, x, 0.0])}
            f = _mismatch(grads, ref_grads, "Value.backward (the nodes' grads)", name, BACKWARD_TOL, terms=terms)
            return [f] if f else []
        return []


# ---------------------------------------------------------------------------- causal_mask
class MaskGrader:
    """causal_mask(Tq, Tk, offset=) against nn.masks.causal_mask: exactly equal, boolean."""

    CASES: tuple[tuple[str, tuple, dict], ...] = (
        ("T = 1", (1,), {}),
        ("T = 4", (4,), {}),
        ("Tq = 3, Tk = 5", (3, 5), {}),
        ("Tq = 2, Tk = 5, offset = 3 (the last 2 queries of 5)", (2, 5), {"offset": 3}),
    )

    def plan(self, seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[tuple[str, str, tuple, dict]]]:
        tasks: list[dict[str, Any]] = []
        ctx: list[Any] = []
        for name, args, kwargs in self.CASES:
            tid = f"t{len(tasks)}"
            tasks.append({"id": tid, "op": "call", "fn": "causal_mask", "args": list(args), "kwargs": kwargs})
            ctx.append((tid, name, args, kwargs))
        return tasks, {}, ctx

    def judge(self, outcome: sandbox.Outcome, ctx: list[tuple[str, str, tuple, dict]]) -> list[Finding]:
        from nn.masks import causal_mask

        where = "causal_mask"
        for tid, name, args, kwargs in ctx:
            rec = outcome.results["tasks"].get(tid, {})
            bad = _err(rec, where, name)
            if bad is not None:
                return [bad]
            y = outcome.array(rec["call"])
            r = causal_mask(*args, **kwargs)
            if y.dtype != np.bool_:
                return [
                    Finding(
                        "dtype",
                        where,
                        f"{where} returns {y.dtype}; a mask is boolean, True where a query may "
                        f"attend (masking is by exclusion, not an additive -inf) (case {name!r})",
                        name,
                    )
                ]
            if y.shape != r.shape:
                if y.T.shape == r.shape and np.array_equal(y.T, r):
                    return [
                        Finding(
                            "transposed",
                            where,
                            f"{where} is the transpose of the right mask: rows are queries, "
                            f"columns keys (case {name!r})",
                            name,
                        )
                    ]
                return [
                    Finding(
                        "shape",
                        where,
                        f"{where} has shape {y.shape}, expected {r.shape} = (Tq, Tk) (case {name!r})",
                        name,
                    )
                ]
            if not np.array_equal(y, r):
                if np.array_equal(y, r.T) or np.array_equal(y, np.triu(np.ones_like(r))):
                    return [
                        Finding(
                            "transposed",
                            where,
                            f"{where} lets a query see the future and not the past: it is the "
                            f"transpose of the right mask (case {name!r})",
                            name,
                        )
                    ]
                i = tuple(int(v) for v in np.argwhere(y != r)[0])
                return [
                    Finding(
                        "other",
                        where,
                        f"{where} differs at {list(i)} (query {i[0]}, key {i[1]}): yours {bool(y[i])}, "
                        f"expected {bool(r[i])} (key j is visible to query i when j <= i + offset) "
                        f"(case {name!r})",
                        name,
                        list(i),
                    )
                ]
        return []


# ---------------------------------------------------------------------------- training_loop
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])
#: 2-4-1 tanh MLP, mse: with this seed, lr and number of steps twograd's SGD loop reaches 4/4 on XOR
TRAIN_SEED, TRAIN_LR, TRAIN_STEPS, HIDDEN = 3, 0.5, 400, 4


def xor_params(seed: int = TRAIN_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.standard_normal((2, HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, 1)) / 2,
        "b2": np.zeros(1),
    }


def xor_loss_and_grad(p: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    """The XOR objective with twograd's pieces (the same the child hands the learner's loop)."""
    from nn.activations import tanh_backward, tanh_forward
    from nn.linear import linear_backward, linear_forward
    from nn.losses import mse_backward, mse_forward

    a, c1 = linear_forward(XOR_X, p["W1"], p["b1"])
    h, c2 = tanh_forward(a)
    z, c3 = linear_forward(h, p["W2"], p["b2"])
    loss, c4 = mse_forward(z, XOR_Y)
    (dz, _) = mse_backward(1.0, c4)
    dh, dW2, db2 = linear_backward(dz, c3)
    (da,) = tanh_backward(dh, c2)
    _, dW1, db1 = linear_backward(da, c1)
    return float(loss), {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def reference_train(lr: float, steps: int, *, record_after: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """twograd's loop: the loss, then nn.optim.SGD's step on every parameter; losses before each update."""
    from nn.optim import SGD

    params = xor_params()
    grads = {n: np.zeros_like(p) for n, p in params.items()}
    opt = SGD([(params[n], grads[n]) for n in params], lr=abs(lr))
    losses = []
    with np.errstate(all="ignore"):
        for _ in range(steps):
            try:
                loss, g = xor_loss_and_grad(params)
                for n in grads:
                    grads[n][...] = g[n] if lr >= 0 else -g[n]
                opt.step()
                losses.append(xor_loss_and_grad(params)[0] if record_after else loss)
            except ValueError:  # a mistaken loop diverged (nn refuses non-finite values): its losses so far
                break
    return np.array(losses), params


def xor_accuracy(params: dict[str, np.ndarray]) -> float:
    h = np.tanh(XOR_X @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    return float(np.mean((z > 0.5) == (XOR_Y > 0.5)))


class TrainGrader:
    """train(loss_and_grad, params, lr=, steps=) -> losses, graded on XOR against twograd's SGD loop."""

    def plan(self, seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], None]:
        arrays = {"x": XOR_X, "y": XOR_Y, **xor_params()}
        return [{"id": "t0", "op": "train", "fn": "train", "lr": TRAIN_LR, "steps": TRAIN_STEPS}], arrays, None

    def judge(self, outcome: sandbox.Outcome, ctx: None) -> list[Finding]:
        where, case = "train", f"XOR, lr {TRAIN_LR}, {TRAIN_STEPS} steps"
        rec = outcome.results["tasks"].get("t0", {})
        bad = _err(rec, where, case)
        if bad is not None:
            seen = outcome.array(rec["seen"]) if rec.get("seen") else np.zeros(0)
            climb = reference_train(-TRAIN_LR, TRAIN_STEPS)[0][: len(seen)]
            if len(seen) >= 3 and np.allclose(seen[: len(climb)], climb, rtol=1e-7) and seen[-1] > seen[0]:
                return [
                    Finding(
                        "sign",
                        where,
                        f"{where}: the loss climbs ({fmt(seen[0])} -> {fmt(seen[-1])} in {len(seen)} "
                        f"steps) until it overflows: the update has the wrong sign (p -= lr * g "
                        f"goes downhill) ({case}); it ended in: {bad.message}",
                        case,
                    )
                ]
            return [bad]
        losses = outcome.array(rec["call"]).reshape(-1)
        ref, ref_params = reference_train(TRAIN_LR, TRAIN_STEPS)
        if losses.shape != ref.shape:
            return [
                Finding(
                    "shape",
                    where,
                    f"{where} returned {losses.size} losses for {TRAIN_STEPS} steps; return the loss "
                    f"of every step, taken before its update ({case})",
                    case,
                )
            ]
        if np.allclose(losses, losses[0]) and not np.allclose(ref, ref[0]):
            return [
                Finding(
                    "zeros",
                    where,
                    f"{where}: the loss never changes ({fmt(losses[0])}): the parameters are not "
                    f"updated in place (`p -= lr * g` changes the array; `p = p - lr * g` only rebinds "
                    f"a name) ({case})",
                    case,
                )
            ]
        tol = Tol(1e-10, 1e-7, "the same float64 loop")
        if not close(losses, ref, tol):
            variants = {}
            for name, kind, lr, after in (
                ("the update's sign flipped (p += lr g climbs the loss)", "sign", -TRAIN_LR, False),
                ("the loss recorded after the update, not before", "other", TRAIN_LR, True),
                ("a step of 2 lr", "factor", 2 * TRAIN_LR, False),
                ("a step of 0.5 lr", "factor", 0.5 * TRAIN_LR, False),
            ):
                try:
                    with np.errstate(all="ignore"):
                        variants[name] = (kind, reference_train(lr, TRAIN_STEPS, record_after=after)[0])
                except (
                    ValueError
                ):  # that mistake diverges on XOR: its losses are not finite, and it is told apart as overflow
                    pass
            f = _mismatch(losses, ref, f"{where}'s losses", case, tol, variants=variants)
            return [f] if f else []
        params = {n: outcome.array(m) for n, m in rec["params"].items()}
        if xor_accuracy(params) < 1.0:
            return [
                Finding(
                    "other",
                    where,
                    f"{where}: the losses match but the final parameters classify "
                    f"{xor_accuracy(params):.0%} of XOR (they must be the ones you trained)",
                    case,
                )
            ]
        return []


# ---------------------------------------------------------------------------- adam
ADAM_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Adam, lr 0.01", {"lr": 0.01}),
    ("Adam with L2 weight decay 0.1", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW, decoupled weight decay 0.1", {"lr": 0.01, "weight_decay": 0.1, "decoupled": True}),
)
ADAM_STEPS = 6


def reference_adam(p0: np.ndarray, grads: list[np.ndarray], kwargs: dict[str, Any]) -> np.ndarray:
    """nn.optim.Adam (or AdamW when decoupled) stepped on one parameter with the given gradients."""
    from nn.optim import Adam, AdamW

    p, g = p0.copy(), np.zeros_like(p0)
    kw = {k: v for k, v in kwargs.items() if k != "decoupled"}
    opt = (AdamW if kwargs.get("decoupled") else Adam)([(p, g)], **kw)
    for gt in grads:
        g[...] = gt
        opt.step()
    return p


def adam_without_bias_correction(p0: np.ndarray, grads: list[np.ndarray], kwargs: dict[str, Any]) -> np.ndarray:
    """The known mistake: m and v used raw, without 1/(1 - beta^t)."""
    lr, wd, (b1, b2), eps = (
        kwargs["lr"],
        kwargs.get("weight_decay", 0.0),
        kwargs.get("betas", (0.9, 0.999)),
        kwargs.get("eps", 1e-8),
    )
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for g in grads:
        if kwargs.get("decoupled"):
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * m / (np.sqrt(v) + eps)
    return p


class AdamGrader:
    """adam_step(p, g, m, v, t, ...) -> (p, m, v), fed its own output for 6 steps, against nn.optim.Adam / AdamW."""

    def plan(self, seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[tuple[str, str, dict, dict]]]:
        rng = np.random.default_rng(seed)
        tasks: list[dict[str, Any]] = []
        arrays: dict[str, np.ndarray] = {}
        ctx: list[Any] = []
        for name, kwargs in ADAM_CASES:
            tid = f"t{len(tasks)}"
            arrays[f"{tid}.p"] = rng.standard_normal((3, 4))
            keys = []
            for s in range(ADAM_STEPS):
                arrays[f"{tid}.g{s}"] = rng.standard_normal((3, 4)) * (1 + s)
                keys.append(f"{tid}.g{s}")
            tasks.append(
                {"id": tid, "op": "steps", "fn": "adam_step", "p": f"{tid}.p", "grads": keys, "kwargs": kwargs}
            )
            ctx.append((tid, name, kwargs, arrays))
        return tasks, arrays, ctx

    def judge(self, outcome: sandbox.Outcome, ctx: list[tuple[str, str, dict, dict]]) -> list[Finding]:
        for tid, name, kwargs, arrays in ctx:
            rec = outcome.results["tasks"].get(tid, {})
            bad = _err(rec, "adam_step", name)
            if bad is not None:
                return [bad]
            p0 = arrays[f"{tid}.p"]
            grads = [arrays[f"{tid}.g{s}"] for s in range(ADAM_STEPS)]
            y = outcome.array(rec["call"])
            ref = reference_adam(p0, grads, kwargs)
            # compare the total update p - p0: a flipped sign or a missing term shows in it, not in p itself
            no_bc = adam_without_bias_correction(p0, grads, kwargs) - p0
            variants = {
                "L2 in the gradient where decoupled decay belongs": (
                    "other",
                    reference_adam(p0, grads, {**kwargs, "decoupled": False}) - p0,
                ),
                "decoupled decay where L2 in the gradient belongs": (
                    "other",
                    reference_adam(p0, grads, {**kwargs, "decoupled": True}) - p0,
                ),
            }
            variants = {k: v for k, v in variants.items() if not np.allclose(v[1], ref - p0)}
            f = _mismatch(
                np.asarray(y, dtype=np.float64) - p0,
                ref - p0,
                "adam_step's total update p - p0",
                name,
                Tol(1e-12, 1e-8, "the same float64 arithmetic"),
                terms={"the bias correction 1 / (1 - beta^t)": (ref - p0) - no_bc},
                variants=variants,
            )
            if f is not None:
                return [f]
        return []
