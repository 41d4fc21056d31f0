"""Run folders: the one place that writes and reads them, and the rules that keep a finished run.

A run folder holds one training run of any kind of model:

    DIR/checkpoint.npz    parameters ("param.<name>"), optimizer buffers ("optim.<slot>.<name>"),
                          the loss of every step ("losses"); read with allow_pickle=False
    DIR/checkpoint.json   what was trained and how: the kind of model and its config, the task, the
                          TrainConfig, the step, the status, the generator's state, the evaluations,
                          the optimizer's step and hyperparameters; it carries the npz's sha256
    DIR/*.png             pictures (loss curve, ...), written after the checkpoint

Both files are written atomically (nn.checkpoint), so a crash leaves the old pair or the new one.

Nothing a user made is lost:

* `prepare_out(DIR)` refuses a folder that already holds a run, naming `--resume DIR` and
  `--overwrite`; it leaves every byte of that run as it was;
* an interrupted run without a folder of its own gets a new one (`new_run_folder`), never one
  that another run has used;
* an empty folder name is an error, not "the current folder";
* while a run writes into a folder it holds a claim on it (`claim_folder`, the file
  `DIR/.twograd-writing` with its process id), so that a second command started into the same
  folder before the first has written anything is refused instead of writing over it later.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from models.training.trainer import TrainConfig, TrainState
from nn.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint

CHECKPOINT = "checkpoint"  # DIR/checkpoint.npz + DIR/checkpoint.json
RUN_FORMAT = "twograd-run"  # meta["format"]: refuse checkpoints of anything else
RUN_VERSION = 1
DEFAULT_ROOT = Path("twograd-out") / "runs"  # where a run without --out is kept when interrupted
STATUSES: tuple[str, ...] = ("finished", "interrupted", "diverged", "running")


class RunExists(InputError):
    """The folder already holds a run, and neither --resume nor --overwrite was given."""


@dataclass
class SavedRun:
    """A run folder's contents, checked (see `load_run`)."""

    folder: Path
    model_kind: str  # which kind of model ("mlp", ...): the task rebuilds it from model_config
    task: str
    model_config: dict[str, Any]
    train_config: TrainConfig
    params: dict[str, np.ndarray]  # name -> array, as Module.state_dict() gave them
    state: TrainState
    status: str
    extra: dict[str, Any] = field(default_factory=dict)  # the task's own record (engine, data set, ...)


# ---------------------------------------------------------------------------- folders
def holds_run(folder: Path) -> bool:
    """True when `folder` has a checkpoint (either file of the pair, whole or damaged)."""
    return any(p.exists() for p in checkpoint_paths(Path(folder) / CHECKPOINT))


def describe_run(folder: Path) -> str:
    """A few words on the run in `folder` ("a finished run of moons at step 1000"), for messages."""
    try:
        meta = json.loads(checkpoint_paths(Path(folder) / CHECKPOINT)[1].read_text(encoding="utf-8"))["meta"]
        return f"a {meta['status']} run of {meta['task']} at step {meta['step']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run (its checkpoint could not be read)"


def prepare_out(out: str | Path, *, overwrite: bool = False, resumable: bool = True) -> Path:
    """Check (and create) the folder a new run will be written to, before step 1.

    InputError for an empty name, a path that is a file, or a folder that cannot be written;
    RunExists for a folder that holds a run, unless `overwrite`, in which case the old
    run's checkpoint is removed now (its pictures are replaced when the new run writes its own).
    `resumable` False (distill, align: no --resume, no --overwrite) only asks for another folder.
    """
    if not str(out).strip():
        raise InputError("--out needs a folder name (an empty one would mean the current folder)")
    folder = Path(out)
    if folder.is_dir() and holds_run(folder) and not overwrite:  # refused before the folder is touched
        raise _holds_a_run(folder, resumable)
    folder = writable_folder(folder, "--out")
    claim_folder(folder, "--out")  # then looked at again: another command may have written a run meanwhile
    if holds_run(folder):
        if not overwrite:
            release_folder(folder)
            raise _holds_a_run(folder, resumable)
        for path in checkpoint_paths(folder / CHECKPOINT):
            path.unlink(missing_ok=True)
    return folder


def _holds_a_run(folder: Path, resumable: bool) -> RunExists:
    """The refusal of an --out folder that holds a run, with what to do instead."""
    hint = f"continue it with --resume {folder}, or pass --overwrite to replace it" if resumable else "choose another folder"
    return RunExists(f"--out {folder}: the folder already holds {describe_run(folder)}; {hint}")


CLAIM = ".twograd-writing"  # DIR/CLAIM holds the id of the process writing a run into DIR
_claims: set[Path] = set()  # the claim files this process holds


def _holder(path: Path) -> int | None:
    """The process id in a claim file, or None when it cannot be read or that process is gone."""
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return None
    except PermissionError:  # it exists, under another user
        return pid
    return pid


def claim_folder(folder: Path, flag: str = "--out") -> None:
    """Hold `folder` for this process while a run writes into it; RunExists when another live
    process holds it. The check that a folder holds no run happens before any file is written,
    so two commands started into one new folder would both pass it; the claim makes the second
    one fail at once instead. A claim left by a process that was killed is taken over.

    The claim file is made whole (written under another name, then hard-linked into place,
    which fails if the name exists), so another process never reads a half-written one."""
    path = Path(folder).resolve() / CLAIM
    for _ in range(3):
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".claim-", delete=False, encoding="ascii") as tmp:
            tmp.write(f"{os.getpid()}\n")
        try:
            os.link(tmp.name, path)
        except FileExistsError:
            holder = _holder(path)
            if holder == os.getpid():
                _claims.add(path)
                return
            if holder is not None:
                raise RunExists(f"{flag} {folder}: another twograd process (pid {holder}) is writing a run there; "
                                f"wait for it or choose another folder (if none is running, delete {path})") from None
            path.unlink(missing_ok=True)  # left by a process that is gone
            continue
        except OSError:  # a file system without hard links: go on unclaimed rather than refuse
            return
        finally:
            os.unlink(tmp.name)
        _claims.add(path)
        return
    raise RunExists(f"{flag} {folder}: could not claim the folder (other processes keep taking it); choose another")


def release_folder(folder: Path) -> None:
    """Give up this process's claim on `folder` (see `claim_folder`); nothing if it holds none."""
    path = Path(folder).resolve() / CLAIM
    if path in _claims:
        _claims.discard(path)
        if _holder(path) == os.getpid():
            path.unlink(missing_ok=True)


@atexit.register
def _release_all() -> None:
    for path in list(_claims):
        release_folder(path.parent)


def writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder (and its parents) and check that a file can be made in it, so that a
    bad folder fails before the work, not after it. InputError naming `flag` otherwise."""
    if not str(path).strip():
        raise InputError(f"{flag} needs a folder name (an empty one would mean the current folder)")
    folder = Path(path)
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == folder else f"lies under a file ({parent})"
            raise InputError(f"{flag} {folder}: {where}, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the probe: may we create files here?
            pass
    except OSError as err:
        raise InputError(f"{flag} {folder}: cannot write there ({err.strerror or err})") from None
    return folder


def new_run_folder(task: str, root: Path = DEFAULT_ROOT) -> Path:
    """A new folder `root/<task>-<date>-<time>[-n]`, created here, that no other run has used."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = root / (f"{task}-{stamp}" if n == 1 else f"{task}-{stamp}-{n}")
        try:
            folder.mkdir()  # exclusive: fails if it exists, so two runs never share one
            return folder
        except FileExistsError:
            continue
    raise InputError(f"cannot find a free run folder name under {root}")


# ---------------------------------------------------------------------------- writing
def finite_or_none(x: Any) -> Any:
    """`x` with NaN and infinities as None, so the JSON stays strict."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x


def save_run(
    folder: Path,
    *,
    model_kind: str,
    task: str,
    model_config: dict[str, Any],
    train_config: TrainConfig,
    params: dict[str, np.ndarray],
    state: TrainState,
    status: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the run's checkpoint pair into `folder` (atomically); return the checkpoint's base path."""
    if status not in STATUSES:
        raise ValueError(f"save_run: unknown status {status!r}")
    arrays: dict[str, np.ndarray] = {f"param.{n}": np.asarray(a) for n, a in params.items()}
    arrays.update({f"optim.{k}": v for k, v in state.optimizer["arrays"].items()})
    arrays["losses"] = np.asarray(state.losses, dtype=np.float64)
    meta = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "model": model_kind,
        "task": task,
        "status": status,
        "step": state.step,
        "lr": state.lr,
        "model_config": model_config,
        "train_config": train_config.to_dict(),
        "rng_state": state.rng_state,
        "optimizer": state.optimizer["meta"],
        "evals": state.evals,
        "extra": dict(extra or {}),
    }
    return save_checkpoint(Path(folder) / CHECKPOINT, arrays, finite_or_none(meta))


# ---------------------------------------------------------------------------- reading
def find_run(path: str | Path, flag: str = "--resume") -> Path:
    """The folder of the run named by `path` (the folder, or either checkpoint file); InputError,
    naming the command's `flag` (--resume, --run, --teacher), if none."""
    path = Path(path)
    if path.is_file() and path.name in (f"{CHECKPOINT}.npz", f"{CHECKPOINT}.json"):
        path = path.parent
    if not path.exists():
        raise InputError(f"{flag} {path}: no such run folder")
    if not path.is_dir():
        raise InputError(f"{flag} {path}: is a file, not a run folder (give the folder that --out wrote)")
    if not holds_run(path):
        raise InputError(f"{flag} {path}: no run there (expected {path / CHECKPOINT}.json)")
    return path


def _need(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CheckpointError(f"{where}: the field {key!r} is missing or not a {getattr(kind, '__name__', kind)} ({value!r})")
    return value


def load_run(path: str | Path, flag: str = "--resume") -> SavedRun:
    """Read and check a run folder. CheckpointError (an InputError) naming the file and the problem.

    Only the metadata's form is checked here; the task checks the model config (and its size)
    before anything is built from it, and `Module.load_state_dict` checks names and shapes.
    """
    folder = find_run(path, flag)
    arrays, meta = load_checkpoint(folder / CHECKPOINT)  # never unpickles; damage -> CheckpointError
    where = str(checkpoint_paths(folder / CHECKPOINT)[1])
    if meta.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{where}: not a twograd run (format {meta.get('format')!r}, expected {RUN_FORMAT!r})")
    if meta.get("version") != RUN_VERSION:
        raise CheckpointError(f"{where}: unsupported run version {meta.get('version')!r} (this twograd reads {RUN_VERSION})")
    model_kind = _need(meta, "model", str, where)
    task = _need(meta, "task", str, where)
    status = _need(meta, "status", str, where)
    step = _need(meta, "step", int, where)
    if step < 0 or status not in STATUSES:
        raise CheckpointError(f"{where}: invalid step {step!r} or status {status!r}")
    try:
        train_config = TrainConfig.from_dict(_need(meta, "train_config", dict, where))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: invalid training settings: {err}") from None
    optimizer_meta = _need(meta, "optimizer", dict, where)
    if optimizer_meta.get("step") != step:
        raise CheckpointError(f"{where}: the optimizer's step {optimizer_meta.get('step')!r} differs from the run's step {step}")
    rng_state = _need(meta, "rng_state", dict, where)
    if rng_state.get("bit_generator") != "PCG64":
        raise CheckpointError(f"{where}: the random state is not a PCG64 state")
    evals = _need(meta, "evals", list, where)
    lr = meta.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
        raise CheckpointError(f"{where}: the recorded lr must be a finite number, got {lr!r}")
    losses = arrays.get("losses")
    npz = checkpoint_paths(folder / CHECKPOINT)[0]
    if losses is None or losses.ndim != 1 or losses.shape[0] != step or losses.dtype != np.float64:
        raise CheckpointError(f"{npz}: the loss history does not match the recorded step {step}")
    params = {k[len("param."):]: a for k, a in arrays.items() if k.startswith("param.")}
    bad = sorted(n for n, a in params.items() if a.dtype.kind != "f" or not np.isfinite(a).all())
    if bad:
        raise CheckpointError(f"{npz}: the saved parameters {', '.join(bad)} are not finite floats; the checkpoint is damaged")
    optimizer = {"meta": optimizer_meta, "arrays": {k[len("optim."):]: a for k, a in arrays.items() if k.startswith("optim.")}}
    state = TrainState(step=step, losses=losses.tolist(), evals=evals, rng_state=rng_state, optimizer=optimizer, lr=float(lr))
    extra = meta.get("extra")
    extra = extra if isinstance(extra, dict) else {}
    return SavedRun(folder, model_kind, task, _need(meta, "model_config", dict, where), train_config, params, state, status, extra)
