"""What one picture of the explorer holds: the folded graph, or one opened group.

A view is a set of units (boxes) and drawn edges between them:

    unit "n7"   node 7 itself                     unit "g2"   group 2, folded into one box
    unit "c15"  the constant at the tail of edge 15 (a constant is drawn once per use: no hub)

The folded view shows every ungrouped node and one box per group; an edge between two boxes
stands for every edge of the graph between them. An opened group shows its members and, as
inputs, the nodes outside it that they read. Each view also says where each node and each edge
of the graph is drawn in it (`node_units`, `edge_drawn`), so the page only looks them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viz.explore.fold import Group
from viz.explore.record import Recording


@dataclass
class View:
    """Units (key -> (kind, node or group id)), drawn edges (tail, head, graph edge ids), and the maps.

    kind: "node", "input" (an ungrouped leaf with a label), "const", "ext" (outside the
    opened group), "group".
    """

    name: str
    units: dict[str, tuple[str, int]] = field(default_factory=dict)
    edges: list[tuple[str, str, list[int]]] = field(default_factory=list)
    node_units: dict[int, list[str]] = field(default_factory=dict)
    edge_drawn: dict[int, int] = field(default_factory=dict)

    def _unit(self, key: str, kind: str, ref: int, node: int | None) -> str:
        if key not in self.units:
            self.units[key] = (kind, ref)
            if node is not None:
                self.node_units.setdefault(node, []).append(key)
        return key

    def _edges(self, pairs: list[tuple[str, str, int]]) -> None:
        where: dict[tuple[str, str], int] = {}
        for tail, head, e in pairs:
            if tail == head:
                continue  # inside a folded group
            k = where.setdefault((tail, head), len(self.edges))
            if k == len(self.edges):
                self.edges.append((tail, head, []))
            self.edges[k][2].append(e)
            self.edge_drawn[e] = k


def _node_kind(rec: Recording, i: int) -> str:
    return "input" if rec.nodes[i].kind == "input" else "node"


def folded_view(rec: Recording, groups: list[Group]) -> View:
    """The whole graph with every group folded into one box."""
    view = View("all")
    group_of = {i: g.id for g in groups for i in g.members}
    for g in groups:
        view._unit(f"g{g.id}", "group", g.id, None)
        for i in g.members:
            view.node_units.setdefault(i, []).append(f"g{g.id}")
    for node in rec.nodes:
        if node.id not in group_of and node.kind != "const":
            view._unit(f"n{node.id}", _node_kind(rec, node.id), node.id, node.id)
    pairs = []
    for e in rec.edges:
        head = f"g{group_of[e.child]}" if e.child in group_of else f"n{e.child}"
        if e.parent in group_of:
            tail = f"g{group_of[e.parent]}"
        elif rec.nodes[e.parent].kind == "const":
            if e.child in group_of:
                continue  # a constant read inside a folded group is shown when the group opens
            tail = view._unit(f"c{e.id}", "const", e.parent, e.parent)
        else:
            tail = f"n{e.parent}"
        pairs.append((tail, head, e.id))
    view._edges(pairs)
    return view


def group_view(rec: Recording, group: Group, groups: list[Group]) -> View:
    """One group opened: its members, constants once per use, and what they read from outside: an
    ungrouped node as itself (kind "ext"), a node of another group as that group's folded box
    (one box however many of its nodes are read, so 256 weights are one box, not 256)."""
    view = View(group.name)
    inside = set(group.members)
    group_of = {i: g.id for g in groups for i in g.members}
    for i in group.members:
        if rec.nodes[i].kind != "const":
            view._unit(f"n{i}", _node_kind(rec, i), i, i)
    pairs = []
    for e in rec.edges:
        if e.child not in inside:
            continue
        if rec.nodes[e.parent].kind == "const":
            tail = view._unit(f"c{e.id}", "const", e.parent, e.parent)
        elif e.parent in inside:
            tail = f"n{e.parent}"
        elif e.parent in group_of:
            h = group_of[e.parent]
            tail = view._unit(f"g{h}", "group", h, None)
            view.node_units.setdefault(e.parent, []).append(tail)
        else:
            tail = view._unit(f"n{e.parent}", "ext", e.parent, e.parent)
        pairs.append((tail, f"n{e.child}", e.id))
    view._edges(pairs)
    return view
