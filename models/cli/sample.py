"""Sample from a GPT trained by `twograd train copy|reverse|chars|lines --out DIR`: a reverse
model answers `--prompt "3 1 4 1 5"` with "5 1 4 1 3"; a chars model continues a text; a lines
model writes new lines. --temperature 0 is greedy."""

from __future__ import annotations

import argparse

from models.cli import types
from models.cli.output import print_json
from models.training.sampling import sample_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=types.folder, required=True, metavar="DIR", help="the run folder `twograd train --out` wrote")
    p.add_argument("--prompt", help="copy/reverse: the question (space-separated symbols); chars: text to continue; "
                                    "lines: the start of a line (default: a held-out question, a newline, nothing)")
    p.add_argument("--n", type=types.whole_number(1), default=1, help="how many samples (default 1)")
    p.add_argument("--max-tokens", type=types.whole_number(1), metavar="N",
                   help="chars: characters to write (default 200); lines: the longest line (default the context); "
                        "copy/reverse answer with exactly their length")
    p.add_argument("--temperature", type=types.non_negative, metavar="T",
                   help="0 is greedy (default for copy/reverse); 1 samples the model's distribution (default otherwise)")
    p.add_argument("--top-k", type=types.whole_number(1), metavar="K", help="sample among the K most likely tokens only")
    p.add_argument("--seed", type=types.seed, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the samples")


def run(args: argparse.Namespace) -> int:
    result = sample_run(args.run, prompt=args.prompt, n=args.n, max_tokens=args.max_tokens, temperature=args.temperature,
                        top_k=args.top_k, seed=args.seed)
    if args.json:
        print_json(result.to_json())
    else:
        print(result.text())
    return 0
