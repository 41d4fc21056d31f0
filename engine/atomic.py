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
left byte for byte as it was. An OSError is re-raised as the same OSError subclass (with the
same errno and strerror) naming the target: the temporary file's name, which the user never
chose and cannot act on, appears in no message.

Standard library only, like the rest of `engine`.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file next to `target`: (fd, path).

    Mode 0o666 lets the kernel apply the umask; O_EXCL refuses an existing file or symlink.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(TEMP_NAME_ATTEMPTS):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno_codes.EEXIST, f"no free temporary name in {target.parent} after {TEMP_NAME_ATTEMPTS} tries", str(target))


def _naming_target(err: OSError, target: Path, tmp: Path | None) -> OSError:
    """`err` again (same class, errno and strerror) but naming `target`, never the temp file."""
    cls = type(err)
    if err.errno is not None and err.strerror:
        args: tuple[object, ...] = (err.errno, err.strerror.replace(str(tmp), str(target)) if tmp else err.strerror, str(target))
    else:
        text = str(err).replace(str(tmp), str(target)) if tmp else str(err)
        args = (f"{target}: {text}",)
    try:
        return cls(*args)
    except TypeError:  # a subclass with its own constructor
        return OSError(*args)


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
    tmp: Path | None = None
    try:
        fd, tmp = _create_temp(target)
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
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass  # already gone (replaced) or the folder became unwritable: nothing more to do
        if isinstance(err, OSError):
            raise _naming_target(err, target, tmp) from None
        raise
    _fsync_dir(parent)
    return digest
