"""Checkpoints: a `.npz` of named arrays plus a `.json` of metadata that names it, written atomically.

    save_checkpoint("runs/tiny", arrays, meta)   ->  runs/tiny.<sha256[:16]>.npz  +  runs/tiny.json

The `.npz` is the standard numpy zip of `.npy` members (what `np.savez` writes), stored without
compression and produced with `np.lib.format.write_array(..., allow_pickle=False)` so an object
array is refused at save time, and an array may be named anything (np.savez reserves the names
of its own keyword arguments). The `.json` records

    {"format": "twograd-checkpoint", "version": 2, "npz": "tiny.<sha256[:16]>.npz",
     "sha256": <hash of the npz>, "arrays": {name: {"shape": [...], "dtype": "<f8"}},
     "meta": <the caller's meta>, "record_sha256": <hash of everything above>}

`record_sha256` is the sha256 of the record's other fields in one canonical form (sorted keys,
no spaces): an edit of the JSON that does not also recompute it is damage, reported as such.
It is a check against accidents (a hand edit, a half-copied file), not a signature: whoever
can write the folder can recompute it, which is why every reader also checks what it reads
(`read_record` the record's form, `read_arrays` each array's header before its data, and
the run schema in models/training/run_schema.py the meaning).

Crash safety and readers: the npz's name carries its hash, so a save never replaces the
npz a JSON names. A save writes the new npz under its own name, then replaces the JSON (one
atomic rename: the only moment the checkpoint changes), then removes the older npz. A reader
reads the JSON, then opens the npz it names: the pair it sees always belongs together. If the
npz vanished between the two (a save finished in that instant), the JSON names a newer one,
and the reader starts again (`load_checkpoint`, at most READ_ATTEMPTS times). A crash between
the npz and the JSON leaves the old pair whole plus an orphan npz that the next save removes.
Version 1 checkpoints (`<name>.npz` beside a JSON without `record_sha256`) are still read: the
cost is one branch, and a run folder written before this change resumes; its next save is v2.

Loading never unpickles; every file is opened as a regular file of bounded size
(engine.files); every kind of damage (missing file, truncated or non-zip npz, bad JSON, wrong
format tag, hash mismatch, object arrays, arrays that differ from the record, a header declaring
a shape that differs from the expected one, a compressed member) raises one `CheckpointError`
naming the file and what is wrong, before anything large is allocated.
"""

# Shape legend: arrays are stored with their own shapes and dtypes, recorded in the json.

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.atomic import atomic_write, remove_stale_temps
from engine.errors import InputError
from engine.files import UnreadableFile, read_regular_file

FORMAT = "twograd-checkpoint"
VERSION = 2  # 2: the npz named by its hash, the record hashed too; 1 (npz "<name>.npz") still read
_ZIP_MAGIC = b"PK\x03\x04"
#: the largest checkpoint JSON read (a run's holds its settings and evaluations: kilobytes).
MAX_RECORD_BYTES = 16 * 2**20
#: the largest npz read: a GPT at the trainer's 50M-parameter cap with AdamW's two moments in
#: float64 is 1.2 GB; the arrays a record declares may add up to no more than this.
MAX_NPZ_BYTES = 2 * 2**30
#: nesting of lists and objects in the JSON beyond this is damage (a run's record nests 4 deep).
MAX_JSON_DEPTH = 32
#: readers start again at most this many times when a save replaces the checkpoint under them.
READ_ATTEMPTS = 20
#: bytes of a zip member beyond its .npy header and data: none (the data ends the member).
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(InputError):  # the user named a bad file: exit 2, see engine/errors.py
    """A checkpoint file is missing, damaged, or not a twograd checkpoint."""


def _base(path: str | Path) -> Path:
    base = Path(path)
    if base.suffix == ".json":
        return base.with_suffix("")
    if base.suffix == ".npz":
        base = base.with_suffix("")
        if _HEX16.fullmatch(base.suffix[1:]):  # <name>.<hash16>.npz
            base = base.with_suffix("")
    return base


def npz_name(base_name: str, digest: str) -> str:
    """The name of the npz whose sha256 is `digest`: `<name>.<digest[:16]>.npz`."""
    return f"{base_name}.{digest[:16]}.npz"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(the npz, `<path>.json`): the npz the JSON names when it can be read, `<path>.npz` otherwise.

    A trailing `.json`, `.npz` or `.<hash>.npz` on `path` is dropped first."""
    base = _base(path)
    json_path = base.with_name(base.name + ".json")
    try:
        named = json.loads(read_regular_file(json_path, MAX_RECORD_BYTES, "", "")).get("npz")
        if isinstance(named, str) and _valid_npz_name(base.name, named):
            return base.with_name(named), json_path
    except (OSError, ValueError, RecursionError, AttributeError):
        pass
    return base.with_name(base.name + ".npz"), json_path


def checkpoint_files(path: str | Path) -> list[Path]:
    """Every file of the checkpoint at `path` that exists: its JSON and each npz of its name
    (current, legacy `<name>.npz`, or orphaned by a crash), to be removed together."""
    base = _base(path)
    folder = base.parent
    out = [
        p
        for p in (base.with_name(base.name + ".json"), base.with_name(base.name + ".npz"))
        if p.exists() or p.is_symlink()
    ]
    if folder.is_dir():
        pattern = re.compile(re.escape(base.name) + r"\.([0-9a-f]{16}|pending)\.npz")
        out += sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
    return out


def _valid_npz_name(base_name: str, named: str) -> bool:
    if named == f"{base_name}.npz":
        return True
    head, _, rest = named.partition(f"{base_name}.")
    return head == "" and rest.endswith(".npz") and bool(_HEX16.fullmatch(rest[: -len(".npz")]))


def record_digest(record: Mapping[str, Any]) -> str:
    """sha256 of the record's fields other than `record_sha256`, as canonical JSON."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


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
    """Write `<path>.<hash>.npz` (the arrays), then `<path>.json` (meta, naming the npz), atomically.

    Returns the base path (without suffix), which `load_checkpoint` accepts, as it accepts
    either file's path. `meta` must be JSON-serializable; it is checked before anything is
    written. The npz the JSON named before is removed once the new JSON is in place.
    """
    base = _base(path)
    json_path = base.with_name(base.name + ".json")
    checked = _check_arrays(arrays)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "npz": "",
        "sha256": "",
        "arrays": {n: {"shape": list(a.shape), "dtype": a.dtype.str} for n, a in checked.items()},
        "meta": dict(meta or {}),
    }
    try:
        json.dumps(record, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_checkpoint: meta for {json_path} is not JSON-serializable: {err}") from None
    json_path.parent.mkdir(parents=True, exist_ok=True)

    def write_npz(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in checked.items():
                with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)

    pending = base.with_name(f"{base.name}.pending.npz")
    digest = atomic_write(pending, write_npz)
    npz_path = base.with_name(npz_name(base.name, digest))
    os.replace(pending, npz_path)  # the same folder: one rename, and the name now says the content
    record["npz"], record["sha256"] = npz_path.name, digest
    record["record_sha256"] = record_digest(record)
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    try:
        atomic_write(json_path, text.encode("utf-8"))  # the moment the checkpoint changes
    except BaseException:
        if not _names(json_path, npz_path.name):
            npz_path.unlink(missing_ok=True)
        raise
    for old in checkpoint_files(base):  # the npz files no JSON names any more
        if old.suffix == ".npz" and old.name != npz_path.name:
            old.unlink(missing_ok=True)
    return base


def _names(json_path: Path, name: str) -> bool:
    try:
        return bool(json.loads(json_path.read_bytes()).get("npz") == name)
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


# ------------------------------------------------------------------------------ reading
def _depth(x: Any, limit: int) -> int:
    """How deeply lists and objects nest in `x` (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(x, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((v, d + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _spec_bytes(spec: Any) -> int | None:
    """Bytes of the array a record's {"shape", "dtype"} declares, or None when the entry is malformed."""
    if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
        return None
    shape, dtype = spec["shape"], spec["dtype"]
    if not isinstance(shape, list) or len(shape) > 8 or not isinstance(dtype, str) or len(dtype) > 8:
        return None
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 2**40 for n in shape):
        return None
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        return None
    if dt.hasobject or dt.kind not in "biuf" or dt.str != dtype:
        return None
    size = dt.itemsize
    for n in shape:
        size *= n
    return size


def read_record(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON record, with its form checked (not its meta's meaning: the caller's).

    The file must be a regular file of at most MAX_RECORD_BYTES; the record's own hash must
    match (version 2); the arrays it declares must add up to at most MAX_NPZ_BYTES."""
    json_path = checkpoint_paths(path)[1] if Path(path).suffix != ".json" else Path(path)
    try:
        raw = read_regular_file(json_path, MAX_RECORD_BYTES, "", "it is not a checkpoint twograd wrote")
    except FileNotFoundError:
        raise CheckpointError(f"{json_path}: checkpoint metadata file is missing") from None
    except UnreadableFile as err:
        raise CheckpointError(f"damaged checkpoint: {str(err).strip()}") from None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{json_path}: not valid JSON (truncated or damaged?): {err}") from None
    except RecursionError:
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: the JSON nests deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        tag = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(f"{json_path}: not a twograd checkpoint (format tag {tag!r}, expected {FORMAT!r})")
    if _depth(record, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{json_path}: damaged checkpoint: the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{json_path}: unsupported checkpoint version {version!r} (this twograd reads 1..{VERSION})"
        )
    known = {"format", "version", "npz", "sha256", "arrays", "meta"} | ({"record_sha256"} if version >= 2 else set())
    if set(record) != known:
        extra, missing = sorted(set(record) - known), sorted(known - set(record))
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: "
            + "; ".join(
                ([f"unknown fields {extra}"] if extra else []) + ([f"missing fields {missing}"] if missing else [])
            )
        )
    if version >= 2:
        stored = record["record_sha256"]
        if not isinstance(stored, str) or stored != record_digest(record):
            raise CheckpointError(
                f"{json_path}: damaged checkpoint: its content does not match its record_sha256 "
                "(edited by hand, or damaged); restore the folder from a copy or train again"
            )
    for key, kind in (("npz", str), ("sha256", str), ("arrays", dict), ("meta", dict)):
        if not isinstance(record.get(key), kind):
            raise CheckpointError(f"{json_path}: field {key!r} is missing or not a {kind.__name__}")
    base_name = json_path.name[: -len(".json")]
    if not _HEX64.fullmatch(record["sha256"]):
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: sha256 {record['sha256'][:80]!r} is not a sha256 digest"
        )
    legacy = f"{base_name}.npz"
    if not _valid_npz_name(base_name, record["npz"]) or (version >= 2) == (record["npz"] == legacy):
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: it names the array file {record['npz'][:80]!r}, expected "
            f"{base_name + '.<16 hex digits>.npz' if version >= 2 else legacy} (a file beside it, never a path)"
        )
    total = 0
    for name, spec in record["arrays"].items():
        size = _spec_bytes(spec)
        if size is None and isinstance(spec, dict) and spec.get("dtype") in ("|O", "O", "object"):
            raise CheckpointError(
                f"{json_path}: array {name[:80]!r} is recorded as holding Python objects (dtype object); "
                "refused, loading it could run code"
            )
        if size is None:
            raise CheckpointError(
                f"{json_path}: damaged checkpoint: array {name[:80]!r} is recorded as {str(spec)[:120]}, "
                'not {"shape": [whole numbers], "dtype": a numeric dtype}'
            )
        total += size
    if total > MAX_NPZ_BYTES:
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: its arrays would take {total:,} bytes, more than the "
            f"{MAX_NPZ_BYTES:,} a checkpoint may hold"
        )
    return record


def _member_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, npz_path: Path, name: str
) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one .npy member, read from its header alone."""
    with zf.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unknown .npy version {version}")
        except (ValueError, OSError, EOFError, zlib.error) as err:
            raise CheckpointError(
                f"{npz_path}: damaged checkpoint: array {name!r} has no readable .npy header ({err})"
            ) from None
        return tuple(shape), dtype, fp.tell()


def read_arrays(
    json_path: Path, record: Mapping[str, Any], expected: Mapping[str, tuple[tuple[int, ...], str]] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of the npz `record` names (beside `json_path`), each checked before it is read.

    `expected` (name -> (shape, dtype str)) is what the caller's schema derived from the meta;
    None takes the record's own `arrays`. The npz must be a regular file no larger than those
    arrays need, hash to the record's sha256, hold exactly those members, stored (uncompressed),
    and each member's .npy header must declare exactly the expected shape and dtype: a header
    declaring (10**12,) or a 4 GiB member is refused here, before its data is read.
    FileNotFoundError (unwrapped) when the npz is missing: `load_checkpoint` then looks again.
    """
    npz_path = json_path.with_name(record["npz"])
    declared = {n: (tuple(s["shape"]), s["dtype"]) for n, s in record["arrays"].items()}
    want = dict(expected) if expected is not None else declared
    if expected is not None and declared != {n: (tuple(s), d) for n, (s, d) in want.items()}:
        raise CheckpointError(
            f"{json_path}: damaged checkpoint: the arrays it records differ from what its settings "
            f"need ({_first_difference(declared, want)})"
        )
    need = sum(_spec_bytes({"shape": list(s), "dtype": d}) or 0 for s, d in want.values())
    # a member: 30 + name + 20 (zip64) local header, 46 + name + 28 central entry, a .npy header of <= 64 KiB
    cap = need + sum(200 + 2 * len(n) + 65_536 for n in want) + 1024
    try:
        fd = os.open(npz_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise CheckpointError(f"{npz_path}: cannot be read ({err.strerror or err})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{npz_path}: damaged checkpoint: not a regular file; refused")
        if info.st_size > cap:
            raise CheckpointError(
                f"{npz_path}: damaged checkpoint: {info.st_size:,} bytes, more than the {cap:,} its "
                "recorded arrays need"
            )
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
        if digest.hexdigest() != record["sha256"]:
            raise CheckpointError(
                f"{npz_path}: sha256 {digest.hexdigest()[:16]}... does not match {record['sha256'][:16]}... recorded in "
                f"{json_path.name}: the pair is mismatched (interrupted save, or a file replaced or damaged)"
            )
        f.seek(0)
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise CheckpointError(f"{npz_path}: not an npz (zip) archive")
        f.seek(0)
        return _read_members(f, npz_path, json_path, want)


def _read_members(
    f: IO[bytes], npz_path: Path, json_path: Path, want: Mapping[str, tuple[tuple[int, ...], str]]
) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    name = ""
    try:
        with zipfile.ZipFile(f) as zf:
            infos = {
                i.filename[: -len(".npy")] if i.filename.endswith(".npy") else i.filename: i for i in zf.infolist()
            }
            if set(infos) != set(want) or len(infos) != len(zf.infolist()):
                raise CheckpointError(
                    f"{npz_path}: holds arrays {sorted(infos)[:20]} but {json_path.name} records {sorted(want)[:20]}"
                )
            for name, info in infos.items():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError(
                        f"{npz_path}: damaged checkpoint: array {name!r} is compressed "
                        "(twograd stores its arrays uncompressed); refused without inflating it"
                    )
                shape, dtype, header = _member_header(zf, info, npz_path, name)
                if dtype.hasobject:
                    raise CheckpointError(
                        f"{npz_path}: array {name!r} holds Python objects (dtype object); refused, "
                        "loading it could run code"
                    )
                exp_shape, exp_dtype = want[name]
                if shape != tuple(exp_shape) or dtype.str != exp_dtype:
                    raise CheckpointError(
                        f"{npz_path}: damaged checkpoint: array {name!r} is {dtype.str} {list(shape)}, "
                        f"{json_path.name} records {exp_dtype} {list(exp_shape)}"
                    )
                nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
                if info.file_size != header + nbytes:
                    raise CheckpointError(
                        f"{npz_path}: damaged checkpoint: array {name!r} takes {info.file_size:,} bytes, "
                        f"its header says {header + nbytes:,}"
                    )
                with zf.open(info) as fp:
                    arrays[name] = np.lib.format.read_array(fp, allow_pickle=False)
    except CheckpointError:
        raise
    except ValueError as err:
        if "Object arrays" in str(err):  # numpy's refusal under allow_pickle=False
            raise CheckpointError(
                f"{npz_path}: array {name!r} holds Python objects (dtype object); refused, loading it could run code"
            ) from None
        raise CheckpointError(f"{npz_path}: damaged checkpoint: array {name!r} cannot be read: {err}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise CheckpointError(f"{npz_path}: damaged checkpoint: a damaged npz archive (truncated?): {err}") from None
    return arrays


def _first_difference(declared: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    for name in sorted(set(declared) | set(want)):
        if name not in declared:
            return f"{name!r} is missing"
        if name not in want:
            return f"{name[:80]!r} is not one of them"
        if declared[name] != tuple(want[name]) and (tuple(declared[name][0]), declared[name][1]) != (
            tuple(want[name][0]),
            want[name][1],
        ):
            return f"{name!r} is {declared[name][1]} {list(declared[name][0])}, expected {want[name][1]} {list(want[name][0])}"
    return "the same names and shapes"


def load_checkpoint(
    path: str | Path, check: Callable[[dict[str, Any]], Mapping[str, tuple[tuple[int, ...], str]] | None] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by `save_checkpoint`: returns (arrays, meta).

    `path` is the base path or either file's path. `check(record)`, if given, validates the
    record's meta (raising CheckpointError) and returns the arrays it expects (name -> (shape,
    dtype str)), which the npz's headers must then match before anything is read. Raises
    `CheckpointError` (a ValueError) naming the file and the problem on any damage; nothing is
    ever unpickled. A save that replaces the checkpoint meanwhile makes it read the new one.
    """
    json_path = checkpoint_paths(path)[1]
    base = json_path.with_suffix("")
    # what a save killed by kill -9 left (of this format's writes, and of version 1's <name>.npz)
    for written in (base.with_name(f"{base.name}.pending.npz"), base.with_name(f"{base.name}.npz"), json_path):
        remove_stale_temps(written)  # (only dead writers' temporary files: a live one holds its lock)
    last = None
    for _ in range(READ_ATTEMPTS):
        record = read_record(json_path)
        expected = check(record) if check is not None else None
        try:
            return read_arrays(json_path, record, expected), record["meta"]
        except FileNotFoundError:
            if record == last or not _names_other(json_path, record["npz"]):
                raise CheckpointError(
                    f"{json_path.with_name(record['npz'])}: array file is missing "
                    f"(its metadata {json_path.name} exists)"
                ) from None
            last = record  # a save replaced the checkpoint since the JSON was read: read the new one
    raise CheckpointError(f"{json_path}: the checkpoint was replaced {READ_ATTEMPTS} times while being read; try again")


def _names_other(json_path: Path, name: str) -> bool:
    """Whether the JSON now names another npz than `name` (a save replaced it meanwhile)."""
    try:
        return json.loads(read_regular_file(json_path, MAX_RECORD_BYTES, "", "")).get("npz") != name
    except (OSError, ValueError, RecursionError, AttributeError):
        return False
