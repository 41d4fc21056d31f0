"""Draw o = tanh(x1*w1 + x2*w2 + b) after backward: every node shows its data and grad.
The format comes from the suffix of FILE: .svg .png .pdf (need Graphviz's dot) or .dot."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli.output import print_json
from models.neuron import save_neuron_graph
from viz.draw import RANKDIRS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="where to write the picture")
    p.add_argument("--rankdir", choices=RANKDIRS, default="LR", help="layout direction (default LR)")
    p.add_argument("--json", action="store_true", help='print {"wrote": FILE, "format": ...} as JSON')


def run(args: argparse.Namespace) -> int:
    path = save_neuron_graph(args.output, rankdir=args.rankdir)
    if args.json:
        print_json({"wrote": str(path), "format": path.suffix.lower().lstrip(".")})
    else:
        print(f"wrote {path}")
    return 0
