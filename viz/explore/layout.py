"""Positions for a view's boxes and edges, from Graphviz's `dot` through the `graphviz` package.

The boxes have fixed sizes (the page writes the text into them), so `dot` is asked for its
`plain` output: positions and edge splines, nothing to render. Running it reuses viz/draw.py's
`_render`, so the time bound, the refusal of a drawing too big for the bound and the one-line
errors (`dot` missing, failed, too slow) are the drawings' own.

Why every group's layout is computed here, ahead of time: the page must work offline with no
layout engine of its own, and opening a group must be instant. Laying out each group alone
costs less than the whole graph at once (`dot` grows faster than linearly), so the total stays
bounded by the graph's size; a view with more than MAX_LAYOUT_UNITS boxes is not laid out and
the page lists its steps instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import graphviz

from viz.draw import LargeDrawingWarning, _render
from viz.explore.views import View

#: points per inch: dot's plain output is in inches, the page in CSS pixels
PX_PER_INCH = 72.0
#: box sizes in inches, by unit kind (width, height)
SIZES = {"node": (1.4, 0.62), "input": (1.4, 0.62), "ext": (1.4, 0.62), "const": (0.7, 0.32), "group": (2.2, 0.9)}
#: a view with more boxes than this is listed as a step table, not laid out
MAX_LAYOUT_UNITS = 3000
#: a box widens for its title: inches per character of the 10 px bold title, plus the margin, up to the cap
INCH_PER_CHAR, TITLE_MARGIN_INCH, MAX_WIDTH_INCH = 0.075, 0.2, 3.5


@dataclass
class Layout:
    """Box positions (key -> x, y, w, h: top-left corner and size, px) and edges as SVG path data."""

    width: float
    height: float
    boxes: dict[str, tuple[float, float, float, float]]
    paths: list[str]  # paths[k] draws view.edges[k]


def box_width(kind: str, title: str) -> float:
    """Inches: the kind's width, or wider for a long title (the page writes `title` on the box's first line)."""
    return min(max(SIZES[kind][0], INCH_PER_CHAR * len(title) + TITLE_MARGIN_INCH), MAX_WIDTH_INCH)


def view_source(view: View, rankdir: str, titles: dict[str, str]) -> str:
    """The DOT text of `view`: empty fixed-size boxes (keys are plain ids: no quoting to parse back)."""
    g = graphviz.Digraph(
        "V",
        graph_attr={"rankdir": rankdir, "nodesep": "0.25", "ranksep": "0.45"},
        node_attr={"shape": "box", "label": "", "fixedsize": "true"},
    )
    for key, (kind, _) in view.units.items():
        g.node(key, width=f"{box_width(kind, titles.get(key, '')):.3f}", height=str(SIZES[kind][1]))
    for tail, head, _ in view.edges:
        g.edge(tail, head)
    return g.source


def _parse_plain(text: str, view: View) -> Layout:
    """dot's `plain` format: `graph scale W H`, `node name x y w h ...` (centres), `edge t h n x1 y1 ...`."""
    boxes: dict[str, tuple[float, float, float, float]] = {}
    paths: dict[tuple[str, str], str] = {}
    height = width = 0.0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "graph":
            width, height = float(parts[2]) * PX_PER_INCH, float(parts[3]) * PX_PER_INCH
        elif parts[0] == "node":
            x, y, w, h = (float(p) * PX_PER_INCH for p in parts[2:6])
            boxes[parts[1]] = (round(x - w / 2, 1), round(height - y - h / 2, 1), round(w, 1), round(h, 1))
        elif parts[0] == "edge":
            n = int(parts[3])
            pts = [
                (float(parts[4 + 2 * k]) * PX_PER_INCH, height - float(parts[5 + 2 * k]) * PX_PER_INCH)
                for k in range(n)
            ]
            d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
            for k in range(1, n - 2, 3):  # cubic Bezier segments
                d += "C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts[k : k + 3])
            paths[(parts[1], parts[2])] = d  # a view has one drawn edge per (tail, head)
    missing = [(t, h) for t, h, _ in view.edges if (t, h) not in paths]
    if missing:
        raise ValueError(f"dot returned no path for {len(missing)} of {len(view.edges)} edges")
    return Layout(round(width, 1), round(height, 1), boxes, [paths[(t, h)] for t, h, _ in view.edges])


def lay_out(view: View, rankdir: str, timeout: float, titles: dict[str, str]) -> Layout:
    """`dot -Tplain` on `view`, each box wide enough for its title (GraphvizError on failure; ValueError past MAX_LAYOUT_UNITS)."""
    if len(view.units) > MAX_LAYOUT_UNITS:
        raise ValueError(f"{len(view.units):,} boxes, more than the {MAX_LAYOUT_UNITS:,} laid out in one picture")
    with warnings.catch_warnings():  # the time bound still applies; a page of 3,000 boxes is not news worth a warning
        warnings.simplefilter("ignore", LargeDrawingWarning)
        text = _render(view_source(view, rankdir, titles), "plain", timeout, len(view.units)).decode("utf-8")
    return _parse_plain(text, view)
