"""The `twograd` command: `twograd --help` lists the commands, built from one table (`COMMANDS`).

Each command is a module of this package with `add_arguments(parser)` and `run(args) -> int`
(argparse only, no library logic: that lives in `models`).

Exit status, the same for every command:

    0    ok
    1    failure at run time: a RunError (diverged, a missing program, a failed check), or an
         OSError (an I/O failure, e.g. writing a file), or a MemoryError (too big for this machine)
    2    usage error: argparse's, or an InputError (bad value, unknown name, bad file named), or an
         OSError that says a name given is unusable (too long, or under a file)
    130  interrupted (Ctrl-C), after whatever saving the command does
    141  the reader of stdout went away (`twograd tour | head`); nothing more is printed

A project error (`engine.TwogradError`) or an OSError is one line on stderr,
`twograd CMD: error: ...`, and with `--json` also `{"error": "..."}` on stdout. Any other
exception is a bug in twograd and shows its traceback; TWOGRAD_DEBUG=1 shows the traceback of
the handled ones too.
"""

from __future__ import annotations

import os

# twograd's models are small: numpy's BLAS runs their matrix products fastest on one thread
# (a 2-block GPT step measured 4.3 ms on 1 thread, 10.8 ms on the default 2; at batch 32 x
# context 64 the two are equal; benchmarks/gpt.py). Set before numpy is imported; a thread
# count the user set in the environment is kept.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import errno  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib import metadata  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import NoReturn  # noqa: E402

# Nothing heavier than `engine` (standard library only) at the top: numpy and the commands are
# imported inside `main`, where a Ctrl-C during start-up is caught like any other (exit 130, one line).
from engine import InputError, TwogradError  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141
#: OSErrors that say the path given is unusable as a name (too long; a component is a file, not a
#: folder): exit 2, as for any other bad argument. Each command's converters (models/cli/types.py)
#: catch what the text alone shows first; this is the rule for whatever reaches the file system.
_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR}


@dataclass(frozen=True)
class Command:
    """One row of the command table: `twograd NAME`, the module that implements it, its one-line help."""

    name: str
    module: str
    help: str


#: Every command, in the order `twograd --help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("tour", "models.cli.tour", "the main job: every capability, checked and drawn"),
    Command("graph", "models.cli.graph", "draw the classic two-input tanh neuron after backward"),
    Command("check", "models.cli.check", "three-way gradient check (graph, manual, numeric) of every registered piece"),
    Command(
        "train", "models.cli.train", "train a model of the task table on the shared trainer (--list shows the tasks)"
    ),
    Command("sample", "models.cli.sample", "sample from a trained GPT run (copy, reverse, chars, lines)"),
    Command(
        "distill", "models.cli.distill", "distil a larger teacher into a small student (spirals MLP, chars transformer)"
    ),
    Command(
        "align", "models.cli.align", "reward model from preferences; best-of-n, REINFORCE+KL and DPO; reward hacking"
    ),
    Command(
        "learn",
        "models.cli.learn",
        "the study plan as exercises: write each piece, get it graded three ways with a diagnosis",
    ),
)


class UsageError(InputError):
    """A command line argparse refused; `prog` is the (sub)command it belongs to."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{message} (see {prog} --help)")
        self.prog = prog


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors raise UsageError, so `main` reports them like any
    other error: one line (plus a pointer to --help), exit status 2, JSON with --json."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def _version() -> str:
    try:
        return metadata.version("twograd")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _add_command(sub: argparse._SubParsersAction, command: Command) -> None:
    module: ModuleType = importlib.import_module(command.module)
    p = sub.add_parser(command.name, help=command.help, description=module.__doc__)
    module.add_arguments(p)
    p.set_defaults(func=module.run)


def build_parser() -> argparse.ArgumentParser:
    """The `twograd` parser, with one subcommand per row of `COMMANDS`."""
    parser = OneLineParser(
        prog="twograd",
        description="twograd: the primitive stack behind modern AI, rebuilt from first principles and checked three ways.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"twograd {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for command in COMMANDS:
        _add_command(sub, command)
    return parser


def _report(prog: str, err: BaseException, message: str, as_json: bool, *, kind: str = "error") -> None:
    """The one line on stderr (`PROG: error: MESSAGE`), and `{"error": MESSAGE}` on stdout with --json."""
    if os.environ.get("TWOGRAD_DEBUG"):
        raise err
    print(f"{prog}: {kind}: {message}" if kind else f"{prog}: {message}", file=sys.stderr)
    if as_json:
        from models.cli.output import print_json  # here, not at the top: see the imports

        print_json({"error": message})


def main(argv: Sequence[str] | None = None) -> int:
    """Run `twograd ARGV` and return its exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # decided before parsing, so that a usage error is JSON too; "--" ends the options
    as_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    prog = "twograd"
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the command they were given to, like its other usage errors
            where = f"twograd {args.command}" if getattr(args, "command", None) else "twograd"
            raise UsageError(where, f"unrecognized arguments: {' '.join(extra)}")
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        prog = f"twograd {args.command}"
        as_json = bool(getattr(args, "json", False))
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (e.g. `twograd tour | head`): stop quietly, as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as err:
        _report(prog, err, f"interrupted ({err})" if str(err) else "interrupted", as_json, kind="")
        return EXIT_INTERRUPTED
    except UsageError as err:
        _report(err.prog, err, str(err), as_json)
        return EXIT_USAGE
    except InputError as err:
        _report(prog, err, str(err), as_json)
        return EXIT_USAGE
    except TwogradError as err:  # RunError, or any other failure twograd raised on purpose
        _report(prog, err, str(err), as_json)
        return EXIT_FAILED
    except OSError as err:
        if err.errno in _NAME_ERRNOS:  # the name the user gave is unusable: a usage error, like a bad flag
            _report(prog, err, f"{err.strerror or err}: {err.filename}" if err.filename else str(err), as_json)
            return EXIT_USAGE
        _report(prog, err, f"I/O error: {err}", as_json)
        return EXIT_FAILED
    except MemoryError as err:  # past the size checks: a model or batch this machine cannot hold
        _report(
            prog,
            err,
            f"out of memory ({err or 'an allocation failed'}); try a smaller model, --batch-size or --context",
            as_json,
        )
        return EXIT_FAILED
