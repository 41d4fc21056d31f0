"""twograd's own exceptions: what went wrong, told apart by who can fix it (standard library only).

    TwogradError(Exception)
    ├── InputError(TwogradError, ValueError)       the caller gave something bad: fix the input
    │   └── UnknownNameError(InputError, KeyError) a name that is not in a table (piece, command)
    └── RunError(TwogradError, RuntimeError)       the input was fine, the run failed (diverged,
                                                   a missing program, a failed check)

The `twograd` command maps them to its exit status: InputError -> 2 (a usage error, like a
bad flag), RunError -> 1 (a failure at run time). Any other exception escaping a command is
a bug in twograd and is shown with its traceback.

Each is also the built-in exception a Python caller expects (`except ValueError` still
catches every bad-input error of `nn`; `except KeyError` still catches an unknown piece).

Where the line falls for files: a checkpoint that is missing, damaged or not twograd's
(`nn.checkpoint.CheckpointError`) is an InputError, because the user named that file and
fixes it by naming another; an OSError while *writing* (a full disk, no permission) is a
failure at run time, which the command reports as an I/O error with exit status 1.
"""

from __future__ import annotations


class TwogradError(Exception):
    """Base of every error twograd raises on purpose; its message is one line for a person."""


class InputError(TwogradError, ValueError):
    """Bad input: an argument, a shape, a value, a file the caller named. Exit status 2."""


class UnknownNameError(InputError, KeyError):
    """A name looked up in one of twograd's tables is not there; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError would print repr(message), quotes and all; this is a sentence for a person.
        return str(self.args[0]) if self.args else ""


class RunError(TwogradError, RuntimeError):
    """The input was accepted but the run failed (diverged, a missing program, a failed check). Exit status 1."""
