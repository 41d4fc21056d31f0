"""Align a tiny GPT in a toy world: learn a reward model from preference pairs, then improve the
policy by best-of-n, REINFORCE with a KL leash, and DPO, scored by the hidden true reward
(models/experiments/align.py). `--kl 0` takes the leash off and shows reward hacking."""

from __future__ import annotations

import argparse

from models.cli import types
from models.cli.output import print_json
from models.experiments.align import METHODS, AlignConfig, align
from models.training.trainer import progress_wanted


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = AlignConfig()
    p.add_argument(
        "--method",
        choices=METHODS + ("all",),
        default=defaults.method,
        help=f"which way(s) to improve the policy (default {defaults.method})",
    )
    p.add_argument(
        "--kl",
        type=types.non_negative,
        default=defaults.kl,
        metavar="BETA",
        help=types.capped(
            f"REINFORCE's KL penalty beta (default {defaults.kl:g}; 0 takes the leash off)", types.non_negative
        ),
    )
    p.add_argument(
        "--steps",
        type=types.steps,
        default=defaults.steps,
        help=types.capped(f"policy updates of REINFORCE and DPO (default {defaults.steps})", types.steps),
    )
    p.add_argument(
        "--seed",
        type=types.seed,
        default=defaults.seed,
        help=types.capped("seed of the whole run (default 0)", types.seed),
    )
    p.add_argument(
        "--out",
        type=types.out_folder,
        metavar="DIR",
        help="write align.json and the pictures into DIR (refused if DIR holds a run)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with --out: replace what twograd wrote in DIR before (files of yours are kept)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar and no progress messages (the results still print)"
    )


def run(args: argparse.Namespace) -> int:
    config = AlignConfig(method=args.method, kl=args.kl, steps=args.steps, seed=args.seed).validate()
    chatty = not (args.quiet or args.json)  # the messages on the way; the results print unless --json
    result = align(
        config,
        out=args.out,
        progress=progress_wanted(args.quiet),
        echo=print if chatty else None,
        overwrite=args.overwrite,
    )
    if args.json:
        print_json({**result.to_json(), "files": result.files})
    else:
        print(result.text())
    return 0
