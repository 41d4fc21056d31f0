"""Run folders: the one place that writes and reads them, and the rules that keep a finished run.

A run folder holds one training run of any kind of model:

    DIR/checkpoint.<hash>.npz  parameters ("param.<name>"), optimizer buffers ("optim.<slot>.<name>"),
                               the loss of every step ("losses"); read with allow_pickle=False
    DIR/checkpoint.json        what was trained and how: the kind of model and its config, the task, the
                               TrainConfig, the step, the status, the generator's state, the evaluations,
                               the optimizer's step and hyperparameters; it names the npz and carries
                               its sha256 and its own (record_sha256)
    DIR/*.png                  pictures (loss curve, ...), written after the checkpoint

Both files are written atomically (nn.checkpoint), and a reader sees the old pair or the new one,
never one of each, even while a resume checkpoints every step. A folder is trusted only after a
check: the JSON against the schema (models/training/run_schema.py), the npz's headers against the
shapes that schema derives from the settings, then the values (finite weights, moments v >= 0).

Nothing a user made is lost:

* `prepare_out(DIR)` is the one --out rule of train, distill, align and tour: it refuses a folder
  that already holds a run (naming `--resume DIR`), another command's output, or files twograd
  did not write, offering `--overwrite`, and leaves every byte there as it was; an overwrite
  removes what twograd wrote there before (listed in DIR/.twograd-files.json) and only that.
  The tour owns its folder: it replaces its own earlier files without being asked;
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

from engine.atomic import atomic_write
from engine.errors import InputError
from engine.files import read_regular_file
from models.training.run_schema import RUN_FORMAT, RUN_VERSION, STATUSES, check_run_meta
from models.training.trainer import TrainConfig, TrainState
from nn.checkpoint import (
    MAX_RECORD_BYTES,
    CheckpointError,
    checkpoint_files,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)

CHECKPOINT = "checkpoint"  # DIR/checkpoint.<hash>.npz + DIR/checkpoint.json
DEFAULT_ROOT = Path("twograd-out") / "runs"  # where a run without --out is kept when interrupted


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
    return bool(checkpoint_files(Path(folder) / CHECKPOINT))


def describe_run(folder: Path) -> str:
    """A few words on the run in `folder` ("a finished run of moons at step 1000"), for messages."""
    try:
        raw = read_regular_file(checkpoint_paths(Path(folder) / CHECKPOINT)[1], MAX_RECORD_BYTES, "", "")
        meta = json.loads(raw)["meta"]
        return f"a {str(meta['status'])[:20]} run of {str(meta['task'])[:20]} at step {str(meta['step'])[:20]}"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "a run (its checkpoint could not be read)"


MANIFEST = ".twograd-files.json"  # DIR/MANIFEST: {"command": ..., "files": [...]}, what twograd wrote there
#: the most files a folder's check looks at (a folder with more is refused: it is not a run folder).
MAX_FOLDER_FILES = 10_000
#: names that are never the user's and never listed: the claim and the manifest (at any depth)
_BOOKKEEPING = {".twograd-writing", MANIFEST}


def _walk(folder: Path, skip_top: frozenset[str] = frozenset()) -> dict[str, tuple[int, int, int]]:
    """relative posix path -> (mtime_ns, size, inode) of every file under `folder` (symlinks not followed),
    bookkeeping files and the top-level names in `skip_top` left out; InputError past MAX_FOLDER_FILES."""
    found: dict[str, tuple[int, int, int]] = {}
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in skip_top]
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            if name in _BOOKKEEPING or (rel_root == Path(".") and name in skip_top):
                continue
            try:
                st = (Path(root) / name).lstat()
            except OSError:
                continue
            found[(rel_root / name).as_posix()] = (st.st_mtime_ns, st.st_size, st.st_ino)
            if len(found) > MAX_FOLDER_FILES:
                raise InputError(f"--out {folder}: holds more than {MAX_FOLDER_FILES:,} files; choose a new folder")
    return found


def read_manifest(folder: Path) -> tuple[str | None, list[str]]:
    """(command, files) of the folder's manifest: what a twograd command wrote there. A missing,
    unreadable or malformed manifest counts as none (its files are then the user's)."""
    try:
        raw = read_regular_file(Path(folder) / MANIFEST, MAX_RECORD_BYTES, "", "")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None, []
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("command"), str)
        or not isinstance(data.get("files"), list)
    ):
        return None, []
    files = [f for f in data["files"] if isinstance(f, str) and _inside(f)]
    return data["command"][:40], files


def _inside(rel: str) -> bool:
    """A manifest entry names a file inside the folder: relative, no '..', no empty part."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts) and "\x00" not in rel


@dataclass
class FolderContents:
    """What an --out folder holds: twograd's files (a run's checkpoint, a manifest's list) and the user's."""

    run: bool
    command: str | None  # the command whose manifest lists its files, if any
    ours: list[str]  # relative paths twograd wrote (listed in the manifest, or a checkpoint's files)
    users: list[str]  # everything else


def folder_contents(folder: Path, skip_top: frozenset[str] = frozenset()) -> FolderContents:
    command, listed = read_manifest(folder)
    present = _walk(folder, skip_top)
    checkpoint = {p.name for p in checkpoint_files(folder / CHECKPOINT)}
    ours = sorted(f for f in present if f in set(listed) or f in checkpoint)
    users = sorted(f for f in present if f not in set(ours))
    return FolderContents(holds_run(folder), command, ours, users)


def _few(names: list[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def prepare_out(
    out: str | Path,
    *,
    overwrite: bool = False,
    resumable: bool = True,
    command: str = "train",
    owns_its_files: bool = False,
    skip_top: frozenset[str] = frozenset(),
    replace_own: bool = True,
) -> Path:
    """Check (and create) the folder a command will write into, before any work. The one --out rule
    of train, distill, align and tour:

    * a folder that holds a run, another command's output, or files that twograd did not write
      (the user's) is refused (RunExists, exit 2), naming what it holds, unless `overwrite`;
    * with `overwrite`, what twograd wrote there before (the run's checkpoint, every file its
      manifest lists) is removed now, and only that: the user's files stay (a new file of the
      same name replaces one, which is what --overwrite asked for);
    * `owns_its_files` (the tour and its default folder): a folder holding only this command's
      own earlier output is replaced without --overwrite, so the tour runs again and again into
      twograd-out; files it did not write still stop it.

    `resumable` (train) names --resume in the refusal of a run. While the command runs it holds a
    claim on the folder; `release_folder` then lists what it wrote in the folder's manifest.
    `skip_top` names top-level entries that are not looked at (the tour's runs/, where interrupted
    runs without --out are kept).
    """
    if not str(out).strip():
        raise InputError("--out needs a folder name (an empty one would mean the current folder)")
    folder = Path(out)
    if folder.is_dir():  # refused before the folder is touched
        _check_contents(folder, folder_contents(folder, skip_top), overwrite, resumable, command, owns_its_files)
    folder = writable_folder(folder, "--out")
    claim_folder(folder, "--out", command)  # then looked at again: another command may have written there meanwhile
    try:
        contents = folder_contents(folder, skip_top)
        _check_contents(folder, contents, overwrite, resumable, command, owns_its_files)
    except BaseException:
        release_folder(folder, record=False)
        raise
    # a tour of some stages keeps the earlier tour's files (still listed, with what it adds)
    keep_own = owns_its_files and not replace_own and not overwrite and contents.command == command
    if not keep_own:
        for rel in contents.ours:  # only what twograd wrote: the old run's checkpoint and listed files
            path = folder / rel
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
        for path in checkpoint_files(folder / CHECKPOINT):
            path.unlink(missing_ok=True)
        for rel in sorted({str(Path(r).parent) for r in contents.ours if "/" in r}, key=len, reverse=True):
            _remove_empty(folder, Path(rel))
        (folder / MANIFEST).unlink(missing_ok=True)
    _snapshots[folder.resolve()] = _walk(folder, skip_top)  # what is there now is not this command's
    return folder


def _remove_empty(folder: Path, rel: Path) -> None:
    """Remove `folder/rel` and its parents inside `folder` while they are empty (bookkeeping aside)."""
    while rel != Path("."):
        path = folder / rel
        try:
            leftovers = [p for p in path.iterdir() if p.name not in _BOOKKEEPING]
            if leftovers:
                return
            for p in path.iterdir():
                p.unlink(missing_ok=True)
            path.rmdir()
        except OSError:
            return
        rel = rel.parent


def _check_contents(
    folder: Path, c: FolderContents, overwrite: bool, resumable: bool, command: str, owns_its_files: bool
) -> None:
    if overwrite:
        return
    if c.run:
        raise _holds_a_run(folder, resumable)
    if c.users:
        raise RunExists(
            f"--out {folder}: the folder already holds files that twograd did not write ({_few(c.users)}); choose "
            "another folder, or pass --overwrite to write beside them (a file of the same name is replaced)"
        )
    if c.ours and not (owns_its_files and c.command == command):
        raise RunExists(
            f"--out {folder}: the folder already holds the output of twograd {c.command or 'a command'} "
            f"({_few(c.ours)}); choose another folder, or pass --overwrite to replace it"
        )


def _holds_a_run(folder: Path, resumable: bool) -> RunExists:
    """The refusal of an --out folder that holds a run, with what to do instead."""
    hint = (
        f"continue it with --resume {folder}, or pass --overwrite to replace it"
        if resumable
        else "choose another folder, or pass --overwrite to replace it"
    )
    return RunExists(f"--out {folder}: the folder already holds {describe_run(folder)}; {hint}")


CLAIM = ".twograd-writing"  # DIR/CLAIM holds the id of the process writing a run into DIR
_claims: set[Path] = set()  # the claim files this process holds
_snapshots: dict[Path, dict[str, tuple[int, int, int]]] = {}  # folder -> its files when this process claimed it
_commands: dict[Path, str] = {}  # folder -> the command writing it (for its manifest)


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


def claim_folder(folder: Path, flag: str = "--out", command: str = "train") -> None:
    """Hold `folder` for this process while a run writes into it; RunExists when another live
    process holds it. The check that a folder holds no run happens before any file is written,
    so two commands started into one new folder would both pass it; the claim makes the second
    one fail at once instead. A claim left by a process that was killed is taken over.

    The claim file is made whole (written under another name, then hard-linked into place,
    which fails if the name exists), so another process never reads a half-written one."""
    path = Path(folder).resolve() / CLAIM
    _snapshots.setdefault(path.parent, _walk(path.parent))
    _commands.setdefault(path.parent, command)
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
                raise RunExists(
                    f"{flag} {folder}: another twograd process (pid {holder}) is writing a run there; "
                    f"wait for it or choose another folder (if none is running, delete {path})"
                ) from None
            path.unlink(missing_ok=True)  # left by a process that is gone
            continue
        except OSError:  # a file system without hard links: go on unclaimed rather than refuse
            return
        finally:
            os.unlink(tmp.name)
        _claims.add(path)
        return
    raise RunExists(f"{flag} {folder}: could not claim the folder (other processes keep taking it); choose another")


def release_folder(folder: Path, record: bool = True) -> None:
    """Give up this process's claim on `folder` (see `claim_folder`); nothing if it holds none.
    With `record`, first list in the folder's manifest every file this command wrote or changed
    there since it claimed it (with what the manifest listed before and is still there), so that
    a later --overwrite removes exactly those."""
    path = Path(folder).resolve() / CLAIM
    before = _snapshots.pop(path.parent, None)
    command = _commands.pop(path.parent, "train")
    if record and before is not None and path.parent.is_dir():
        try:
            write_manifest(path.parent, command, before)
        except (OSError, InputError):
            pass  # a manifest that cannot be written leaves the files counted as the user's: never lost
    if path in _claims:
        _claims.discard(path)
        if _holder(path) == os.getpid():
            path.unlink(missing_ok=True)


def write_manifest(folder: Path, command: str, before: dict[str, tuple[int, int, int]]) -> None:
    """DIR/MANIFEST: the files `command` wrote (new or changed since `before`) and those listed already."""
    now = _walk(folder)
    _, listed = read_manifest(folder)
    files = sorted({f for f in listed if f in now} | {f for f, sig in now.items() if before.get(f) != sig})
    if not files:  # nothing written (an interrupted distill, say): no manifest either, the folder stays as it was
        (folder / MANIFEST).unlink(missing_ok=True)
        return
    text = json.dumps({"command": command, "files": files}, indent=1) + "\n"
    atomic_write(folder / MANIFEST, text.encode("utf-8"))


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


def load_run(path: str | Path, flag: str = "--resume") -> SavedRun:
    """Read and check a run folder. CheckpointError (an InputError, exit 2) naming the file and the problem.

    The JSON is checked against the run schema (every field: type, range, known keys, and their
    agreement) before the npz is opened; each array's header is checked against the shape and
    dtype the settings need before its data is read; then the values: finite weights, finite
    moments, a second moment v >= 0, a finite loss history. Nothing is built from unchecked data.
    """
    folder = find_run(path, flag)
    where = str(checkpoint_paths(folder / CHECKPOINT)[1])
    arrays, meta = load_checkpoint(folder / CHECKPOINT, check=lambda record: check_run_meta(record["meta"], where))
    npz = checkpoint_paths(folder / CHECKPOINT)[0]
    step = meta["step"]
    losses = arrays["losses"]
    if not np.isfinite(losses).all():
        raise CheckpointError(f"{npz}: damaged checkpoint: the loss history holds NaN or infinite values")
    params = {k[len("param.") :]: a for k, a in arrays.items() if k.startswith("param.")}
    bad = sorted(n for n, a in params.items() if not np.isfinite(a).all())
    if bad:
        raise CheckpointError(f"{npz}: damaged checkpoint: the saved parameters {', '.join(bad)} are not finite floats")
    moments = {k[len("optim.") :]: a for k, a in arrays.items() if k.startswith("optim.")}
    for name, a in moments.items():
        if not np.isfinite(a).all() or (name.startswith("v.") and (a < 0).any()):
            what = (
                "NaN or infinite values" if not np.isfinite(a).all() else "negative values (a mean of squares is >= 0)"
            )
            raise CheckpointError(
                f"{npz}: damaged checkpoint: the optimizer's buffer {name!r} holds {what}; "
                "it cannot come from training (restore the folder from a copy, or train again)"
            )
    optimizer = {"meta": meta["optimizer"], "arrays": moments}
    state = TrainState(
        step=step,
        losses=losses.tolist(),
        evals=meta["evals"],
        rng_state=meta["rng_state"],
        optimizer=optimizer,
        lr=float(meta["lr"]),
    )
    train_config = TrainConfig.from_dict(meta["train_config"])  # checked by the schema
    return SavedRun(
        folder,
        meta["model"],
        meta["task"],
        meta["model_config"],
        train_config,
        params,
        state,
        meta["status"],
        dict(meta["extra"]),
    )
