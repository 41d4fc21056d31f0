"""Checkpoints: a `.npz` of named arrays plus a `.json` of metadata, written atomically.

    save_checkpoint("runs/tiny", arrays, meta)   ->  runs/tiny.npz  +  runs/tiny.json

The `.npz` is the standard numpy zip of `.npy` members (what `np.savez` writes), produced
with `np.lib.format.write_array(..., allow_pickle=False)` so an object array is refused
at save time, and an array may be named anything (np.savez reserves the names of its own
keyword arguments). The `.json` records

    {"format": "twograd-checkpoint", "version": 1, "npz": "tiny.npz",
     "sha256": <hash of the npz>, "arrays": {name: {"shape": [...], "dtype": "float64"}},
     "meta": <the caller's meta>}

Crash safety: each file is written by `engine.atomic.atomic_write` (a temporary file in
the same folder, fsynced, moved into place with `os.replace`, the folder fsynced; mode
0o666 less the umask, like any file the user writes). The npz goes first and the json
second, and the json carries the npz's sha256: a crash between the two leaves the old json
next to the new npz, and the hash mismatch is reported instead of loading a mismatched pair.

Loading never unpickles (`np.load(..., allow_pickle=False)`); every kind of damage
(missing file, truncated or non-zip npz, bad JSON, wrong format tag, hash mismatch, object
arrays, arrays that differ from the record) raises one `CheckpointError` naming the file
and what is wrong.
"""

# Shape legend: arrays are stored with their own shapes and dtypes, recorded in the json.

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.atomic import atomic_write, remove_stale_temps, sha256_file
from engine.errors import InputError

FORMAT = "twograd-checkpoint"
VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(InputError):  # the user named a bad file: exit 2, see engine/errors.py
    """A checkpoint file is missing, damaged, or not a twograd checkpoint."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(`<path>.npz`, `<path>.json`); a trailing `.npz` or `.json` on `path` is dropped first."""
    base = Path(path)
    if base.suffix in (".npz", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


# ------------------------------------------------------------------------------ writing
def _check_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"save_checkpoint: array names must be non-empty strings, got {name!r}")
        arr = np.asarray(a)
        if arr.dtype.hasobject:
            raise ValueError(
                f"save_checkpoint: array {name!r} has dtype object; only numeric arrays can be saved "
                "(object arrays would need code execution to load)"
            )
        out[name] = arr
    return out


def save_checkpoint(path: str | Path, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Write `<path>.npz` (the arrays) then `<path>.json` (meta and the npz's sha256), atomically.

    Returns the base path (without suffix), which `load_checkpoint` accepts, as it accepts
    either file's path. `meta` must be JSON-serializable; it is checked before anything is
    written.
    """
    npz_path, json_path = checkpoint_paths(path)
    checked = _check_arrays(arrays)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "npz": npz_path.name,
        "sha256": "",
        "arrays": {n: {"shape": list(a.shape), "dtype": a.dtype.str} for n, a in checked.items()},
        "meta": dict(meta or {}),
    }
    try:
        json.dumps(record, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_checkpoint: meta for {json_path} is not JSON-serializable: {err}") from None
    npz_path.parent.mkdir(parents=True, exist_ok=True)

    def write_npz(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in checked.items():
                with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)

    record["sha256"] = atomic_write(npz_path, write_npz)
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    atomic_write(json_path, text.encode("utf-8"))
    return npz_path.with_suffix("")


# ------------------------------------------------------------------------------ reading
def _read_record(json_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint metadata file is missing")
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{json_path}: not valid JSON (truncated or damaged?): {err}") from None
    except OSError as err:
        raise CheckpointError(f"{json_path}: cannot be read: {err}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        tag = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{json_path}: not a twograd checkpoint (format tag {tag!r}, expected {FORMAT!r})")
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CheckpointError(f"{json_path}: unsupported checkpoint version {version!r} (this twograd reads 1..{VERSION})")
    for key, kind in (("sha256", str), ("arrays", dict), ("meta", dict)):
        if not isinstance(record.get(key), kind):
            raise CheckpointError(f"{json_path}: field {key!r} is missing or not a {kind.__name__}")
    return record


def _read_arrays(npz_path: Path) -> dict[str, np.ndarray]:
    with open(npz_path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        raise CheckpointError(f"{npz_path}: not an npz (zip) archive")
    arrays: dict[str, np.ndarray] = {}
    name = ""
    try:
        with np.load(npz_path, allow_pickle=False) as archive:
            for name in archive.files:
                arrays[name] = archive[name]
    except ValueError as err:
        if "Object arrays" in str(err):  # numpy's refusal under allow_pickle=False
            raise CheckpointError(
                f"{npz_path}: array {name!r} holds Python objects (dtype object); refused, loading it could run code"
            ) from None
        raise CheckpointError(f"{npz_path}: array {name!r} cannot be read: {err}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise CheckpointError(f"{npz_path}: damaged npz archive (truncated?): {err}") from None
    return arrays


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by `save_checkpoint`: returns (arrays, meta).

    `path` is the base path or either file's path. Raises `CheckpointError` (a ValueError)
    naming the file and the problem on any damage; nothing is ever unpickled.
    """
    npz_path, json_path = checkpoint_paths(path)
    for written in (npz_path, json_path):  # what a save killed by kill -9 left beside them (only dead writers')
        remove_stale_temps(written)
    record = _read_record(json_path)
    if not npz_path.is_file():
        raise CheckpointError(f"{npz_path}: array file is missing (its metadata {json_path.name} exists)")
    digest = sha256_file(npz_path)
    if digest != record["sha256"]:
        raise CheckpointError(
            f"{npz_path}: sha256 {digest[:16]}... does not match {record['sha256'][:16]}... recorded in "
            f"{json_path.name}: the pair is mismatched (interrupted save, or a file replaced or damaged)"
        )
    arrays = _read_arrays(npz_path)
    expected = record["arrays"]
    if set(arrays) != set(expected):
        raise CheckpointError(
            f"{npz_path}: holds arrays {sorted(arrays)} but {json_path.name} records {sorted(expected)}"
        )
    for name, a in arrays.items():
        info = expected[name]
        if not isinstance(info, dict) or list(a.shape) != info.get("shape") or a.dtype.str != info.get("dtype"):
            raise CheckpointError(
                f"{npz_path}: array {name!r} is {a.dtype.str} {list(a.shape)}, {json_path.name} records {info!r}"
            )
    return arrays, record["meta"]
