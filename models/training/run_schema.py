"""The schema of a run folder's checkpoint.json: every field's type, range and known keys, and the
agreements between fields, checked before anything in the folder is used. The one place that
says what a valid run record is (nn/checkpoint.py checks the container: the format tag, the
hashes, the npz's headers; this checks the meaning).

    expected = check_run_meta(meta, where)      # CheckpointError (exit 2) on the first problem
    # expected: "param.wte" -> ((V, C), "<f8"), ... every array the npz must hold, shape and dtype

What is checked, field by field (meta is the record's "meta"):

    format "twograd-run", version 1, model     the task's kind of model (mlp | gpt)
    task                                       a task of the table; its data kind is the task
    status, step                               one of STATUSES; 0 <= step <= MAX_STEPS
    lr                                         the scheduled rate at `step`: finite, >= 0
    model_config                               exactly the model's fields, each typed and bounded
                                               (gpt.eps in (0, MAX_EPS]); the model fits the trainer
    train_config                               every TrainConfig field (none taken by default)
    rng_state                                  a PCG64 state of 128-bit and 32-bit integers
    optimizer                                  the type train_config names, its step == step, its
                                               hyperparameters == train_config's, its names
    evals                                      at most MAX_EVALS rows {"step": <= step, metric: number|null}
    extra                                      engine in ENGINES; vocab (chars, lines) of vocab_size tokens

and across them: the arrays (param.<name> in the model's shapes and dtype, optim.<slot>.0 of the
optimizer's slots in the same dtype, losses (step,) float64) are derived here from the config,
so the npz's headers are compared with what the settings need, not with what the record says.

What a schema cannot see: an edit that keeps every type and range (relu for gelu on a GPT whose
weights fit either) — the record's own sha256 (nn.checkpoint) refuses that unless whoever
edited it also recomputed the hash, which only a deliberate forger does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.errors import InputError
from models.data.sequences import SEPARATOR
from models.training.lm import LM_TASKS
from models.training.tabular import TABULAR_TASKS
from models.training.trainer import ENGINES, MOMENTUM, OPTIMIZERS, TrainConfig
from models.zoo.gpt import ACTIVATIONS as GPT_ACTIVATIONS
from models.zoo.gpt import DTYPES, NORMS, POSITIONS, GPTConfig, gpt_param_shapes
from models.zoo.mlp import ACTIVATIONS as MLP_ACTIVATIONS
from models.zoo.mlp import LOSSES, MLPConfig, mlp_param_shapes
from nn.checkpoint import CheckpointError
from nn.optim import SCHEDULES

RUN_FORMAT = "twograd-run"
RUN_VERSION = 1
STATUSES: tuple[str, ...] = ("finished", "interrupted", "diverged", "running")
#: the most steps a run may have (its loss history is one float64 a step: 80 MB at the cap).
MAX_STEPS = 10_000_000
#: the most evaluations a record may hold.
MAX_EVALS = 100_000
#: a norm's epsilon guards a division by zero; one beyond this would swamp unit-size activations.
MAX_EPS = 0.1
#: any width, count or vocabulary of a model: far above what fits the trainer (the size check
#: bounds the product), low enough that no arithmetic on it is slow.
MAX_DIM = 10_000_000
#: a learning rate or weight decay beyond this is not a setting, it is damage.
MAX_RATE = 1e6
MAX_SEED = 2**63 - 1
MAX_PATH_CHARS = 4096
_HEX64 = re.compile(r"[0-9a-f]{64}")
_METRIC = re.compile(r"[a-z][a-z0-9_]{0,63}")
BUNDLED = "pydoc_data.topics"  # a chars run's default text (models.training.lm)

TASKS: dict[str, Any] = {**TABULAR_TASKS, **LM_TASKS}


class SchemaError(CheckpointError):
    """A field of checkpoint.json has the wrong type, range or keys, or disagrees with another."""


# ---------------------------------------------------------------------------- the small schema language
Check = Callable[[Any, str], Any]  # (value, its path in the record) -> the value, or SchemaError


def _fail(path: str, what: str, value: Any) -> SchemaError:
    shown = repr(value)
    return SchemaError(f"{path} must be {what}, got {shown[:80] + ('...' if len(shown) > 80 else '')}")


def integer(low: int, high: int) -> Check:
    def check(v: Any, path: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise _fail(path, f"a whole number in [{low}, {high}]", v)
        return v

    return check


def number(low: float, high: float, *, open_low: bool = False) -> Check:
    def check(v: Any, path: str) -> float:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or not low <= v <= high
            or (open_low and v == low)
        ):
            raise _fail(path, f"a finite number in {'(' if open_low else '['}{low:g}, {high:g}]", v)
        return v

    return check


def real(low: float, high: float, *, open_low: bool = False) -> Check:
    """A JSON float (not an int): what a float field of a config holds."""
    inner = number(low, high, open_low=open_low)

    def check(v: Any, path: str) -> float:
        if not isinstance(v, float):
            raise _fail(path, f"a float in {'(' if open_low else '['}{low:g}, {high:g}]", v)
        return inner(v, path)

    return check


def one_of(*choices: Any) -> Check:
    def check(v: Any, path: str) -> Any:
        if isinstance(v, bool) or v not in choices or type(v) is not type(choices[0]):
            raise _fail(path, f"one of {', '.join(map(repr, choices))}", v)
        return v

    return check


def boolean(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(path, "true or false", v)
    return v


def optional(inner: Check) -> Check:
    def check(v: Any, path: str) -> Any:
        return None if v is None else inner(v, path)

    return check


def text(max_chars: int, pattern: re.Pattern[str] | None = None) -> Check:
    def check(v: Any, path: str) -> str:
        if (
            not isinstance(v, str)
            or len(v) > max_chars
            or "\x00" in v
            or (pattern is not None and not pattern.fullmatch(v))
        ):
            raise _fail(
                path,
                f"a string of at most {max_chars} characters" + (f" matching {pattern.pattern}" if pattern else ""),
                v,
            )
        return v

    return check


def items(inner: Check, low: int, high: int) -> Check:
    def check(v: Any, path: str) -> list[Any]:
        if not isinstance(v, list) or not low <= len(v) <= high:
            raise _fail(path, f"a list of {low} to {high} items", v)
        return [inner(x, f"{path}[{i}]") for i, x in enumerate(v)]

    return check


def record(spec: dict[str, Check], optional_keys: frozenset[str] = frozenset()) -> Check:
    """An object with exactly `spec`'s keys (those in `optional_keys` may be absent)."""

    def check(v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise _fail(path, f"an object with the fields {', '.join(spec)}", v)
        unknown = sorted(k for k in v if k not in spec)
        missing = [k for k in spec if k not in v and k not in optional_keys]
        if unknown or missing:
            said = ([f"unknown fields {', '.join(map(repr, unknown))[:200]}"] if unknown else []) + (
                [f"missing fields {', '.join(map(repr, missing))}"] if missing else []
            )
            raise SchemaError(f"{path}: " + "; ".join(said))
        return {k: spec[k](v[k], f"{path}.{k}") for k in spec if k in v}

    return check


# ---------------------------------------------------------------------------- the fields
STEP = integer(0, MAX_STEPS)
SEED = integer(0, MAX_SEED)
DIM = integer(1, MAX_DIM)

GPT_SPEC: dict[str, Check] = {
    "vocab_size": DIM,
    "context": DIM,
    "d_model": DIM,
    "n_heads": DIM,
    "n_layers": integer(1, 10_000),
    "d_ff": optional(DIM),
    "activation": one_of(*GPT_ACTIVATIONS),
    "norm": one_of(*NORMS),
    "bias": boolean,
    "positions": one_of(*POSITIONS),
    "tied": boolean,
    "scale_embedding": boolean,
    "norm_gain": boolean,
    "embed_norm": boolean,
    "final_norm": boolean,
    "eps": real(0.0, MAX_EPS, open_low=True),
    "dtype": one_of(*DTYPES),
    "seed": SEED,
}
GPT_FIELDS = record(GPT_SPEC)

MLP_FIELDS = record(
    {"sizes": items(DIM, 2, 64), "activation": one_of(*MLP_ACTIVATIONS), "loss": one_of(*LOSSES), "seed": SEED}
)

TRAIN_SPEC: dict[str, Check] = {
    "steps": integer(1, MAX_STEPS),
    "batch_size": optional(DIM),
    "optimizer": one_of(*OPTIMIZERS),
    "lr": number(0.0, MAX_RATE, open_low=True),
    "warmup_steps": STEP,
    "decay": one_of(*SCHEDULES),
    "min_lr": number(0.0, MAX_RATE),
    "weight_decay": number(0.0, MAX_RATE),
    "grad_clip": optional(number(0.0, 1e300, open_low=True)),
    "eval_every": STEP,
    "checkpoint_every": STEP,
    "seed": SEED,
    "betas": items(number(0.0, 1.0 - 1e-16), 2, 2),
}
TRAIN_FIELDS = record(TRAIN_SPEC)

RNG_FIELDS = record(
    {
        "bit_generator": one_of("PCG64"),
        "state": record({"state": integer(0, 2**128 - 1), "inc": integer(0, 2**128 - 1)}),
        "has_uint32": integer(0, 1),
        "uinteger": integer(0, 2**32 - 1),
    }
)

#: an optimizer's type and hyperparameters, by TrainConfig.optimizer
OPTIMIZER_TYPES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "momentum": "SGD"}
ADAM_EPS = 1e-8  # nn.optim.Adam's default, which the trainer keeps
HYPER_FIELDS = {
    "Adam": record(
        {
            "lr": number(0.0, MAX_RATE),
            "betas": items(number(0.0, 1.0), 2, 2),
            "eps": number(0.0, 1.0),
            "weight_decay": number(0.0, MAX_RATE),
        }
    ),
    "SGD": record({"lr": number(0.0, MAX_RATE), "momentum": number(0.0, 1.0)}),
}
HYPER_FIELDS["AdamW"] = HYPER_FIELDS["Adam"]
SLOTS = {"Adam": ("m", "v"), "AdamW": ("m", "v"), "SGD": ()}


def _metric_row(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict) or "step" not in v or len(v) > 32:
        raise _fail(path, "an object with a step and at most 31 metrics", v)
    out = {"step": STEP(v["step"], f"{path}.step")}
    for k, x in v.items():
        if k != "step":
            text(64, _METRIC)(k, f"{path} key")
            out[k] = optional(number(-1e300, 1e300))(x, f"{path}.{k}")
    return out


# ---------------------------------------------------------------------------- the whole record
def check_run_meta(meta: Any, where: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Check a run record's meta (see the module docstring); return the arrays its npz must hold,
    name -> (shape, dtype str). SchemaError (a CheckpointError: exit 2) naming the field otherwise."""
    try:
        return _check(meta)
    except SchemaError as err:
        raise SchemaError(f"{where}: damaged checkpoint: {err}") from None


def _check(meta: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    if not isinstance(meta, dict):
        raise _fail("meta", "an object", meta)
    if meta.get("format") != RUN_FORMAT:
        raise SchemaError(f"not a twograd run (format {str(meta.get('format'))[:80]!r}, expected {RUN_FORMAT!r})")
    if meta.get("version") != RUN_VERSION:
        raise SchemaError(
            f"unsupported run version {str(meta.get('version'))[:20]!r} (this twograd reads {RUN_VERSION})"
        )
    top = record(
        {
            "format": one_of(RUN_FORMAT),
            "version": one_of(RUN_VERSION),
            "model": one_of("mlp", "gpt"),
            "task": text(64),
            "status": one_of(*STATUSES),
            "step": STEP,
            "lr": number(0.0, MAX_RATE),
            "model_config": lambda v, p: v,
            "train_config": TRAIN_FIELDS,
            "rng_state": RNG_FIELDS,
            "optimizer": lambda v, p: v,
            "evals": items(_metric_row, 0, MAX_EVALS),
            "extra": lambda v, p: v,
        }
    )
    m = top(meta, "meta")
    task_name = m["task"]
    if task_name not in TASKS:
        raise SchemaError(f"meta.task: unknown task {task_name!r}; choose one of: {', '.join(TASKS)}")
    task = TASKS[task_name]
    if m["model"] != task.kind:
        raise SchemaError(f"meta.model is {m['model']!r}, but task {task_name!r} trains a {task.kind!r} model")
    train = _train_config(m["train_config"])
    step = m["step"]
    previous = -1
    for i, row in enumerate(m["evals"]):
        if row["step"] > step or row["step"] < previous:
            raise SchemaError(f"meta.evals[{i}].step {row['step']} is out of order (the run is at step {step})")
        previous = row["step"]

    if task.kind == "gpt":
        _, shapes, dtype = _gpt(task_name, meta["model_config"], meta.get("extra"))
    else:
        _, shapes, dtype = _mlp(task_name, meta["model_config"])
        _extra(meta.get("extra"), task_name, vocab_size=None)
    try:
        task.check_size(meta["model_config"], train, "manual")
    except InputError as err:
        raise SchemaError(f"the recorded model does not fit: {err}") from None

    optimizer = _optimizer(meta["optimizer"], train, step, m["lr"])
    expected: dict[str, tuple[tuple[int, ...], str]] = {f"param.{n}": (s, dtype) for n, s in shapes.items()}
    total = sum(math.prod(s) for s in shapes.values())
    for slot in SLOTS[optimizer["type"]] + (
        ("momentum",) if optimizer["type"] == "SGD" and train.optimizer == "momentum" else ()
    ):
        expected[f"optim.{slot}.0"] = ((total,), dtype)
    expected["losses"] = ((step,), np.dtype(np.float64).str)
    return expected


def _train_config(raw: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(dict(raw)).validate()
    except (InputError, TypeError, ValueError) as err:
        raise SchemaError(f"meta.train_config: invalid training settings: {err}") from None


def _gpt(task_name: str, raw: Any, extra: Any) -> tuple[GPTConfig, dict[str, tuple[int, ...]], str]:
    mc = record({"gpt": GPT_FIELDS, "data": lambda v, p: v})(raw, "meta.model_config")
    g = mc["gpt"]
    data = raw["data"]
    if task_name in ("copy", "reverse"):
        d = record({"kind": one_of(task_name), "symbols": integer(2, 100), "length": integer(1, 64)})(
            data, "meta.model_config.data"
        )
        if g["vocab_size"] != d["symbols"] + 1:
            raise SchemaError(
                f"meta.model_config.gpt.vocab_size {g['vocab_size']} disagrees with data.symbols {d['symbols']} "
                "(a copy/reverse vocabulary is the symbols and the separator)"
            )
        if g["context"] < 2 * d["length"]:
            raise SchemaError(
                f"meta.model_config.gpt.context {g['context']} cannot hold question and answer "
                f"({2 * d['length']} tokens)"
            )
        digits = [str(i) for i in range(d["symbols"])] + [SEPARATOR]
        vocab = _extra(extra, task_name, vocab_size=g["vocab_size"], max_token=len(digits[-2])).get("vocab")
        if vocab is not None and vocab != digits:
            raise SchemaError(f"meta.extra.vocab must be the symbols 0 .. {d['symbols'] - 1} and {SEPARATOR!r}")
    else:
        d = record({"kind": one_of(task_name), "source": text(MAX_PATH_CHARS), "sha256": text(64, _HEX64)})(
            data, "meta.model_config.data"
        )
        if d["source"] != BUNDLED and not d["source"].startswith("/"):
            raise SchemaError(
                f"meta.model_config.data.source must be {BUNDLED!r} or an absolute path, got {d['source'][:80]!r}"
            )
        _extra(extra, task_name, vocab_size=g["vocab_size"])
    try:
        config = GPTConfig(**g).validate()
    except (InputError, TypeError) as err:
        raise SchemaError(f"meta.model_config.gpt: {err}") from None
    return config, gpt_param_shapes(config), np.dtype(config.dtype).str


def _mlp(task_name: str, raw: Any) -> tuple[MLPConfig, dict[str, tuple[int, ...]], str]:
    from models.data.datasets import load_dataset

    c = MLP_FIELDS(raw, "meta.model_config")
    try:
        config = MLPConfig(**c).validate()
    except (ValueError, TypeError) as err:
        raise SchemaError(f"meta.model_config: {err}") from None
    data = load_dataset(task_name, seed=0)  # the shapes of the data do not depend on the seed
    n_out = 1 if config.loss == "mse" and data.n_classes == 2 else data.n_classes
    if config.sizes[0] != data.n_features or config.sizes[-1] != n_out:
        raise SchemaError(
            f"meta.model_config.sizes {config.sizes} disagrees with {task_name}: {data.n_features} inputs, "
            f"{n_out} output{'s' if n_out != 1 else ''} for the {config.loss} loss"
        )
    return config, mlp_param_shapes(config), np.dtype(np.float64).str


def _names(v: Any, path: str) -> list[str]:
    return items(text(64), 0, 64)(v, path)


#: a run trained with `train --learner` (models/training/learner.py: LearnerPieces.to_json): which
#: pieces were the learner's, their files' sha256, and until which step (a resume continues on twograd's).
LEARNER_FIELDS = record(
    {
        "dir": text(MAX_PATH_CHARS),
        "yours": _names,
        "twograds": _names,
        "inside": lambda v, p: _string_map(v, p),
        "files": lambda v, p: _string_map(v, p, _HEX64),
        "notes": items(text(1000), 0, 64),
        "until_step": STEP,
    },
    frozenset({"until_step"}),
)


def _string_map(v: Any, path: str, values: re.Pattern[str] | None = None) -> dict[str, str]:
    if not isinstance(v, dict) or len(v) > 64:
        raise _fail(path, "an object of at most 64 names", v)
    return {text(64)(k, f"{path} key"): text(64, values)(x, f"{path}.{k}") for k, x in v.items()}


def _extra(raw: Any, task_name: str, vocab_size: int | None, max_token: int = 1) -> dict[str, Any]:
    """The task's own record: the engine, a GPT task's vocabulary (tokens of at most `max_token`
    characters), and the learner's pieces of a run trained with --learner."""
    keys = {"engine": one_of(*ENGINES), "learner": LEARNER_FIELDS}
    if vocab_size is not None:
        keys["vocab"] = items(text(max_token), 1, MAX_DIM)
    e = record(keys, frozenset(keys))(raw, "meta.extra")
    vocab = e.get("vocab")
    if vocab is not None:
        if len(vocab) != vocab_size or len(set(vocab)) != len(vocab) or not all(vocab):
            raise SchemaError(
                f"meta.extra.vocab must be {vocab_size} distinct tokens (the model's vocab_size), got {len(vocab)}"
            )
    return e


def _optimizer(raw: Any, train: TrainConfig, step: int, lr: float) -> dict[str, Any]:
    kind = OPTIMIZER_TYPES[train.optimizer]
    o = record(
        {"type": one_of(kind), "step": STEP, "hyperparameters": HYPER_FIELDS[kind], "names": items(one_of("0"), 1, 1)}
    )(raw, "meta.optimizer")
    if o["step"] != step:
        raise SchemaError(f"meta.optimizer: the optimizer's step {o['step']} differs from the run's step {step}")
    h = o["hyperparameters"]
    want: dict[str, Any] = {"lr": lr}
    if kind == "SGD":
        want["momentum"] = MOMENTUM if train.optimizer == "momentum" else 0.0
    else:
        want.update(betas=list(train.betas), eps=ADAM_EPS, weight_decay=train.weight_decay)
    for key, value in want.items():
        if h[key] != value:
            raise SchemaError(
                f"meta.optimizer.hyperparameters.{key} is {h[key]!r}, but the run's settings give {value!r}"
            )
    return o
