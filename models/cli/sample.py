"""Sample from a GPT trained by `twograd train copy|reverse|chars|lines --out DIR`: a reverse
model answers `--prompt "3 1 4 1 5"` with "5 1 4 1 3"; a chars model continues a text; a lines
model writes new lines. --temperature 0 is greedy."""

from __future__ import annotations

import argparse

from models.cli import types
from models.cli.output import print_json
from models.training.sampling import MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOKENS, MIN_TEMPERATURE, sample_run

TEMPERATURE = types.temperature(MIN_TEMPERATURE, MAX_TEMPERATURE, greedy=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run", type=types.folder, required=True, metavar="DIR", help="the run folder `twograd train --out` wrote"
    )
    p.add_argument(
        "--prompt",
        help="copy/reverse: the question (space-separated symbols); chars: text to continue; "
        "lines: the start of a line (default: a held-out question, a newline, nothing)",
    )
    p.add_argument(
        "--n",
        type=types.whole_number(1, MAX_SAMPLES),
        default=1,
        help=types.capped("how many samples (default 1)", types.whole_number(1, MAX_SAMPLES)),
    )
    p.add_argument(
        "--max-tokens",
        type=types.whole_number(1, MAX_TOKENS),
        metavar="N",
        help="chars: characters to write (default 200); lines: the longest line (default the context); "
        "copy/reverse answer with exactly their length "
        f"[1 .. {MAX_TOKENS:,}]",
    )
    p.add_argument(
        "--temperature",
        type=TEMPERATURE,
        metavar="T",
        help=types.capped(
            "0 is greedy (default for copy/reverse); 1 samples the model's distribution (default otherwise)",
            TEMPERATURE,
        ),
    )
    p.add_argument(
        "--top-k",
        type=types.whole_number(1),
        metavar="K",
        help=types.capped("sample among the K most likely tokens only", types.whole_number(1)),
    )
    p.add_argument(
        "--seed", type=types.seed, default=0, help=types.capped("seed of the sampling (default 0)", types.seed)
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the samples")


def run(args: argparse.Namespace) -> int:
    result = sample_run(
        args.run,
        prompt=args.prompt,
        n=args.n,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    if args.json:
        print_json(result.to_json())
    else:
        print(result.text())
    return 0
