"""Write a file atomically: readers see the old file or the new one, never half of one.

    >>> from engine.atomic import atomic_write
    >>> digest = atomic_write("runs/loss.png", png_bytes)                 # bytes
    >>> digest = atomic_write("runs/ck.npz", lambda f: write_zip(f))      # or a writer callback

Steps (POSIX; Windows gets the same minus the folder fsync):

    1. create `.<name>.<random>.tmp` in the target's folder with mode 0o666 and O_EXCL:
       the kernel applies the umask, so the result is 0o666 & ~umask (0644 under umask 022,
       0600 under 077) like any file the user writes. Reading the umask to compute that
       ourselves would mean setting it, which races with other threads.
    2. write, flush, fsync (the data is on disk before the name points to it);
    3. `os.replace(temp, target)`: one atomic rename, over an existing file too;
    4. fsync the folder, so the rename itself survives a crash.

On any failure (including Ctrl-C) the temporary file is removed and an existing target is
left byte for byte as it was. A writer killed outright (kill -9, a power cut) cannot remove it:
while a temporary file is written it is held under an exclusive `flock`, which the kernel drops
when its process dies, so the next write of the same target (or `remove_stale_temps`, which a
loader calls) removes every temporary file of that target whose lock is free: a leftover, never
a file another live writer is still writing. (Without `fcntl`, on Windows, nothing is removed.)
An OSError is re-raised as the same OSError subclass (with the
same errno and strerror) naming the target: the temporary file's name, which the user never
chose and cannot act on, appears in no message.

Standard library only, like the rest of `engine`.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock, so a leftover temporary file cannot be told from a live one
    fcntl = None  # type: ignore[assignment]

#: bytes read at a time when hashing what was written
HASH_CHUNK_BYTES = 1 << 20
#: random names tried before giving up (a collision of 64 random bits is not expected once)
TEMP_NAME_ATTEMPTS = 100

Payload = bytes | bytearray | memoryview | Callable[[IO[bytes]], None]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of the file at `path`, read in chunks of HASH_CHUNK_BYTES."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; not every platform lets a folder be opened (Windows), so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(target_name: str) -> str:
    return f".{target_name}.{secrets.token_hex(8)}.tmp"


def _temp_pattern(target_name: str) -> re.Pattern[str]:
    """The names `_temp_name` gives for `target_name`, and no others."""
    return re.compile(re.escape(f".{target_name}.") + r"[0-9a-f]{16}\.tmp")


def _lock(fd: int) -> bool:
    """Take the exclusive flock on `fd` without waiting; True if taken (always, without fcntl)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Does `path` still name the file open as `fd` (not removed, not replaced)?"""
    try:
        st, here = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file next to `target`, locked while it is written: (fd, path).

    Mode 0o666 lets the kernel apply the umask; O_EXCL refuses an existing file or symlink.
    Between the open and the lock a cleaner may see the file unlocked and remove it: the name
    is then checked to still be this file, and a new one is taken if not.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(TEMP_NAME_ATTEMPTS):
        tmp = target.with_name(_temp_name(target.name))
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if _lock(fd) and _same_file(fd, tmp):
            return fd, tmp
        os.close(fd)  # a cleaner took it first (and removed it, or is about to): try another name
    raise FileExistsError(
        errno_codes.EEXIST, f"no free temporary name in {target.parent} after {TEMP_NAME_ATTEMPTS} tries", str(target)
    )


def _naming_target(err: OSError, target: Path, tmp: Path | None) -> OSError:
    """`err` again (same class, errno and strerror) but naming `target`, never the temp file."""
    cls = type(err)
    if err.errno is not None and err.strerror:
        args: tuple[object, ...] = (
            err.errno,
            err.strerror.replace(str(tmp), str(target)) if tmp else err.strerror,
            str(target),
        )
    else:
        text = str(err).replace(str(tmp), str(target)) if tmp else str(err)
        args = (f"{target}: {text}",)
    try:
        return cls(*args)
    except TypeError:  # a subclass with its own constructor
        return OSError(*args)


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed `atomic_write` of `path` left beside it; return them.

    Only files named as `atomic_write` names them for this target (`.<name>.<16 hex>.tmp`) and
    whose lock is free are removed: a writer that is alive holds its lock, so its file stays.
    Anything that cannot be removed (a read-only folder, a file gone meanwhile) is left quietly:
    a leftover costs disk space, never correctness. Without fcntl (Windows) nothing is removed.
    """
    target = Path(path)
    if fcntl is None:
        return []
    pattern = _temp_pattern(target.name)
    removed: list[Path] = []
    try:
        names = [e.name for e in os.scandir(target.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for name in names:
        stale = target.parent / name
        try:
            fd = os.open(stale, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd) and _same_file(fd, stale):
                stale.unlink()
                removed.append(stale)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def atomic_write(path: str | os.PathLike[str], payload: Payload) -> str:
    """Write `payload` to `path` atomically; return the hex sha256 of the bytes written.

    Args:
        path: the target file; its folder must exist.
        payload: the bytes, or a callback `write(f)` given the open binary file (for writers
            that stream, like a zip archive).

    Raises:
        OSError (the original subclass: PermissionError, FileNotFoundError, ...) naming `path`.
        Whatever the callback raises, after the temporary file is removed.
    """
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        what = "does not exist (create it first)" if not parent.exists() else "is not a folder"
        cls = FileNotFoundError if not parent.exists() else NotADirectoryError
        code = errno_codes.ENOENT if not parent.exists() else errno_codes.ENOTDIR
        raise cls(code, f"the folder {parent} {what}", str(target))
    remove_stale_temps(target)  # what a writer killed by kill -9 left of this target
    tmp: Path | None = None
    lock_fd: int | None = None
    try:
        fd, tmp = _create_temp(target)
        # The lock lives with the open file, not the descriptor: a duplicate keeps it held after
        # the file object is closed, until the rename. A cleaner (remove_stale_temps, which a reader's
        # load_checkpoint runs too) that saw the file unlocked between close and rename removed it,
        # and the save failed with FileNotFoundError (tests/models/training/test_run_race.py).
        lock_fd = os.dup(fd)
        with os.fdopen(fd, "wb") as f:
            if callable(payload):
                payload(f)
            else:
                f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # Hash the file, not the payload: a callback's bytes are only known on disk.
        digest = sha256_file(tmp)
        os.replace(tmp, target)
    except BaseException as err:
        if lock_fd is not None:
            os.close(lock_fd)
            lock_fd = None
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass  # already gone (replaced) or the folder became unwritable: nothing more to do
        if isinstance(err, OSError):
            raise _naming_target(err, target, tmp) from None
        raise
    os.close(lock_fd)  # the file is in place under its own name: nothing of ours is a leftover now
    _fsync_dir(parent)
    return digest
