"""engine.atomic.atomic_write: the umask decides the mode, a failure leaves the old file and no
temporary file, and no message names the temporary file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine.atomic as atomic
from engine.atomic import atomic_write, sha256_file

OLD = b"old contents\n"
NEW = b"new contents, longer than the old\n"
ROOT = Path(__file__).resolve().parents[2]
#: generous: a fresh interpreter importing engine.atomic takes well under a second
IMPORT_TIMEOUT_SECONDS = 120


def _leftovers(folder: Path) -> list[str]:
    """Names in `folder` that look like our temporary files."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def umask():
    """A setter for the process umask; the old umask is put back after the test."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_is_0666_less_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    fresh = tmp_path / "fresh.bin"
    atomic_write(fresh, NEW)
    assert fresh.stat().st_mode & 0o777 == mode
    # Replacing a file gives the new file the umask's mode too, not the old file's.
    existing = tmp_path / "existing.bin"
    existing.write_bytes(OLD)
    existing.chmod(0o640)
    atomic_write(existing, NEW)
    assert existing.stat().st_mode & 0o777 == mode
    assert _leftovers(tmp_path) == []


def test_returns_the_sha256_of_what_was_written(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    assert atomic_write(target, NEW) == hashlib.sha256(NEW).hexdigest()
    assert target.read_bytes() == NEW

    def write_in_pieces(f) -> None:
        f.write(b"first,")
        f.write(b"second")

    digest = atomic_write(str(target), write_in_pieces)  # a str path works as well
    assert target.read_bytes() == b"first,second"
    assert digest == hashlib.sha256(b"first,second").hexdigest() == sha256_file(target)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch, where: str) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(OLD)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if where == "write":

        def payload(f) -> None:
            f.write(NEW[:5])  # half written when the disk fills
            fail()
    else:
        payload = NEW
        monkeypatch.setattr(os, where, fail)
    with pytest.raises(OSError, match="No space left on device") as info:
        atomic_write(target, payload)
    monkeypatch.undo()
    assert info.value.errno == 28
    assert target.read_bytes() == OLD  # byte for byte
    assert _leftovers(tmp_path) == []


def test_interrupt_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(OLD)

    def interrupted(f) -> None:
        f.write(NEW[:5])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_callback_errors_pass_through_unchanged(tmp_path: Path) -> None:
    def refuses(f) -> None:
        raise ValueError("writer: refused")

    with pytest.raises(ValueError, match="^writer: refused$"):
        atomic_write(tmp_path / "x.bin", refuses)
    assert list(tmp_path.iterdir()) == []


def test_message_names_the_target_not_the_temp_file(tmp_path: Path, monkeypatch) -> None:
    # A real failure whose OSError names both files: os.replace onto a folder.
    target = tmp_path / "is_a_folder"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:  # the same OSError subclass as the original
        atomic_write(target, NEW)
    text = str(info.value)
    assert str(target) in text and ".tmp" not in text and info.value.filename == str(target)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained temp name
    assert _leftovers(tmp_path) == []

    # An OSError without an errno that quotes the temp file's name in its text.
    plain = tmp_path / "plain.bin"

    def quoting_replace(src, dst):
        raise OSError(f"cannot move {src}")

    monkeypatch.setattr(os, "replace", quoting_replace)
    with pytest.raises(OSError) as info:
        atomic_write(plain, NEW)
    assert str(plain) in str(info.value) and ".tmp" not in str(info.value)


def test_missing_or_wrong_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        atomic_write(tmp_path / "no" / "such" / "x.bin", NEW)
    assert info.value.filename == str(tmp_path / "no" / "such" / "x.bin")
    a_file = tmp_path / "file"
    a_file.write_bytes(OLD)
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        atomic_write(a_file / "x.bin", NEW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_taken_temp_names_are_skipped(tmp_path: Path, monkeypatch) -> None:
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".t.bin.taken.tmp").write_bytes(b"someone else's")
    atomic_write(tmp_path / "t.bin", NEW)
    assert (tmp_path / "t.bin").read_bytes() == NEW
    assert (tmp_path / ".t.bin.taken.tmp").read_bytes() == b"someone else's"  # never touched


def test_imports_only_the_standard_library() -> None:
    probe = "import sys, engine.atomic; print(sorted(m for m in ('numpy', 'matplotlib') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
        check=True,
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ kill -9 leftovers
#: generous: the child only imports engine.atomic and writes a few bytes before it says so
CHILD_READY_TIMEOUT_SECONDS = 120
#: a child that starts writing `target`, says "writing" once its temporary file exists, then waits forever
_HANGING_WRITER = """
import sys, time
from engine.atomic import atomic_write
def write(f):
    f.write(b"half of a checkpoint")
    f.flush()
    print("writing", flush=True)
    sys.stdin.read()  # until the parent kills us: EOF never comes
atomic_write(sys.argv[1], write)
"""


def _start_hanging_writer(target: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", _HANGING_WRITER, str(target)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()  # the event: its temporary file exists and is locked
    assert line == "writing\n", line
    return child


def test_a_temp_left_by_kill_9_is_removed_at_the_next_write_but_a_live_writers_is_not(tmp_path: Path) -> None:
    """kill -9 during a save left `.checkpoint.npz.<hex>.tmp` that nothing ever removed."""
    target = tmp_path / "checkpoint.npz"
    target.write_bytes(OLD)
    child = _start_hanging_writer(target)
    try:
        (leftover,) = _leftovers(tmp_path)
        assert atomic.remove_stale_temps(target) == []  # its writer is alive: its file is not a leftover
        assert _leftovers(tmp_path) == [leftover]
    finally:
        child.kill()
        child.wait(timeout=CHILD_READY_TIMEOUT_SECONDS)
        child.stdin.close()
        child.stdout.close()
    assert _leftovers(tmp_path) == [leftover] and target.read_bytes() == OLD  # what kill -9 leaves
    (tmp_path / ".other.npz.0123456789abcdef.tmp").write_bytes(b"another target's")
    atomic_write(target, NEW)
    assert target.read_bytes() == NEW
    assert _leftovers(tmp_path) == [".other.npz.0123456789abcdef.tmp"]  # only this target's leftovers go


def test_a_temp_left_by_kill_9_is_removed_when_the_checkpoint_is_loaded(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    from nn.checkpoint import load_checkpoint, save_checkpoint

    base = save_checkpoint(tmp_path / "checkpoint", {"w": [1.0, 2.0]}, {"step": 1})
    child = _start_hanging_writer(tmp_path / "checkpoint.npz")
    child.kill()
    child.wait(timeout=CHILD_READY_TIMEOUT_SECONDS)
    child.stdin.close()
    child.stdout.close()
    assert len(_leftovers(tmp_path)) == 1
    arrays, meta = load_checkpoint(base)
    assert meta == {"step": 1} and list(arrays["w"]) == [1.0, 2.0]
    assert _leftovers(tmp_path) == []


def test_a_cleaner_that_removes_a_fresh_temp_before_it_is_locked_costs_a_retry_not_the_write(
    tmp_path: Path, monkeypatch
) -> None:
    """The window between open and flock: a cleaner may remove the file; the writer takes another name."""
    real_lock = atomic._lock
    calls = []

    def lock_after_a_cleaner(fd: int) -> bool:
        if not calls:  # the first temporary file vanishes under us, as a cleaner would remove it
            (only,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            only.unlink()
        calls.append(fd)
        return real_lock(fd)

    monkeypatch.setattr(atomic, "_lock", lock_after_a_cleaner)
    atomic_write(tmp_path / "t.bin", NEW)
    assert len(calls) == 2 and (tmp_path / "t.bin").read_bytes() == NEW and _leftovers(tmp_path) == []
