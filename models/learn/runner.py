"""The program the sandbox's child process runs: it imports the learner's file and runs the tasks it is given.

    python runner.py SPEC_DIR

SPEC_DIR holds `spec.json` (the limits, and the jobs: per learner file, the file and its task
list) and one `inputs_N.npz` per job (every array its tasks name). The child writes
`results.npz` (arrays, numbers only: loaded with allow_pickle=False) and then `results.json`
(per job, one entry per task, naming its arrays); the parent reads nothing else. One job is
`learn check NAME`; several are a batch (tests), each file imported under its own name.

Run by path, so it imports neither `models` nor its own package: only the standard library,
numpy, and `engine` (stdlib only) for the graph and numeric paths.

A task is one of (see `OPS`):

    call        fn(*args, **kwargs) -> an array, a number, or a tuple of them
    three_way   forward(*inputs, **static) -> (out, cache); backward(R, cache) -> gradients;
                central differences of forward; the loops form on engine Values (graph gradients)
    gradcheck   their numerical_gradient(f, xs, eps) on functions with known derivatives
    value       their Value class on a small program of ops (the nodes' data and grads)
    train       their train(loss_and_grad, params, lr=, steps=) on XOR (the loss and grads are ours)
    steps       their optimizer step fed its own output for t = 1 .. n (adam)

Every error inside the learner's code is caught per stage and recorded with its type, message
and the line of their file it came from; SystemExit too (a `sys.exit` in their file is one
line of report, not the end of the check).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
import resource
import sys
import traceback
from collections.abc import Callable
from typing import Any


def _limit(spec: dict[str, Any]) -> None:
    """The memory and CPU-time limits, set in the child itself before the learner's file is imported."""
    mem = int(spec.get("memory_bytes", 0))
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    size = int(spec.get("file_bytes", 0))
    if size:  # a printing loop (or a file of theirs) stops at this size instead of filling the disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    cpu = int(spec.get("cpu_seconds", 0))
    if cpu:  # a backstop: the parent's wall-clock limit kills the child first
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def describe(err: BaseException, path: str) -> dict[str, Any]:
    """type, message and the last line of the learner's file in the traceback (their line, not ours)."""
    where = ""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if os.path.abspath(frame.filename) == path:
            where = f"line {frame.lineno}: {(frame.line or '').strip()}"
            break
    message = str(err)
    if isinstance(err, SystemExit):
        message = f"sys.exit({err.code!r}) was called"
    elif isinstance(err, RecursionError):
        message = (
            f"{message} (a recursive function went deeper than Python's recursion limit {sys.getrecursionlimit()})"
        )
    elif isinstance(err, OSError) and err.errno == errno.EFBIG:
        message = "printed or wrote more than the sandbox's limit of bytes per file (a print inside a loop?)"
    elif isinstance(err, MemoryError):
        message = f"out of memory ({message or 'an allocation failed'}) under the sandbox's memory limit"
    return {"type": type(err).__name__, "message": message[:400], "where": where[:200]}


class Store:
    """Collects the arrays to send back: numbers only, each under a fresh key."""

    def __init__(self, np: Any) -> None:
        self.np = np
        self.arrays: dict[str, Any] = {}

    def put(self, value: Any) -> dict[str, Any]:
        """{"key", "shape", "dtype"} of `value` stored as an array, or {"bad": why} if it is not numbers."""
        np = self.np
        if (
            isinstance(value, (list, tuple))
            and value
            and not isinstance(value[0], (int, float, list, tuple))
            and not hasattr(value[0], "dtype")
        ):
            return {"bad": f"a {type(value).__name__} of {type(value[0]).__name__}"}
        try:
            a = np.asarray(value)
        except Exception as err:  # ragged lists, ...
            return {"bad": f"{type(value).__name__} that is not an array ({err})"[:200]}
        if a.dtype.kind not in "biuf":
            return {
                "bad": f"{type(value).__name__} of dtype {a.dtype}"
                + (f" (holding {type(a.flat[0]).__name__})" if a.size else "")
            }
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return {"key": key, "shape": list(a.shape), "dtype": str(a.dtype)}

    def put_many(self, values: Any) -> dict[str, Any]:
        if not isinstance(values, (tuple, list)):
            return {"bad": f"a {type(values).__name__}, not a tuple of gradients"}
        return {"items": [self.put(v) for v in values]}


def _resolve(x: Any, arrays: dict[str, Any]) -> Any:
    """JSON literals, with {"array": key} replaced by a copy of that input array."""
    if isinstance(x, dict) and set(x) == {"array"}:
        return arrays[x["array"]].copy()
    if isinstance(x, dict):
        return {k: _resolve(v, arrays) for k, v in x.items()}
    if isinstance(x, list):
        return [_resolve(v, arrays) for v in x]
    return x


def _mutated(np: Any, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        n
        for n in before
        if not (after[n].shape == before[n].shape and np.array_equal(after[n], before[n], equal_nan=True))
    ]


def _stage(record: dict[str, Any], name: str, path: str, fn: Callable[[], Any]) -> Any:
    """Run one stage of a task; its error (if any) goes into record[name]; returns fn's value or None."""
    try:
        return fn()
    except BaseException as err:  # SystemExit, KeyboardInterrupt from their code: a report, not our end
        if isinstance(err, KeyboardInterrupt) and not getattr(err, "__traceback__", None):
            raise
        record[name] = {"error": describe(err, path)}
        return None


# ---------------------------------------------------------------------------- ops
def op_call(mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    fn = getattr(mod, task["fn"])
    args = _resolve(task.get("args", []), arrays)
    kwargs = _resolve(task.get("kwargs", {}), arrays)
    before = {f"arg{i}": a.copy() for i, a in enumerate(args) if hasattr(a, "shape")}
    value = _stage(rec, "call", path, lambda: fn(*args, **kwargs))
    if "call" not in rec:
        rec["call"] = store.put_many(value) if task.get("many") else store.put(value)
    after = {f"arg{i}": a for i, a in enumerate(args) if hasattr(a, "shape")}
    rec["mutated"] = _mutated(np, before, after)
    return rec


def op_three_way(
    mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    names = task["inputs"]
    inputs = {n: arrays[task["arrays"][n]].copy() for n in names}
    static = _resolve(task.get("static", {}), arrays)
    before = {n: a.copy() for n, a in inputs.items()}
    fwd = getattr(mod, task["forward"])
    pair = _stage(rec, "forward", path, lambda: fwd(*inputs.values(), **static))
    rec["mutated"] = _mutated(np, before, inputs)
    if "forward" in rec:
        return rec
    if not (isinstance(pair, tuple) and len(pair) == 2):
        name = type(pair).__name__
        article = "an" if name[0] in "aeiou" or name == "ndarray" else "a"  # "an ndarray" as it is read: en-dee-array
        got = f"{article} {name}" + (f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else "")
        rec["forward"] = {
            "bad": "not (out, cache)",
            "kind": "shape",
            "message": f"{task['forward']} must return (out, cache), a tuple; it returned {got}",
        }
        return rec
    out, cache = pair
    rec["forward"] = store.put(out)
    if task.get("forward_only"):
        loops = getattr(mod, task["loops"], None) if task.get("loops") else None
        if loops is not None:  # an edge case the loops form must survive too, on floats (e^1000 overflows there first)
            inputs = {n: before[n].copy() for n in names}
            run_loops = loops  # narrowed to not-None here; a lambda would not keep that narrowing
            lo = _stage(rec, "loops", path, lambda: run_loops(*(inputs[n].tolist() for n in names), **static))
            if "loops" not in rec:
                rec["loops"] = store.put(lo)
        return rec
    R = arrays[task["R"]]
    bwd = getattr(mod, task["backward"]) if task.get("backward") else None
    if bwd is not None:
        dout = R.copy()
        grads = _stage(rec, "backward", path, lambda: bwd(dout, cache))
        if "backward" not in rec:
            rec["backward"] = store.put_many(grads)
        if not np.array_equal(dout, R):  # the upstream gradient is the caller's: a residual still needs it
            rec["mutated"] = rec.get("mutated", []) + ["dout"]
    inputs = {n: before[n].copy() for n in names}
    if task.get("numeric"):
        from engine import numerical_gradient_arrays

        def loss(arrs: dict[str, Any]) -> float:
            o, _ = fwd(*(arrs[n] for n in names), **static)
            return float(np.sum(np.asarray(o, dtype=np.float64) * R))

        num = _stage(rec, "numeric", path, lambda: numerical_gradient_arrays(loss, inputs, eps=task.get("eps", 1e-6)))
        if "numeric" not in rec:
            rec["numeric"] = store.put_many([num[n] for n in names])
    loops = getattr(mod, task["loops"], None) if task.get("loops") else None
    if loops is not None:
        lo = _stage(rec, "loops", path, lambda: loops(*(inputs[n].tolist() for n in names), **static))
        if "loops" not in rec:
            rec["loops"] = store.put(lo)
        if task.get("graph"):
            from engine import Value, graph_gradients
            from engine.gradcheck import _flatten

            weights = R.reshape(-1).tolist()

            def graph_loss(vals: dict[str, Any]) -> Any:
                leaves = _flatten(loops(*(vals[n] for n in names), **static))
                if len(leaves) != len(weights):
                    raise ValueError(
                        f"your loops form gives {len(leaves)} outputs, the right answer has {len(weights)}"
                    )
                total = leaves[0] * weights[0]
                for leaf, w in zip(leaves[1:], weights[1:]):
                    total = total + leaf * w
                return total if isinstance(total, Value) else Value(float(total))

            res = _stage(rec, "graph", path, lambda: graph_gradients(graph_loss, inputs))
            if "graph" not in rec:
                rec["graph"] = store.put_many([res[1][n] for n in names])
    return rec


#: the functions a learner's gradient checker is graded on: name -> f(*xs) (their derivatives live with the grader)
KNOWN_FUNCTIONS: dict[str, Callable[..., float]] = {
    "x^3": lambda x: x**3,
    "sin(x) y": lambda x, y: math.sin(x) * y,
    "exp(x) + x y^2": lambda x, y: math.exp(x) + x * y * y,
    "1/x": lambda x: 1.0 / x,
    "big: 1e6 x^2": lambda x: 1e6 * x * x,
}


def op_gradcheck(
    mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    fn = getattr(mod, task["fn"])
    f = KNOWN_FUNCTIONS[task["function"]]
    xs = list(task["xs"])
    given = list(xs)
    kwargs = {"eps": task["eps"]} if task.get("eps") is not None else {}
    value = _stage(rec, "call", path, lambda: fn(f, xs, **kwargs))
    if "call" not in rec:
        rec["call"] = store.put(value)
    rec["mutated"] = ["xs"] if xs != given else []
    return rec


def op_value(
    mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any
) -> dict[str, Any]:
    """Run a program of ops on their Value: ("leaf", x) | ("add"|"mul", i, j) | ("radd"|"rmul", c, i) | ("pow", i, k) | ("exp"|"tanh", i)."""
    rec: dict[str, Any] = {}
    V = mod.Value

    def run() -> tuple[list[float], list[float]]:
        nodes: list[Any] = []
        for op in task["program"]:
            kind = op[0]
            if kind == "leaf":
                nodes.append(V(op[1]))
            elif kind == "add":
                nodes.append(nodes[op[1]] + nodes[op[2]])
            elif kind == "mul":
                nodes.append(nodes[op[1]] * nodes[op[2]])
            elif kind == "radd":
                nodes.append(op[1] + nodes[op[2]])
            elif kind == "rmul":
                nodes.append(op[1] * nodes[op[2]])
            elif kind == "pow":
                nodes.append(nodes[op[1]] ** op[2])
            elif kind == "exp":
                nodes.append(nodes[op[1]].exp())
            elif kind == "tanh":
                nodes.append(nodes[op[1]].tanh())
            else:
                raise ValueError(f"unknown op {kind}")
        data = [float(n.data) for n in nodes]
        nodes[-1].backward()
        grads = [float(n.grad) for n in nodes]
        return data, grads

    res = _stage(rec, "call", path, run)
    if "call" not in rec:
        rec["data"] = store.put(res[0])
        rec["grads"] = store.put(res[1])
        rec["call"] = {"ok": True}
    return rec


def op_train(
    mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any
) -> dict[str, Any]:
    """Their train(loss_and_grad, params, lr=, steps=) on XOR, with twograd's MLP loss and gradient."""
    rec: dict[str, Any] = {}
    from nn.activations import tanh_backward, tanh_forward
    from nn.linear import linear_backward, linear_forward
    from nn.losses import mse_backward, mse_forward

    x, y = arrays["x"], arrays["y"]
    params = {n: arrays[n].copy() for n in ("W1", "b1", "W2", "b2")}
    calls = [0]

    seen: list[float] = []  # every loss handed out, sent back even when their loop fails (a climbing loss shows a sign)

    def loss_and_grad(p: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        calls[0] += 1
        if len(seen) >= 2 * task["steps"] + 10:
            raise RuntimeError(f"loss_and_grad was called {len(seen)} times for {task['steps']} steps")
        a, c1 = linear_forward(x, p["W1"], p["b1"])
        h, c2 = tanh_forward(a)
        z, c3 = linear_forward(h, p["W2"], p["b2"])
        loss, c4 = mse_forward(z, y)
        (dz, _) = mse_backward(1.0, c4)
        dh, dW2, db2 = linear_backward(dz, c3)
        (da,) = tanh_backward(dh, c2)
        _, dW1, db1 = linear_backward(da, c1)
        seen.append(float(loss))
        return float(loss), {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    fn = getattr(mod, task["fn"])
    with np.errstate(all="ignore"):
        losses = _stage(rec, "call", path, lambda: fn(loss_and_grad, params, lr=task["lr"], steps=task["steps"]))
    rec["seen"] = store.put(seen) if seen else None
    if "call" not in rec:
        rec["call"] = store.put(losses)
        rec["params"] = {n: store.put(params[n]) for n in params}
        rec["calls"] = calls[0]
    return rec


def op_steps(
    mod: Any, task: dict[str, Any], arrays: dict[str, Any], store: Store, path: str, np: Any
) -> dict[str, Any]:
    """Their optimizer step, fn(p, g, m, v, t, **kwargs) -> (p, m, v), fed its own output for t = 1 .. n."""
    rec: dict[str, Any] = {}
    fn = getattr(mod, task["fn"])
    p = arrays[task["p"]].copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    grads = [arrays[k] for k in task["grads"]]

    def run() -> Any:
        nonlocal p, m, v
        for t, g in enumerate(grads, start=1):
            out = fn(p, g.copy(), m, v, t, **task.get("kwargs", {}))
            if not (isinstance(out, (tuple, list)) and len(out) == 3):
                raise TypeError(f"{task['fn']} must return (p, m, v), got {type(out).__name__}")
            p, m, v = (np.asarray(a) for a in out)
        return p

    res = _stage(rec, "call", path, run)
    if "call" not in rec:
        rec["call"] = store.put(res)
    return rec


OPS: dict[str, Callable[..., dict[str, Any]]] = {
    "call": op_call,
    "three_way": op_three_way,
    "gradcheck": op_gradcheck,
    "value": op_value,
    "train": op_train,
    "steps": op_steps,
}


def run_job(job: dict[str, Any], index: int, spec_dir: str, store: Store, np: Any) -> dict[str, Any]:
    """Import one learner file and run its tasks; everything of theirs that goes wrong is in the result."""
    with np.load(os.path.join(spec_dir, job["inputs"]), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    path = os.path.abspath(job["module_path"])
    results: dict[str, Any] = {"tasks": {}}
    try:
        mod_spec = importlib.util.spec_from_file_location(f"twograd_learner_{job['exercise']}_{index}", path)
        if mod_spec is None or mod_spec.loader is None:  # not a .py file: nothing Python can import
            raise ImportError(f"{path} cannot be imported as a Python module")
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        missing = [n for n in job.get("required", []) if not callable(getattr(mod, n, None))]
        if missing:
            results["missing"] = missing
    except BaseException as err:
        results["load_error"] = describe(err, path)
        mod = None
    if mod is not None and not results.get("missing"):
        for task in job["tasks"]:
            try:
                results["tasks"][task["id"]] = OPS[task["op"]](mod, task, arrays, store, path, np)
            except BaseException as err:  # an error of theirs outside a stage (a missing attribute, ...)
                results["tasks"][task["id"]] = {"error": describe(err, path)}
    return results


def main(spec_dir: str) -> int:
    """Run every job of SPEC_DIR/spec.json (one learner file each), then write the results, JSON last."""
    with open(os.path.join(spec_dir, "spec.json"), encoding="utf-8") as f:
        spec = json.load(f)
    # Not our folder first on sys.path (this file is run by path): twograd's root, then the learners' folders
    # last, so a file of theirs may import another of theirs (mlp.py importing linear.py).
    sys.path[0:1] = [spec["root"]]
    for job in spec["jobs"]:
        if job["workspace"] not in sys.path:
            sys.path.append(job["workspace"])
    import numpy as np

    _limit(spec)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    store = Store(np)
    results = {"jobs": [run_job(job, i, spec_dir, store, np) for i, job in enumerate(spec["jobs"])]}
    np.savez(os.path.join(spec_dir, "results.npz"), **store.arrays)
    tmp = os.path.join(spec_dir, "results.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, allow_nan=True)
    os.replace(tmp, os.path.join(spec_dir, "results.json"))  # last: its presence means "finished"
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    os._exit(code)  # no interpreter teardown: their objects' __del__ or atexit hooks cannot change the outcome
