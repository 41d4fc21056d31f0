"""The steps of forward and backward, replayed from what the graph recorded.

Every node stores its data and, next to its parents, the local partials its op computed
when it ran (`Value.partials`). That is enough to replay both passes without touching any
`.grad`, so a graph explored before `backward()` shows the same steps as one explored after:

    forward  (topological order, parents first)   node.data = op(parents)       one step per interior node
    seed                                          root.grad = 1
    backward (reverse order, every edge)          parent.grad += partial * node.grad

The reverse order is the one `Value.backward` uses (a depth-first post-order over the
parents in operand order), so each grad is accumulated in the same order and the replayed
numbers equal the engine's `.grad` to the last bit after one `backward()`. A node used twice
(x * x) is two edges, so two steps add into its grad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import InputError
from engine.value import Value, topological_order

#: parents listed by name in a step's text; a fused op over more says "... and N more"
PARENTS_SHOWN = 4
NUMBER_FORMAT = ".6g"
#: a label this short (and without spaces) names its node in a step's text; a longer one is replaced
#: there by the op's word and the node's id ("add#4"), the full label shown on hover and on the box
SHORT_NAME_CHARS = 12
#: a name that reads as one operand without brackets
_PLAIN = re.compile(r"^[\w\[\],.#:]+$")


def number(x: float) -> str:
    """`x` in NUMBER_FORMAT; -0.0 shown as 0."""
    return format(x + 0.0, NUMBER_FORMAT)


@dataclass
class Node:
    """One Value of the graph. `kind`: "input" (a labelled leaf), "const" (an unlabelled leaf) or "op"."""

    id: int
    name: str
    label: str
    op: str
    data: float
    kind: str
    parents: tuple[int, ...] = ()
    partials: tuple[float, ...] = ()
    short: str = ""  # the name in a step's text: the label if short, else "add#4" (see SHORT_NAME_CHARS)


@dataclass
class Edge:
    """parent -> child, the `index`-th operand of the child; `partial` = d child / d parent."""

    id: int
    parent: int
    child: int
    index: int
    partial: float


@dataclass
class Step:
    """One step of the replay. kind "forward" (node), "seed" (node = root) or "backward" (edge).

    For "backward": `before`/`after` are the parent's grad around the step and `upstream` the
    child's grad; for "seed" `after` is 1. `text` is the arithmetic the panel shows, nodes named
    by their short names; `full` the same with every node's full name (the panel's hover text).
    """

    kind: str
    node: int
    text: str
    edge: int = -1
    upstream: float = 0.0
    before: float = 0.0
    after: float = 0.0
    full: str = ""


@dataclass
class Recording:
    """The graph as plain records (nodes in topological order, root last) and its steps."""

    nodes: list[Node]
    edges: list[Edge]
    steps: list[Step]
    grads: list[float]  # the replayed d root / d node, by node id
    values: list[Value] = field(repr=False, default_factory=list)  # node id -> the engine's Value

    @property
    def root(self) -> int:
        return len(self.nodes) - 1

    def index(self) -> dict[Value, int]:
        """Value -> node id (identity: Values hash by identity)."""
        return {v: i for i, v in enumerate(self.values)}


def count_nodes(root: Value, limit: int) -> int:
    """The number of nodes `root` depends on, counting stops past `limit` (returns limit + 1):
    a graph too big to explore is refused without walking all of it."""
    seen = {root}
    stack = [root]
    while stack:
        for p in stack.pop().parents:
            if p not in seen:
                seen.add(p)
                if len(seen) > limit:
                    return limit + 1
                stack.append(p)
    return len(seen)


def ref(name: str) -> str:
    """`name` as an operand in a step's text: "(x1*w1 + b).grad" is read as one thing, "x1.grad" needs no brackets."""
    return name if _PLAIN.match(name) else f"({name})"


#: an unlabelled node is named by its op and its id ("mul#7"); symbols get a word
OP_WORDS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
_INFIX = ("+", "-", "*", "/", "**")


def _name(v: Value, i: int) -> str:
    if v.label:
        return v.label
    if not v.parents:
        return number(v.data)  # a constant is its number
    op = "**" if v.op.startswith("**") else v.op
    return f"{OP_WORDS.get(op, op)}#{i}"


def _short(v: Value, i: int, name: str) -> str:
    if not v.label or (len(v.label) <= SHORT_NAME_CHARS and " " not in v.label):
        return name
    if not v.parents:
        return f"leaf#{i}"
    op = "**" if v.op.startswith("**") else v.op
    return f"{OP_WORDS.get(op, op)}#{i}"


def record(root: Value) -> Recording:
    """Replay forward and backward of the graph of `root` (see the module docstring)."""
    if not isinstance(root, Value):
        raise InputError(f"explore needs an engine.Value, got {type(root).__name__}")
    order = topological_order(root)
    ids = {v: i for i, v in enumerate(order)}
    nodes: list[Node] = []
    edges: list[Edge] = []
    for i, v in enumerate(order):
        parents = tuple(ids[p] for p in v.parents)
        kind = "op" if parents else ("input" if v.label or v is root else "const")  # a root is drawn even unlabelled
        name = _name(v, i)
        nodes.append(Node(i, name, v.label, v.op, v.data, kind, parents, tuple(v.partials), _short(v, i, name)))
        for k, (p, d) in enumerate(zip(parents, v.partials)):
            edges.append(Edge(len(edges), p, i, k, d))
    edges_of: dict[int, list[Edge]] = {}
    for e in edges:
        edges_of.setdefault(e.child, []).append(e)

    steps = [
        Step("forward", n.id, _forward_text(n, nodes, short=True), full=_forward_text(n, nodes, short=False))
        for n in nodes
        if n.kind == "op"
    ]
    grads = [0.0] * len(nodes)
    grads[-1] = 1.0
    seed = "{0}.grad = 1  (∂{0}/∂{0})"
    steps.append(
        Step(
            "seed", len(nodes) - 1, seed.format(ref(nodes[-1].short)), after=1.0, full=seed.format(ref(nodes[-1].name))
        )
    )
    for n in reversed(nodes):
        g = grads[n.id]
        for e in edges_of.get(n.id, ()):
            before = grads[e.parent]
            after = before + e.partial * g
            grads[e.parent] = after
            text, full = (_backward_text(e, nodes, g, before, after, short) for short in (True, False))
            steps.append(Step("backward", n.id, text, e.id, g, before, after, full))
    return Recording(nodes, edges, steps, grads, order)


def _forward_text(n: Node, nodes: list[Node], short: bool) -> str:
    """ "y = a * b = 2 * 3 = 6" for a binary op and a constant power, "y = tanh(a) = tanh(0.5) = 0.462" otherwise.
    short: nodes named by their short names ("add#4 = x1*w1 + x2*w2 = ..." names the node once, in full, by its operands)."""

    def nm(m: Node) -> str:
        return m.short if short else m.name

    if n.op in _INFIX and len(n.parents) == 2:
        a, b = nodes[n.parents[0]], nodes[n.parents[1]]
        return (
            f"{nm(n)} = {ref(nm(a))} {n.op} {ref(nm(b))} = {number(a.data)} {n.op} {number(b.data)} = {number(n.data)}"
        )
    if n.op.startswith("**") and len(n.parents) == 1:
        a = nodes[n.parents[0]]
        return f"{nm(n)} = {ref(nm(a))} ** {n.op[2:]} = {number(a.data)} ** {n.op[2:]} = {number(n.data)}"
    shown = [nodes[p] for p in n.parents[:PARENTS_SHOWN]]
    more = f", ... {len(n.parents) - PARENTS_SHOWN} more" if len(n.parents) > PARENTS_SHOWN else ""
    names = ", ".join(nm(p) for p in shown) + more
    numbers = ", ".join(number(p.data) for p in shown) + more
    return f"{nm(n)} = {n.op}({names}) = {n.op}({numbers}) = {number(n.data)}"


def _backward_text(e: Edge, nodes: list[Node], upstream: float, before: float, after: float, short: bool) -> str:
    p, c = (ref(nodes[i].short if short else nodes[i].name) for i in (e.parent, e.child))
    return (
        f"{p}.grad += ∂{c}/∂{p} * {c}.grad = {number(e.partial)} * {number(upstream)}"
        f" = {number(e.partial * upstream)};  {p}.grad: {number(before)} -> {number(after)}"
    )
