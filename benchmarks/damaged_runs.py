"""How fast, and in how much memory, a damaged run folder is refused (issue 22, items 1, 2 and 9).

    PYTHONPATH=. python benchmarks/damaged_runs.py

Each case is one `twograd sample --run DIR` in a child process; printed: its exit status, the
seconds it took and its peak memory (max RSS of the child, from resource.getrusage), and its line:

* a JSON naming /dev/zero as the training text (the issue: grew past 8.7 GB);
* a parameter replaced by 4 GiB of deflated zeros, every hash updated (the issue: 4.8 GB, 24-39 s);
* a .npy header declaring shape (10**12,), every hash updated (the issue: exit 1, "out of memory").
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.training.tasks import train  # noqa: E402
from nn.checkpoint import npz_name, record_digest  # noqa: E402

GIB = 2**30


def _rewrite(folder: Path, write_npz, arrays_record=None) -> None:
    record = json.loads((folder / "checkpoint.json").read_text())
    (folder / record["npz"]).unlink()
    tmp = folder / "new.npz"
    write_npz(tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    record["npz"], record["sha256"] = npz_name("checkpoint", digest), digest
    tmp.rename(folder / record["npz"])
    if arrays_record is not None:
        record["arrays"] = arrays_record
    record["record_sha256"] = record_digest(record)
    (folder / "checkpoint.json").write_text(json.dumps(record))


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    record = json.loads((folder / "checkpoint.json").read_text())
    with np.load(folder / record["npz"], allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def dev_zero(folder: Path) -> None:
    record = json.loads((folder / "checkpoint.json").read_text())
    record["meta"]["model_config"]["data"]["source"] = "/dev/zero"
    record["record_sha256"] = record_digest(record)
    (folder / "checkpoint.json").write_text(json.dumps(record))


def deflated_4gib(folder: Path) -> None:
    arrays = _arrays(folder)
    n = 4 * GIB // 8

    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for name, a in arrays.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    if name != "param.wte":
                        np.lib.format.write_array(member, a, allow_pickle=False)
                        continue
                    header = io.BytesIO()
                    np.lib.format.write_array_header_2_0(
                        header, {"descr": "<f8", "fortran_order": False, "shape": (n,)}
                    )
                    member.write(header.getvalue())
                    chunk = bytes(2**24)
                    for _ in range(4 * GIB // len(chunk)):
                        member.write(chunk)

    spec = {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()}
    spec["param.wte"] = {"shape": [n], "dtype": "<f8"}
    _rewrite(folder, write, spec)


def header_10_12(folder: Path) -> None:
    arrays = _arrays(folder)

    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                data = buf.getvalue()
                if name == "losses":
                    old, new = f"'shape': {a.shape}, }}".encode(), b"'shape': (1000000000000,), }"
                    data = data.replace(old + b" " * (len(new) - len(old)), new, 1)  # the header keeps its length
                zf.writestr(name + ".npy", data)

    _rewrite(folder, write)


def measure(folder: Path) -> tuple[int, float, float, str]:
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run([sys.executable, '-m', 'models.cli', 'sample', '--run', sys.argv[1]], capture_output=True, text=True)\n"
        "print(p.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(p.stderr.strip())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(folder)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    first, line = (done.stdout.split("\n", 1) + [""])[:2]
    code, seconds, rss_kb = first.split()
    return int(code), float(seconds), int(rss_kb) / 1024, line.strip()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "chars"
        train(
            "chars",
            model_options={"d_model": 16, "n_heads": 2, "n_layers": 1},
            train_options={"steps": 2},
            out=base,
            plots=False,
        )
        for name, damage in (
            ("JSON names /dev/zero", dev_zero),
            ("4 GiB of deflated zeros", deflated_4gib),
            ("header shape (10**12,)", header_10_12),
        ):
            folder = Path(tmp) / name.replace(" ", "_").replace("/", "_")
            shutil.copytree(base, folder)
            damage(folder)
            size = sum(p.stat().st_size for p in folder.iterdir())
            code, seconds, rss, line = measure(folder)
            print(f"{name:26s} folder {size / 2**20:6.1f} MiB  exit {code}  {seconds:5.2f} s  peak RSS {rss:5.0f} MB")
            print(f"    {line}")


if __name__ == "__main__":
    main()
