"""The learner's pieces in the zoo: `twograd train TASK --learner DIR` (`models.train(TASK, learner=DIR)`).

A task's model calls its pieces through kernels (models/zoo/kernels.py). With a learner's
workspace (the `twograd learn` exercises, models/learn/workspace.py) a piece is the learner's
when its exercise passed `twograd learn check` and its file is unchanged since; twograd's runs
where the learner has not started the exercise:

    task               pieces (exercise of each)
    xor moons spirals  linear (linear); the hidden activation: sigmoid, relu or tanh
    iris               (activations); the loss: mse (mse) or cross_entropy (cross_entropy)
    copy reverse       attention, mha, layer_norm, transformer_block (each its own exercise)

A piece whose file exists but is not passed and current (never checked, failing, edited since
it passed) is refused before anything is trained or written, in one line naming the piece and
`twograd learn check NAME --dir DIR`.

progress.json is the learner's own file, so before training each piece is also run once on a
small case against twograd's pair (`recheck`): a file marked passed by hand, or one that passed
but cannot take the model's arguments, is refused then, with the numbers, not after a run that
went nowhere. It costs a few milliseconds.

In a GPT a coarser piece contains finer ones: when the learner's transformer_block runs, twograd
calls neither their mha nor their attention (their block calls what it calls); when their mha
runs, their attention is not called by twograd. `LearnerPieces.inside` names those. A
transformer_block without a backward (its backward is the stretch exercise) is not used: twograd's
block chain runs around the learner's other pieces, and a note says so.
"""

# Shape legend (the re-check cases): B batch, T positions, C width, H heads, D = C / H.

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from engine.atomic import sha256_file
from engine.errors import InputError, RunError
from models.learn.workspace import check_command, exercise_status, is_workspace, load_learner_module
from models.zoo.kernels import NN_KERNELS, Kernel
from nn.masks import causal_mask
from nn.transformer_block import block_param_names

#: piece -> (its exercise, the stem of its functions: STEM_forward, STEM_backward)
EXERCISE_OF: dict[str, tuple[str, str]] = {
    "linear": ("linear", "linear"),
    "sigmoid": ("activations", "sigmoid"),
    "relu": ("activations", "relu"),
    "tanh": ("activations", "tanh"),
    "mse": ("mse", "mse"),
    "cross_entropy": ("cross_entropy", "cross_entropy"),
    "attention": ("attention", "attention"),
    "mha": ("mha", "mha"),
    "layer_norm": ("layer_norm", "layer_norm"),
    "transformer_block": ("transformer_block", "transformer_block"),
}
MLP_TASKS = ("xor", "moons", "spirals", "iris")
GPT_TASKS = ("copy", "reverse")
#: the tasks --learner applies to (chars and lines train long float32 / preset runs on the fused step)
LEARNER_TASKS = MLP_TASKS + GPT_TASKS
#: said after "manual engine" in a run's summary: replaced kernels train on the composed pieces, not a fused step
COMPOSED_NOTE = " (the composed pieces)"
#: a re-check passes when every output and gradient is within RECHECK_RTOL * (1 + max |twograd's|):
#: the same math in float64 agrees to ~1e-12; a wrong term is off by O(1).
RECHECK_RTOL = 1e-7


def task_pieces(task: str, model_config: dict[str, Any]) -> tuple[str, ...]:
    """The replaceable pieces a task's model calls, in the order the report lists them."""
    if task in MLP_TASKS:
        return ("linear", model_config["activation"], model_config["loss"])
    if task in GPT_TASKS:
        gpt = model_config["gpt"]
        norm = ("layer_norm",) if gpt["norm"] == "layer" else ()
        return ("attention", "mha", *norm, "transformer_block")
    raise InputError(f"--learner is for the tasks {', '.join(LEARNER_TASKS)}, not {task!r}")


@dataclass
class LearnerPieces:
    """Which pieces of a run are the learner's, their kernels, and what to say about them."""

    folder: Path
    kernels: dict[str, Kernel]  # the learner's kernels the model calls, by piece
    yours: list[str]  # pieces the model calls from the learner
    twograds: list[str]  # pieces the model calls from twograd
    inside: dict[str, str] = field(default_factory=dict)  # a passed piece not called -> the piece of theirs holding it
    sha256: dict[str, str] = field(default_factory=dict)  # exercise -> sha256 of the file used
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """ "your pieces: linear, mse; twograd's: tanh"."""
        line = f"your pieces: {', '.join(self.yours) or 'none'}; twograd's: {', '.join(self.twograds) or 'none'}"
        for outer in dict.fromkeys(self.inside.values()):
            held = [p for p, o in self.inside.items() if o == outer]
            line += f"; your {', '.join(held)} run{'s' if len(held) == 1 else ''} inside your {outer}"
        return line

    def to_json(self) -> dict[str, Any]:
        """What the run folder and `--json` record: the workspace, and each of the learner's pieces with its file's sha256."""
        return {
            "dir": str(self.folder),
            "yours": list(self.yours),
            "twograds": list(self.twograds),
            "inside": dict(self.inside),
            "files": {EXERCISE_OF[p][0]: self.sha256[EXERCISE_OF[p][0]] for p in [*self.yours, *self.inside]},
            "notes": list(self.notes),
        }


def load_pieces(folder: str | Path, task: str, model_config: dict[str, Any]) -> LearnerPieces:
    """The learner's pieces for `task`'s model from workspace `folder`, loaded and re-checked.

    InputError (one line) for a missing folder, a task without pieces, or a piece whose file
    exists but is not passed and current, lacks a function, or fails the re-check.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"--learner {folder}: no such folder (`twograd learn start NAME --dir {folder}` makes one)")
    if not is_workspace(folder):
        raise InputError(
            f"--learner {folder}: not a twograd learn workspace (no progress.json, no exercise started "
            f"there); make one with `twograd learn start NAME --dir {folder}`"
        )
    pieces = task_pieces(task, model_config)
    kernels: dict[str, Kernel] = {}
    sha256: dict[str, str] = {}
    modules: dict[str, Any] = {}
    for piece in pieces:
        exercise, stem = EXERCISE_OF[piece]
        if exercise_status(folder, exercise) == "not started":
            continue  # twograd's
        if exercise not in modules:
            modules[exercise] = load_learner_module(folder, exercise)  # refuses a piece not passed and current
            sha256[exercise] = sha256_file(folder / f"{exercise}.py")
        found = [getattr(modules[exercise], f"{stem}_{kind}", None) for kind in ("forward", "backward")]
        if piece == "transformer_block" and callable(found[0]) and not callable(found[1]):
            found[1] = _no_backward  # the backward is the stretch exercise: a block may pass without one
        for kind, fn in zip(("forward", "backward"), found):
            if not callable(fn):
                raise InputError(
                    f"your {exercise} has no function {stem}_{kind} ({folder / (exercise + '.py')}); "
                    f"run {check_command(exercise, folder)}"
                )
        kernels[piece] = Kernel(*cast("list[Callable[..., Any]]", found))  # both checked callable above
    notes: list[str] = []
    block = kernels.get("transformer_block")
    if block is not None and not _has_backward(block, model_config):
        del kernels["transformer_block"]
        notes.append(
            "your transformer_block has no backward yet (the stretch exercise): twograd's block chain runs "
            "around your other pieces"
        )
    for piece, k in kernels.items():
        recheck(piece, k, model_config, folder)
    kernels = {
        piece: Kernel(_guarded(piece, "forward", k.forward), _guarded(piece, "backward", k.backward))
        for piece, k in kernels.items()
    }
    inside: dict[str, str] = {}  # a replaced piece -> the replaced piece that runs it
    if "transformer_block" in kernels:
        inside.update({p: "transformer_block" for p in ("attention", "mha") if p in kernels})
    elif "mha" in kernels and "attention" in kernels:
        inside["attention"] = "mha"
    used = {p: k for p, k in kernels.items() if p not in inside}
    return LearnerPieces(
        folder.resolve(),
        used,
        [p for p in pieces if p in used],
        [p for p in pieces if p not in kernels],
        inside,
        sha256,
        notes,
    )


def _guarded(piece: str, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, with any exception it raises during the run turned into one RunError line naming the
    learner's function (their code met a shape or a value the checks did not have)."""
    stem = EXERCISE_OF[piece][1]

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # their code: any failure is one line
            raise RunError(f"your {stem}_{kind} failed during the run ({type(err).__name__}: {err})") from None

    call.__wrapped__ = fn  # type: ignore[attr-defined]  # the learner's own function, for whoever asks which code runs
    return call


# ---------------------------------------------------------------------------- the re-check
def _case(piece: str, model_config: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """One small case (positional args, keyword args) of the piece, with the model's settings."""
    rng = np.random.default_rng(0)
    normal = rng.standard_normal
    if piece == "linear":
        return [normal((3, 4)), normal((4, 2)), normal(2)], {}
    if piece in ("sigmoid", "tanh"):
        return [normal((3, 4))], {}
    if piece == "relu":  # kept away from the kink at 0
        a = normal((3, 4))
        return [a + np.sign(a) * 0.1], {}
    if piece == "mse":
        return [normal((4, 1)), rng.integers(0, 2, (4, 1)).astype(np.float64)], {}
    if piece == "cross_entropy":
        return [normal((4, 3))], {"targets": rng.integers(0, 3, 4)}
    gpt = model_config["gpt"]
    eps = gpt["eps"]
    B, T, C, H = 2, 3, 4, 2
    if piece == "layer_norm":
        return [normal((B, T, C)), 1.0 + 0.3 * normal(C), 0.3 * normal(C)], {"eps": eps}
    if piece == "attention":
        return [normal((B, H, T, C // H)), normal((B, H, T, C // H)), normal((B, H, T, C // H)), causal_mask(T)], {}
    if piece == "mha":
        x = normal((B, T, C))
        weights = [normal((C, C)) / 2 for _ in range(4)]
        biases = [0.3 * normal(C) for _ in range(4)] if gpt["bias"] else [None] * 4
        return [x, x, *weights, *biases], {"n_heads": H, "mask": causal_mask(T)}  # self-attention: xq is xkv
    if piece == "transformer_block":
        args = [normal((B, T, C))]
        for name in block_param_names(gpt["norm"], gpt["bias"]):
            shape = {"W1": (C, 2 * C), "W2": (2 * C, C), "b1": (2 * C,)}.get(
                name, (C, C) if name.startswith("W") else (C,)
            )
            args.append(
                normal(shape) / 2
                if name.startswith("W")
                else 1.0 + 0.3 * normal(shape)
                if "gamma" in name
                else 0.3 * normal(shape)
            )
        return args, {
            "n_heads": H,
            "activation": gpt["activation"],
            "norm": gpt["norm"],
            "norm_first": True,
            "causal": True,
            "eps": eps,
        }
    raise InputError(f"no re-check case for the piece {piece!r}")


def _no_backward(dout: Any, cache: Any) -> tuple[Any, ...]:
    """Stands for a transformer_block_backward the learner's file does not define."""
    raise NotImplementedError("transformer_block_backward is not written")


def _has_backward(k: Kernel, model_config: dict[str, Any]) -> bool:
    """False when the piece's backward raises NotImplementedError (a stub left as `learn start` wrote it)."""
    args, kwargs = _case("transformer_block", model_config)
    try:
        out, cache = k.forward(*args, **kwargs)
    except Exception:  # a forward that fails is the re-check's to report
        return True
    try:
        k.backward(np.ones_like(np.asarray(out)), cache)
    except NotImplementedError:
        return False
    except Exception:  # as above
        return True
    return True


def _far(ours: Any, theirs: Any) -> float | None:
    """max |theirs - ours| / (1 + max |ours|), or None when they cannot be compared (shape, None vs array)."""
    if ours is None or theirs is None:
        return None if ours is None and theirs is None else float("inf")
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs)
    if a.shape != b.shape or b.dtype.kind not in "fiu":
        return float("inf")
    return float(np.max(np.abs(b.astype(np.float64) - a), initial=0.0) / (1.0 + np.max(np.abs(a), initial=0.0)))


def _how_far(ours: Any, theirs: Any, gap: float | None) -> str:
    """How theirs differs from ours, in words where the diagnosis can tell ("2x too big (factor)"), else the relative gap."""
    from models.learn.diagnose import BACKWARD_TOL, classify

    if ours is not None and theirs is not None:
        a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs)
        if b.dtype.kind in "fiu":
            b = b.astype(np.float64)
            kind, what = classify(b, a, tol=BACKWARD_TOL)
            rr = float(np.sum(a * a))
            c = float(np.sum(a * b)) / rr if a.shape == b.shape and rr > 0 else 0.0
            if kind == "factor" and c:
                size = f"{c:.3g}x too big" if abs(c) > 1 else f"{1 / c:.3g}x too small"
                return f"{size} (factor)"
            if kind != "other":
                return f"it {what} ({kind})"
    return "relative gap unknown" if gap is None else f"relative gap {gap:.3g}"


def recheck(piece: str, k: Kernel, model_config: dict[str, Any], folder: Path) -> None:
    """Run the learner's pair once on a small case beside twograd's; InputError naming what differs."""
    exercise, stem = EXERCISE_OF[piece]
    fix = f"run {check_command(exercise, folder)}"
    args, kwargs = _case(piece, model_config)
    ref = NN_KERNELS[piece]
    ref_out, ref_cache = ref.forward(*args, **kwargs)
    dout = np.random.default_rng(1).standard_normal(np.shape(ref_out))
    ref_grads = ref.backward(dout, ref_cache)

    def call(what: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except Exception as err:  # their code: any failure is one line
            raise InputError(
                f"your {stem}_{what} raised {type(err).__name__} on a check before training ({err}); {fix}"
            ) from None

    mine = copy.deepcopy((args, kwargs))  # their code gets its own copies: a mutation cannot change the reference
    result = call("forward", k.forward, *mine[0], **mine[1])
    if not (isinstance(result, tuple) and len(result) == 2):
        raise InputError(f"your {stem}_forward must return (out, cache), got {type(result).__name__}; {fix}")
    out, cache = result
    gap = _far(ref_out, out)
    if gap is None or gap > RECHECK_RTOL:
        raise InputError(
            f"your {stem}_forward differs from twograd's on a check before training "
            f"({_how_far(ref_out, out, gap)}); {fix}"
        )
    grads = call("backward", k.backward, dout.copy(), cache)
    if not isinstance(grads, tuple) or len(grads) != len(ref_grads):
        raise InputError(
            f"your {stem}_backward must return a tuple of {len(ref_grads)} gradients, got "
            f"{len(grads) if isinstance(grads, tuple) else type(grads).__name__}; {fix}"
        )
    inputs = list(inspect.signature(ref.forward).parameters)  # the gradients come in input order
    for name, r, g in zip(inputs, ref_grads, grads):
        gap = _far(r, g)
        if gap is not None and gap > RECHECK_RTOL:
            raise InputError(
                f"your {stem}_backward's d{name} differs from twograd's on a check before training "
                f"({_how_far(r, g, gap)}), though progress.json says it passed; {fix}"
            )
