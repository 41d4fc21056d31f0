"""The `twograd` command: `twograd --help` lists the subcommands.

Bad input ends in one line on stderr (`twograd: error: ...`) and exit status 2, never a
traceback; set TWOGRAD_DEBUG=1 to see the traceback anyway.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Sequence

from models import check, tour
from models import train as train_cmd


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (plus a pointer to --help), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return metadata.version("twograd")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _graph_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph",
        help="draw the classic two-input tanh neuron after backward",
        description="Draw o = tanh(x1*w1 + x2*w2 + b) after backward: every node shows its data and grad. "
        "The format comes from the suffix of FILE: .svg .png .pdf (need Graphviz's dot) or .dot.",
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="where to write the picture")
    p.add_argument("--rankdir", choices=("LR", "TB"), default="LR", help="layout direction (default LR)")
    p.set_defaults(func=_run_graph)


def _run_graph(args: argparse.Namespace) -> int:
    from models.neuron import draw_neuron

    path = draw_neuron(args.output, rankdir=args.rankdir)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="twograd",
        description="twograd: the primitive stack behind modern AI, rebuilt from first principles and checked three ways.",
    )
    parser.add_argument("--version", action="version", version=f"twograd {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    tour.add_parser(sub)
    _graph_parser(sub)
    check.add_parser(sub)
    train_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (e.g. `twograd tour | head`): stop quietly, as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status a shell reports for a closed pipe
    except KeyboardInterrupt:
        print("twograd: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"twograd {args.command}: error: out of memory (try smaller sizes)", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        if os.environ.get("TWOGRAD_DEBUG"):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"twograd {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
