"""`explore(root)`: the data of the step-through page, decided here; the page only steps and draws.

    >>> from engine import Value
    >>> from viz import explore
    >>> x = Value(3.0, "x")
    >>> y = x * x
    >>> page = explore(y)                 # before or after y.backward(): the steps are replayed
    >>> page.n_steps                      # 1 forward, the seed, 2 backward (x is used twice)
    4
    >>> page.save("y.html")               # one offline file; in Jupyter the object shows itself

Pieces: record.py replays the steps, fold.py groups the nodes, views.py says what each picture
holds, layout.py places it with `dot`, compare.py paints another gradient, page.py writes HTML.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write
from engine.errors import InputError
from engine.explain import explain
from engine.value import Value
from viz.draw import RANKDIRS, RENDER_TIMEOUT_SECONDS, GraphvizError, GraphvizNotFound
from viz.explore import page
from viz.explore.compare import BINS, DEFAULT_FLOOR, DEFAULT_TOLERANCE, Comparison, bin_of, compare_grads, short_number
from viz.explore.fold import Group, find_groups
from viz.explore.formulas import formula
from viz.explore.layout import Layout, lay_out
from viz.explore.record import Recording, count_nodes, number, record
from viz.explore.views import View, folded_view, group_view

#: a bigger graph is refused at once (counting stops there): its page would hold too many steps to read
DEFAULT_MAX_NODES = 20_000
#: paths precomputed per clicked leaf (engine.explain's largest contributions)
EXPLAIN_PATHS = 6
#: explain costs one pass over the graph per leaf: leaves explained at most budget // nodes
EXPLAIN_BUDGET = 400_000
#: the one line shown when Graphviz is missing (the step table is shown instead of the picture)
INSTALL_LINE = (
    "no picture: Graphviz's `dot` was not found on PATH; install it with `apt-get install graphviz` "
    "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`"
)


class ExploreRefused(InputError):
    """The graph is bigger than `max_nodes`: refused in one line, before any work."""


def _num(x: float) -> float | str:
    """A float for JSON; NaN and the infinities as strings (JSON has no word for them; the page reads them back)."""
    return x if math.isfinite(x) else repr(x)


class Explorer:
    """The explorer of one graph: `save(path)` writes the page, Jupyter shows it inline.

    Attributes:
        recording: nodes, edges, steps and the replayed grads (viz/explore/record.py).
        groups: the folded groups; views: the folded picture, then one per group.
        layouts: a Layout per view, or None where there is no picture (`layout_error` says why).
        comparison: the painted other gradient, or None.
    """

    def __init__(
        self,
        recording: Recording,
        groups: list[Group],
        views: list[View],
        layouts: list[Layout | None],
        view_errors: list[str | None],
        comparison: Comparison | None,
        title: str,
        layout_error: str | None,
    ) -> None:
        self.recording = recording
        self.groups = groups
        self.views = views
        self.layouts = layouts
        self.view_errors = view_errors
        self.comparison = comparison
        self.title = title
        self.layout_error = layout_error

    @property
    def n_steps(self) -> int:
        return len(self.recording.steps)

    def __repr__(self) -> str:
        pic = f"no picture ({self.layout_error})" if self.layout_error else f"{len(self.groups)} groups"
        return f"<Explorer {self.title!r}: {len(self.recording.nodes)} nodes, {self.n_steps} steps, {pic}>"

    def data(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready lists (see explorer.js for how each is read)."""
        rec = self.recording
        values = rec.values
        last = self._last_grad_steps()
        nodes = [
            {
                "n": n.name,
                "op": n.op,
                "d": _num(n.data),
                "k": n.kind,
                "g": _num(rec.grads[n.id]),
                "eg": _num(values[n.id].grad),
                "p": list(n.parents),
                "l": last[n.id],
            }
            for n in rec.nodes
        ]
        for n, out in zip(rec.nodes, nodes):
            if n.short != n.name:  # the name the steps' text uses (only where it differs: the page stays small)
                out["s"] = n.short
        steps = []
        for s in rec.steps:
            step = {"k": s.kind[0], "n": s.node, "e": s.edge, "b": _num(s.before), "a": _num(s.after), "t": s.text}
            if s.full != s.text:
                step["f"] = s.full  # the same arithmetic with full names: the hover text
            steps.append(step)
        views = []
        for view, layout, err in zip(self.views, self.layouts, self.view_errors):
            units = []
            for key, (kind, ref) in view.units.items():
                box = layout.boxes[key] if layout else (0, 0, 0, 0)
                units.append({"key": key, "kind": kind, "ref": ref, "x": box[0], "y": box[1], "w": box[2], "h": box[3]})
            edges = [
                {"t": t, "h": h, "ids": ids, "d": layout.paths[k] if layout else ""}
                for k, (t, h, ids) in enumerate(view.edges)
            ]
            views.append(
                {
                    "name": view.name,
                    "w": layout.width if layout else 0,
                    "h": layout.height if layout else 0,
                    "units": units,
                    "edges": edges,
                    "nodeUnits": view.node_units,
                    "edgeDrawn": view.edge_drawn,
                    "error": err,
                }
            )
        groups = [
            {"name": g.name, "rule": g.rule, "members": g.members, "inputs": g.inputs, "outputs": g.outputs}
            for g in self.groups
        ]
        ops = sorted({n.op for n in rec.nodes if n.op})
        data: dict[str, Any] = {
            "title": self.title,
            "nodes": nodes,
            "edges": [[e.parent, e.child, _num(e.partial)] for e in rec.edges],
            "steps": steps,
            "groups": groups,
            "views": views,
            "formulas": {op: formula(op) for op in ops},
            "explain": self._explanations(),
            "layoutError": self.layout_error,
            "compare": None,
        }
        if self.comparison is not None:
            c = self.comparison
            data["compare"] = {
                "rel": {i: _num(r) for i, r in c.rel.items()},
                "other": {i: _num(o) for i, o in c.other.items()},
                "cls": {i: bin_of(r) for i, r in c.rel.items()},
                "disagree": c.disagree,
                "first": c.first,
                "tolerance": short_number(c.tolerance),
                "legend": [[css, text] for _, css, text in BINS],
                "groups": self._group_errors(),
                "worst": max(c.rel, key=lambda i: (c.rel[i], -i)) if c.rel else -1,
            }
        return data

    def _last_grad_steps(self) -> list[int]:
        """By node id: the index of the last step that adds into its grad (its last backward edge, or the
        seed), -1 if none. A folded box counts a grad as done once the step counter is past it."""
        last = [-1] * len(self.recording.nodes)
        for k, s in enumerate(self.recording.steps):
            if s.kind == "seed":
                last[s.node] = k
            elif s.kind == "backward":
                last[self.recording.edges[s.edge].parent] = k
        return last

    def _group_errors(self) -> dict[int, dict[str, Any]]:
        """By group id, for groups holding compared nodes: how many were compared ("n"), how many disagree
        ("bad"), the worst relative error ("rel", its legend class "cls") and its node ("node")."""
        c = self.comparison
        out: dict[int, dict[str, Any]] = {}
        if c is None:
            return out
        bad = set(c.disagree)
        for g in self.groups:
            compared = [i for i in g.members if i in c.rel]
            if not compared:
                continue
            worst = max(compared, key=lambda i: (c.rel[i], -i))
            out[g.id] = {
                "n": len(compared),
                "bad": sum(i in bad for i in compared),
                "rel": _num(c.rel[worst]),
                "cls": bin_of(c.rel[worst]),
                "node": worst,
            }
        return out

    def _explanations(self) -> dict[int, Any]:
        """engine.explain's largest paths for the labelled leaves (as many as EXPLAIN_BUDGET allows)."""
        rec = self.recording
        leaves = [n.id for n in rec.nodes if n.kind == "input"]
        allowed = EXPLAIN_BUDGET // max(len(rec.nodes), 1)
        index = rec.index()
        root = rec.values[rec.root]
        out = {}
        for i in leaves[:allowed]:
            ex = explain(root, rec.values[i], limit=EXPLAIN_PATHS)
            out[i] = {
                "count": ex.count,
                "total": _num(ex.total),
                "paths": [[index[v] for v in p.nodes] for p in ex.paths],
                "products": [_num(p.product) for p in ex.paths],
            }
        return out

    def html(self) -> str:
        """The whole page: one self-contained HTML file (CSS, JavaScript and data inlined)."""
        return page.full_page(self.data(), self.title)

    def _repr_html_(self) -> str:
        """Jupyter's inline display (text/html): the same page as a fragment, scripts and styles inlined."""
        return page.fragment(self.data())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to `path` (.html or .htm), atomically; returns the path."""
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise InputError(f"cannot save {str(path)!r}: the explorer writes an .html file")
        atomic_write(path, self.html().encode("utf-8"))
        return path

    def table(self) -> str:
        """The steps as plain text, one per line (what the page lists when there is no picture)."""
        lines = [f"{self.title}: {len(self.recording.nodes)} nodes, {self.n_steps} steps"]
        width = len(str(self.n_steps))
        for k, s in enumerate(self.recording.steps, 1):
            lines.append(f"{k:>{width}}  {s.kind:<8}  {s.text}")
        lines.append(
            "final grads: "
            + ", ".join(
                f"{n.name} = {number(self.recording.grads[n.id])}" for n in self.recording.nodes if n.kind == "input"
            )
        )
        return "\n".join(lines)


def _titles(rec: Recording, groups: list[Group], view: View) -> dict[str, str]:
    """Each box's first line as the page writes it (explorer.js drawNode / drawGroups), to size the box."""
    titles = {}
    for key, (kind, ref) in view.units.items():
        if kind == "group":
            titles[key] = groups[ref].name
        else:
            n = rec.nodes[ref]
            titles[key] = f"{n.name}  ({n.op})" if n.op and "#" not in n.name else n.name
    return titles


def explore(
    root: Value,
    compare: Mapping[Any, Any] | None = None,
    *,
    blocks: Mapping[str, Any] | None = None,
    title: str = "",
    rankdir: str = "TB",
    max_nodes: int = DEFAULT_MAX_NODES,
    timeout: float = RENDER_TIMEOUT_SECONDS,
    tolerance: float = DEFAULT_TOLERANCE,
    floor: float = DEFAULT_FLOOR,
) -> Explorer:
    """Step through forward and backward of the graph of `root`, node by node and edge by edge.

    Args:
        root: the output; explored before or after `root.backward()` (the steps are replayed
            from the data and local partials every node stored, never from `.grad`).
        compare: another gradient to paint onto the graph, {Value or label or array name: grad}
            (viz/explore/compare.py); each compared node is coloured by its relative error.
        blocks: name -> the Values a block of a loops form returned, in forward order; each
            folds into one box (viz/explore/fold.py has the other grouping rules).
        title: the page's heading (default: the root's label).
        rankdir: "TB" (inputs on top) or "LR".
        max_nodes: a bigger graph is refused at once (ExploreRefused), before any work.
        timeout: seconds `dot` may take per picture; a picture refused or stopped is listed as steps.
        tolerance: a compared node disagrees when |other - g| / max(|other|, |g|, floor) > tolerance.
        floor: the smallest denominator of that relative error (gradients near 0 are compared absolutely).

    Returns:
        An `Explorer`: `.save("graph.html")`, shown inline by Jupyter, `.table()` for text.
    """
    if not isinstance(root, Value):
        raise InputError(f"explore needs an engine.Value, got {type(root).__name__}")
    if rankdir not in RANKDIRS:
        raise InputError(f"explore: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise InputError(f"explore: max_nodes must be a positive int, got {max_nodes!r}")
    n = count_nodes(root, max_nodes)
    if n > max_nodes:
        raise ExploreRefused(
            f"explore: the graph has more than {max_nodes:,} nodes; explore a part of it (a block's output) "
            f"or raise max_nodes (the page steps through every node and edge)"
        )
    rec = record(root)
    groups = find_groups(rec, blocks)
    views = [folded_view(rec, groups)] + [group_view(rec, g, groups) for g in groups]
    layouts: list[Layout | None] = []
    errors: list[str | None] = []
    missing: str | None = None
    for view in views:
        if missing is not None:
            layouts.append(None)
            errors.append(missing)
            continue
        try:
            layouts.append(lay_out(view, rankdir, timeout, _titles(rec, groups, view)))
            errors.append(None)
        except GraphvizNotFound:
            missing = INSTALL_LINE
            layouts.append(None)
            errors.append(missing)
        except (GraphvizError, ValueError) as err:  # too big or too slow for one picture: listed as steps
            layouts.append(None)
            errors.append(f"no picture of this view: {err}")
    comparison = compare_grads(rec, compare, tolerance=tolerance, floor=floor) if compare is not None else None
    return Explorer(rec, groups, views, layouts, errors, comparison, title or rec.nodes[-1].name, missing)
