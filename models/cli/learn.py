"""The study plan as exercises: build each piece yourself, and let twograd grade it three ways.

    twograd learn                      the plan in order, with your progress (--json)
    twograd learn show NAME            the math, what it builds on, the functions to write
    twograd learn start NAME           write DIR/NAME.py (math, signatures, NotImplementedError) and its test
    twograd learn check NAME           grade it: forward on fixed, random and edge cases, backward three ways;
                                       exit 0 pass, 1 fail, with the diagnosis of what is wrong;
                                       --html FILE paints a wrong gradient on twograd's graph (viz.explore)
    twograd learn hint NAME            a hint: --level 1 says where to look (first at what your last check found),
                                       the next gives the formula with the derivation; never the code
    twograd learn solution NAME        where twograd's own version lives

The workspace DIR (default ./twograd-learn) holds your files and progress.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli import types
from models.cli.output import print_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--dir", type=Path, default=None, help="the workspace folder (default ./twograd-learn)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    for name, helptext in (
        ("show", "the math, what it builds on, the exact functions to write"),
        ("start", "write DIR/NAME.py and DIR/test_NAME.py (never over your files)"),
        ("check", "grade DIR/NAME.py in a sandbox: exit 0 pass, 1 fail (with the diagnosis)"),
        ("hint", "a hint: --level 1 where to look, 2 the formula, 3 the details; never the code"),
        ("solution", "where twograd's own version lives (file and function)"),
    ):
        s = sub.add_parser(name, help=helptext, description=helptext)
        # exercise names are checked when the command runs (did-you-mean), not by choices=
        s.add_argument("name", metavar="NAME", help="an exercise (twograd learn lists them)")
        s.add_argument(
            "--dir", type=Path, default=argparse.SUPPRESS, help="the workspace folder (default ./twograd-learn)"
        )
        s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
        if name == "check":
            s.add_argument("--seed", type=types.seed, default=0, help="seed of the fixed cases (default 0)")
            s.add_argument(
                "--random-seed",
                type=types.seed,
                default=None,
                help="seed of the random cases (default: a fresh one each check; a failure names it)",
            )
            s.add_argument(
                "--time-limit", type=types.positive, default=None, help="seconds your file may run (default 60)"
            )
            s.add_argument(
                "--html",
                type=Path,
                metavar="FILE",
                default=None,
                help="on a wrong gradient, write the step-through page of twograd's graph with yours painted on it",
            )
        if name == "hint":
            s.add_argument(
                "--level",
                type=types.whole_number(1),
                default=1,
                help="1: where to look, after your last check's diagnosis (default); 2: the formula and the derivation; "
                "3: the details, where there are more",
            )


def run(args: argparse.Namespace) -> int:
    from models.learn import catalog, report, workspace

    directory = args.dir if args.dir is not None else workspace.DEFAULT_DIR
    action = getattr(args, "action", None)
    if action is None:
        p = report.plan(directory)
        print_json(p) if args.json else print(report.format_plan(p))
        return 0
    ex = catalog.get(args.name)
    if action == "show":
        info = report.exercise_info(ex)
        print_json(info) if args.json else print(report.format_exercise(info))
        return 0
    if action == "start":
        paths = workspace.start(directory, ex.name)
        if args.json:
            print_json({"exercise": ex.name, "wrote": [str(p) for p in paths]})
        else:
            print(
                f"wrote {paths[0]} (the math, the signatures, NotImplementedError bodies) and {paths[1]} (for pytest)\n"
                f"next: fill in {paths[0]}, then: twograd learn check {ex.name}"
                + (f" --dir {directory}" if directory != workspace.DEFAULT_DIR else "")
            )
        return 0
    if action == "hint":
        h = report.hint_info(ex, directory, args.level)
        print_json(h) if args.json else print(report.format_hint(h))
        return 0
    if action == "solution":
        places = ex.solution()
        if args.json:
            print_json({"exercise": ex.name, "solution": places})
        else:
            print(f"twograd's own {ex.name} lives in:\n" + "\n".join(f"    {p}" for p in places))
        return 0
    from models.learn.session import check_in_workspace

    result, drew = check_in_workspace(
        ex, directory, seed=args.seed, random_seed=args.random_seed, time_limit=args.time_limit, html=args.html
    )
    if args.json:
        extra = {"html": None if drew is None else {"file": str(drew[0]), "disagree": drew[1], "compared": drew[2]}}
        print_json({**result.to_dict(), **(extra if args.html is not None else {})})
    else:
        print(report.format_check(result))
        if args.html is not None:
            print(
                f"wrote {drew[0]}: twograd's graph of the failing case with your gradients painted on it "
                f"({drew[1]} of your {drew[2]} gradient entries disagree)"
                if drew
                else "no page written: there is no wrong gradient of an nn piece (of the right shape) to draw"
            )
    return 0 if result.passed else 1
