"""Reading a file someone named: only a regular file, and only up to a size that is said out loud.

    >>> from engine.files import read_regular_file
    >>> data = read_regular_file("notes.txt", limit=10_000_000, flag="--data",
    ...                          advice="use a shorter excerpt")

Why: a path in a command line or in a run folder's JSON can name `/dev/zero` (endless), a FIFO
(blocks forever on open), a folder, or a 50 GB file. Each of those must be one line of refusal
at once, not a process that grows until the machine kills it. So:

    1. `os.open(..., O_RDONLY | O_NONBLOCK)`: opening a FIFO with no writer does not block;
    2. `os.fstat` on the open descriptor (not the name, which could be swapped between a check
       and the open): anything but a regular file is refused;
    3. a size above `limit` is refused before one byte is read, naming the limit and what to do;
    4. at most `limit + 1` bytes are read, so a file that grows while it is read is caught too.

Standard library only, like the rest of `engine`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import InputError


class UnreadableFile(InputError):
    """A named file is not a regular file, is larger than its limit, or cannot be opened."""


class NotARegularFile(UnreadableFile):
    """The name points to a device, a FIFO, a socket or a folder: never read from it."""


class FileTooLarge(UnreadableFile):
    """The file is larger than the limit its reader takes."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike[str], limit: int, flag: str, advice: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes.

    `flag` names where the path came from ("--data", "checkpoint.json"), `advice` what to do
    about a file that is too large. Raises FileNotFoundError for a missing file (the caller
    words that one), NotARegularFile, FileTooLarge, or UnreadableFile for any other OSError.
    """
    name = Path(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnreadableFile(f"{flag} {name}: cannot be read ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(
                f"{flag} {name}: is {_kind(info.st_mode)}, not a regular file; refused (only a file is read)"
            )
        if info.st_size > limit:
            raise FileTooLarge(f"{flag} {name}: {info.st_size:,} bytes, more than the {limit:,} this reads; {advice}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise FileTooLarge(
                    f"{flag} {name}: more than the {limit:,} bytes this reads (it grew while read); {advice}"
                )
        return b"".join(chunks)
    except OSError as err:
        raise UnreadableFile(f"{flag} {name}: cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)
