"""Align a tiny GPT in a toy world: learn a reward model from preference pairs, then improve the
policy by best-of-n, REINFORCE with a KL leash, and DPO, scored by the hidden true reward
(models/align.py). `--kl 0` takes the leash off and shows reward hacking."""

from __future__ import annotations

import argparse

from models.align import METHODS, AlignConfig, prepare_align_out, run_align, save_align
from models.cli import types
from models.cli.output import print_json
from models.runs import release_folder
from models.trainer import progress_wanted


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = AlignConfig()
    p.add_argument("--method", choices=METHODS + ("all",), default=defaults.method,
                   help=f"which way(s) to improve the policy (default {defaults.method})")
    p.add_argument("--kl", type=types.non_negative, default=defaults.kl, metavar="BETA",
                   help=f"REINFORCE's KL penalty beta (default {defaults.kl:g}; 0 takes the leash off)")
    p.add_argument("--steps", type=types.whole_number(1), default=defaults.steps,
                   help=f"policy updates of REINFORCE and DPO (default {defaults.steps})")
    p.add_argument("--seed", type=types.seed, default=defaults.seed, help="seed of the whole run (default 0)")
    p.add_argument("--out", type=types.folder, metavar="DIR",
                   help="write align.json and the pictures into DIR (refused if DIR holds a run)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no progress messages (the results still print)")


def run(args: argparse.Namespace) -> int:
    config = AlignConfig(method=args.method, kl=args.kl, steps=args.steps, seed=args.seed).validate()
    folder = prepare_align_out(args.out) if args.out is not None else None
    chatty = not (args.quiet or args.json)  # the messages on the way; the results print unless --json
    try:
        result = run_align(config, progress=progress_wanted(args.quiet), echo=print if chatty else None)
        files = save_align(result, folder) if folder is not None else {}
    finally:
        if folder is not None:
            release_folder(folder)
    if args.json:
        print_json({**result.to_json(), "files": files})
    else:
        print("\n".join(result.summary()))
        for what, path in files.items():
            print(f"wrote {path}" if what != "pictures" else path)
    return 0
