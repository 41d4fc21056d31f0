"""Which nodes fold together: groups by what built them.

Rules, the first that claims a node wins (a node is in at most one group, groups do not nest):

1. `blocks`, given by the caller: name -> the Values a block (a neuron, a layer, a head, a
   sub-layer of a loops form) returned, in forward order. A block holds everything its outputs
   depend on that no earlier block holds (what the tour's block drawing boxes).
2. A label prefix: "layer1:h[0]" is in the group "layer1" (text before the first GROUP_SEPARATOR).
3. A fused row: a `logsumexp` node and the `softmax` outputs over it, an `rrms` node and the
   `rms_norm` outputs over it (engine/fused_rows.py builds a row as these few nodes).
4. A parameter array: leaves labelled "W1[0,1]", "W1[0,2]" ... are the group "W1".
5. Without `blocks`, a layer: the unlabelled op nodes that depend on the same set of 2-D arrays
   (x, W1 for the first layer of an MLP; x, W1, W2 for the second) are the group "layer W2",
   named by the last of those arrays, when there are at least two such sets (one set is
   one layer: nothing to tell apart, so the ops stay drawn). An MLP explored without
   `blocks=` so opens as input -> W1 -> layer W1 -> W2 -> layer W2 ..., not one wide sheet.

Automatic groups (rules 2-4) need at least MIN_GROUP_NODES members. Constants (unlabelled
leaves) are never grouped by rules 2-4: they are drawn once per use, next to their consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.errors import InputError
from engine.value import Value
from viz.explore.record import Recording

#: "layer1:h[0]" -> group "layer1". Not "/" nor "." : an expression's labels (engine.expr) hold "/" and numbers
GROUP_SEPARATOR = ":"
#: an automatic group smaller than this stays unfolded
MIN_GROUP_NODES = 2
#: fused multi-node rows: the shared node's op -> the op of the outputs built over it
FUSED_ROWS = {"logsumexp": "softmax", "rrms": "rms_norm"}


@dataclass
class Group:
    """A set of nodes drawn as one box until opened. `inputs`: nodes outside it that its members
    read; `outputs`: members read outside it (or the root)."""

    id: int
    name: str
    rule: str  # "block", "prefix", "fused", "array", "layer"
    members: list[int]
    inputs: list[int]
    outputs: list[int]


def _flat_values(members: object, name: str) -> list[Value]:
    out: list[Value] = []
    stack = [members]
    while stack:
        item = stack.pop()
        if isinstance(item, Value):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)):
            continue  # a float output of a loops form: a constant, nothing to fold
        else:
            raise InputError(
                f"explore: block {name!r} must be Values (or nested lists of them), got {type(item).__name__}"
            )
    return out


def find_groups(rec: Recording, blocks: Mapping[str, object] | None = None) -> list[Group]:
    """The groups of `rec`'s nodes by the rules of the module docstring, in order of their first member."""
    n = len(rec.nodes)
    owner: list[str | None] = [None] * n
    rule_of: dict[str, str] = {}

    def claim(i: int, name: str, rule: str) -> None:
        if owner[i] is None:
            owner[i] = name
            rule_of.setdefault(name, rule)

    if blocks:
        if not isinstance(blocks, Mapping):
            raise InputError(f"explore: blocks must be a mapping of name -> Values, got {type(blocks).__name__}")
        index = rec.index()
        for name, outputs in blocks.items():
            stack = []
            for v in _flat_values(outputs, str(name)):
                if v not in index:
                    raise InputError(f"explore: block {name!r} holds a Value that is not part of the graph: {v!r}")
                stack.append(index[v])
            while stack:  # everything the block's outputs depend on that no earlier block holds
                i = stack.pop()
                if owner[i] is not None:
                    continue
                claim(i, str(name), "block")
                stack.extend(p for p in rec.nodes[i].parents if owner[p] is None)

    consumers = _consumer_lists(rec)
    candidates: dict[tuple[str, str], list[int]] = {}
    for node in rec.nodes:
        if owner[node.id] is not None or node.kind == "const":
            continue
        if GROUP_SEPARATOR in node.label:
            candidates.setdefault((node.label.split(GROUP_SEPARATOR, 1)[0].strip(), "prefix"), []).append(node.id)
        elif node.op in FUSED_ROWS:
            row = [node.id] + [c for c in consumers[node.id] if rec.nodes[c].op == FUSED_ROWS[node.op]]
            candidates[(f"{FUSED_ROWS[node.op]} row #{node.id}", "fused")] = row
        elif node.kind == "input" and "[" in node.label and not node.label.startswith("["):
            candidates.setdefault((node.label.split("[", 1)[0], "array"), []).append(node.id)
    for (name, rule), ids in candidates.items():
        ids = [i for i in ids if owner[i] is None]
        if len(ids) >= MIN_GROUP_NODES:
            for i in ids:
                claim(i, name, rule)
    if not blocks:
        _claim_layers(rec, owner, claim)

    members: dict[str, list[int]] = {}
    for i, owned_by in enumerate(owner):
        if owned_by is not None:
            members.setdefault(owned_by, []).append(i)
    groups: list[Group] = []
    for name, ids in members.items():
        inside = set(ids)
        inputs = sorted({p for i in ids for p in rec.nodes[i].parents if p not in inside})
        outputs = [i for i in ids if i == rec.root or any(c not in inside for c in consumers[i])]
        groups.append(Group(len(groups), name, rule_of[name], ids, inputs, outputs))
    return groups


def _claim_layers(rec: Recording, owner: list[str | None], claim: Callable[[int, str, str], None]) -> None:
    """Rule 5 of the module docstring: unlabelled ops grouped by the set of 2-D arrays they depend on."""
    arrays: dict[str, int] = {}  # a 2-D array group's name -> its bit, in order of first member (forward order)
    for node in rec.nodes:
        name = owner[node.id]
        if name is not None and node.kind == "input" and "," in node.label and name not in arrays:
            if node.label.split("[", 1)[0] == name:  # claimed by rule 4, not by a block or a prefix
                arrays[name] = 1 << len(arrays)
    if len(arrays) < 2:
        return
    names = list(arrays)
    depends = [0] * len(rec.nodes)  # node id -> bitmask of the 2-D arrays it depends on
    by_set: dict[int, list[int]] = {}
    for node in rec.nodes:  # ids are topological: parents first
        if node.kind == "input":
            name = owner[node.id]
            depends[node.id] = arrays.get(name, 0) if name is not None else 0
            continue
        mask = 0
        for p in node.parents:
            mask |= depends[p]
        depends[node.id] = mask
        if node.kind == "op" and not node.label and owner[node.id] is None and mask:
            by_set.setdefault(mask, []).append(node.id)
    if len(by_set) < 2:
        return
    for mask, ids in by_set.items():
        if len(ids) >= MIN_GROUP_NODES:
            name = f"layer {names[mask.bit_length() - 1]}"
            for i in ids:
                claim(i, name, "layer")


def _consumer_lists(rec: Recording) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in rec.nodes]
    for e in rec.edges:
        out[e.parent].append(e.child)
    return out
