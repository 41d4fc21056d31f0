"""Draw o = tanh(x1*w1 + x2*w2 + b) after backward: every node shows its data and grad.
The format comes from the suffix of FILE: .svg .png .pdf (need Graphviz's dot) or .dot.
--explain LABEL prints the chain rule for that input, path by path (engine.explain), and
colours those paths in the drawing; --expr/--at use a small expression instead of the neuron.
--html FILE writes the step-through page (viz.explore): forward node by node, backward edge by
edge, one offline file; without Graphviz it lists the steps and says how to install it."""

from __future__ import annotations

import argparse

from engine import InputError
from models.cli import types
from models.cli.output import print_json
from models.cli.types import assignments
from models.zoo.neuron import explain_graph, explore_graph, save_graph
from viz.draw import RANKDIRS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=types.out_file, metavar="FILE", help="where to write the picture")
    p.add_argument("--rankdir", choices=RANKDIRS, default="LR", help="layout direction (default LR)")
    p.add_argument("--explain", metavar="LABEL", help="print d(output)/d(LABEL) path by path, e.g. --explain x1")
    p.add_argument("--expr", metavar="TEXT", help="an expression instead of the neuron, e.g. 'tanh(x*w + b)'")
    p.add_argument(
        "--at",
        type=assignments,
        metavar="NAME=NUMBER,...",
        help="the values of --expr's variables, e.g. x=0.5,w=-1,b=2",
    )
    p.add_argument(
        "--html",
        type=types.out_file,
        metavar="FILE",
        help="write the step-through page (forward and backward, one offline .html)",
    )
    p.add_argument(
        "--json", action="store_true", help='print {"wrote": FILE, "format": ..., "explain": ..., "html": ...} as JSON'
    )


def run(args: argparse.Namespace) -> int:
    if args.output is None and args.explain is None and args.html is None:
        raise InputError(
            "needs -o FILE (draw), --html FILE (step through), --explain LABEL (print the paths), or several"
        )
    result: dict = {}
    if args.explain is not None:
        explanation = explain_graph(args.explain, args.expr, args.at)
        result["explain"] = explanation.to_dict()  # with the path table: its "listed" paths
        if not args.json:
            print(explanation)
    if args.output is not None:
        path = save_graph(args.output, rankdir=args.rankdir, expr=args.expr, at=args.at, highlight=args.explain)
        result.update({"wrote": str(path), "format": path.suffix.lower().lstrip(".")})
        if not args.json:
            print(f"wrote {path}")
    if args.html is not None:
        explorer = explore_graph(args.html, expr=args.expr, at=args.at)
        result["html"] = {"wrote": str(args.html), "steps": explorer.n_steps, "picture": explorer.layout_error is None}
        if not args.json:
            if explorer.layout_error:  # no Graphviz: the same steps as text, and how to get the picture
                print(explorer.table())
                print(explorer.layout_error)
            print(f"wrote {args.html} ({explorer.n_steps} steps)")
    if args.json:
        print_json(result)
    return 0
