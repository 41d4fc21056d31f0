"""Helpers that damage a run folder the way a person (or a forger) would: edit checkpoint.json with or
without recomputing its hashes, rewrite the npz with other arrays, and run a command on the result.
Shared by test_run_trust.py and test_fuzz_runs.py."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import traceback
import zipfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

try:
    from nn.checkpoint import npz_name, record_digest
except ImportError:  # a checkpoint of version 1 (to see a test fail before the fix): one npz name, no record hash

    def npz_name(base_name: str, digest: str) -> str:
        return f"{base_name}.npz"

    def record_digest(record: dict[str, Any]) -> str:
        return ""


def record_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "checkpoint.json").read_text())


def write_record(folder: Path, record: dict[str, Any], rehash: bool = True) -> None:
    """Write `record` as checkpoint.json; with `rehash`, its record_sha256 is recomputed first."""
    if rehash and "record_sha256" in record:
        record["record_sha256"] = record_digest(record)
    (folder / "checkpoint.json").write_text(json.dumps(record))


def edit_meta(folder: Path, edit: Callable[[dict[str, Any]], Any], rehash: bool = True) -> None:
    record = record_of(folder)
    edit(record["meta"])
    write_record(folder, record, rehash)


def read_npz(folder: Path) -> dict[str, np.ndarray]:
    record = record_of(folder)
    with np.load(folder / record["npz"], allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(
    arrays: dict[str, np.ndarray], compression: int = zipfile.ZIP_STORED, raw: dict[str, bytes] | None = None
) -> bytes:
    """An npz of `arrays`, as twograd writes one (or with another compression); `raw` gives the
    exact bytes of some members (a forged .npy header, say), with their CRC computed as a forger would."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression, allowZip64=True) as zf:
        for name, a in arrays.items():
            if raw and name in raw:
                zf.writestr(name + ".npy", raw[name])
                continue
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def replace_npz(folder: Path, data: bytes, arrays_record: dict[str, Any] | None = None) -> None:
    """Put `data` in as the run's npz, with every hash (and, if given, the array record) updated to match:
    what a forger would do, so that only the reader's own checks stand in the way."""
    record = record_of(folder)
    (folder / record["npz"]).unlink(missing_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    record["npz"], record["sha256"] = npz_name("checkpoint", digest), digest
    (folder / record["npz"]).write_bytes(data)
    if arrays_record is not None:
        record["arrays"] = arrays_record
    write_record(folder, record)


def rewrite_arrays(folder: Path, change: Callable[[dict[str, np.ndarray]], Any]) -> None:
    """Change the npz's arrays in memory and write them back, every record updated to match."""
    arrays = read_npz(folder)
    change(arrays)
    replace_npz(
        folder,
        npz_bytes(arrays),
        {n: {"shape": list(np.asarray(a).shape), "dtype": np.asarray(a).dtype.str} for n, a in arrays.items()},
    )


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def run_cli(argv: list[str]) -> tuple[int | None, str, str, str]:
    """(exit status, stdout, stderr, traceback) of `twograd ARGV` in this process; a traceback is
    any exception escaping `main` (a bug), with the status None."""
    from models.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse's --help and --version
        return int(exc.code or 0), out.getvalue(), err.getvalue(), ""
    except BaseException:
        return None, out.getvalue(), err.getvalue(), traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), ""
