"""The chain rule spelled out: every path from a leaf to the root, and what each contributes.

    >>> from engine import Value, explain
    >>> x = Value(3.0, "x")
    >>> y = x * x
    >>> y.label = "y"
    >>> print(explain(y, x))                                      # doctest: +NORMALIZE_WHITESPACE
    d(y)/d(x): 2 paths, every one listed, largest contribution first
      #  contribution  path (local partial on each edge)
      1             3  x --(3)--> y
      2             3  x --(3)--> y
    total: 6 (= x.grad after y.backward())

For a root r and a node x, with each edge u -> v carrying the local partial dv/du that the
op stored when it ran (`Value.partials`), the chain rule is a sum over paths:

    dr/dx = sum over paths x = u0 -> u1 -> ... -> uk = r  of  prod_i du_(i+1)/du_i

An operand used twice (x * x) is two edges, so two paths. `total` is that sum, computed
by one pass over the graph (the same recurrence as `backward`, without enumerating paths),
so it equals `x.grad` after a single `r.backward()` up to rounding. Paths can be exponentially
many: they are counted first (one pass), and only the `limit` largest |contributions| are
listed, found best-first without walking the others.

Standard library only, like the rest of `engine`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from engine.value import Value, topological_order

#: paths listed at most; past it the count is given and the largest contributions shown
DEFAULT_LIMIT = 20
#: a path back to the root, innermost first: (partial, node above, the rest of the chain)
_Chain = tuple[float, Value, "_Chain"] | None
NUMBER_FORMAT = ".6g"


def _name(v: Value) -> str:
    return v.label or v.op or "leaf"


def _number(x: float) -> str:
    return format(x + 0.0, NUMBER_FORMAT)  # + 0.0: never print -0


@dataclass(frozen=True)
class ChainPath:
    """One path from the leaf to the root.

    Attributes:
        nodes: the Values along it, leaf first, root last.
        partials: the local partial on each edge, d(nodes[i+1])/d(nodes[i]) (len(nodes) - 1 of them).
        product: their product, this path's contribution to d(root)/d(leaf).
    """

    nodes: tuple[Value, ...]
    partials: tuple[float, ...]
    product: float

    def __str__(self) -> str:
        parts = [_name(self.nodes[0])]
        for partial, node in zip(self.partials, self.nodes[1:]):
            parts.append(f"--({_number(partial)})--> {_name(node)}")
        return " ".join(parts)


@dataclass
class Explanation:
    """d(root)/d(leaf), path by path.

    Attributes:
        root, leaf: the two ends.
        count: how many paths lead from leaf to root (all of them, listed or not).
        paths: the listed paths, largest |product| first (all of them when count <= limit).
        total: the sum over all paths, d(root)/d(leaf).
        limit: the most paths listed.
    """

    root: Value
    leaf: Value
    count: int
    total: float
    limit: int
    paths: list[ChainPath] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every path is listed."""
        return len(self.paths) == self.count

    def __str__(self) -> str:
        what = f"d({_name(self.root)})/d({_name(self.leaf)})"
        if self.count == 0:
            return f"{what}: no path, {_name(self.root)} does not depend on {_name(self.leaf)}\ntotal: 0"
        noun = "path" if self.count == 1 else "paths"
        if self.complete:
            head = f"{what}: {self.count:,} {noun}, every one listed, largest contribution first"
        else:
            head = f"{what}: {self.count:,} {noun}; the {len(self.paths)} largest contributions listed"
        width = max([len("contribution")] + [len(_number(p.product)) for p in self.paths])
        lines = [
            head,
            f"  {'#':>{len(str(len(self.paths)))}}  {'contribution':>{width}}  path (local partial on each edge)",
        ]
        for i, p in enumerate(self.paths, 1):
            lines.append(f"  {i:>{len(str(len(self.paths)))}}  {_number(p.product):>{width}}  {p}")
        tail = f"total: {_number(self.total)} (= {_name(self.leaf)}.grad after {_name(self.root)}.backward())"
        if not self.complete:
            shown = math.fsum(p.product for p in self.paths)
            tail = f"listed: {_number(shown)} of the {tail}"
        lines.append(tail)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """The same as plain data (what `twograd graph --explain --json` prints): the counts, the
        total, and each listed path, largest |contribution| first, as its nodes (leaf first) and
        the local partial on each edge."""
        return {
            "root": _name(self.root),
            "leaf": _name(self.leaf),
            "paths": self.count,
            "total": self.total,
            "complete": self.complete,
            "listed": [
                {"contribution": p.product, "nodes": [_name(n) for n in p.nodes], "partials": list(p.partials)}
                for p in self.paths
            ],
        }


def explain(root: Value, leaf: Value, *, limit: int = DEFAULT_LIMIT) -> Explanation:
    """Every path from `leaf` to `root`, each edge's local partial, each path's product and their sum.

    Args:
        root: the output (any Value).
        leaf: a node `root` depends on (an input, a parameter, or an interior node).
        limit: list at most this many paths (the largest |products|); all are counted.

    Returns:
        An `Explanation`; `print` it for the table. Needs no `backward()`: the partials are
        stored when each op runs.
    """
    if not isinstance(root, Value) or not isinstance(leaf, Value):
        raise TypeError(
            f"explain needs two engine.Values (root, leaf), got {type(root).__name__} and {type(leaf).__name__}"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"explain: limit must be a positive int, got {limit!r}")
    order = topological_order(root)  # parents first, root last

    # Down from the root: paths[v] = number of paths v -> root, total[v] = d(root)/d(v).
    n_paths: dict[Value, int] = {root: 1}
    total: dict[Value, float] = {root: 1.0}
    for v in reversed(order):
        n, g = n_paths.get(v, 0), total.get(v, 0.0)
        if v is leaf or not n:
            continue  # a path ends at the leaf; a path through it never comes back to it
        for p, d in zip(v.parents, v.partials):
            n_paths[p] = n_paths.get(p, 0) + n
            total[p] = total.get(p, 0.0) + d * g
    count = n_paths.get(leaf, 0)
    result = Explanation(root, leaf, count, total.get(leaf, 0.0) if count else 0.0, limit)
    if count:
        result.paths = _largest_paths(order, root, leaf, limit)
    return result


def _largest_paths(order: list[Value], root: Value, leaf: Value, limit: int) -> list[ChainPath]:
    """The `limit` paths leaf -> root with the largest |product|, largest first.

    best[v] = the largest |product| of a path from the leaf up to v (one pass, parents first).
    A best-first search then walks down from the root: a partial path root -> ... -> v with
    |product| q can at most reach q * best[v], an exact bound, so paths leave the heap in
    order of |product| and only `limit` of them are completed.
    """
    best: dict[Value, float] = {leaf: 1.0}
    for v in order:
        if v is leaf:
            continue
        reach = [abs(d) * best[p] for p, d in zip(v.parents, v.partials) if p in best]
        if reach:
            best[v] = max((r if r == r else math.inf) for r in reach)  # NaN ranks first: it is news
    tie = 0
    # entries: (-bound, tie, node, |prefix|, chain); chain = (partial, node_above, rest) back to the root
    heap: list[tuple[float, int, Value, float, _Chain]] = [(-best[root], tie, root, 1.0, None)]
    found: list[ChainPath] = []
    while heap and len(found) < limit:
        _, _, v, q, chain = heapq.heappop(heap)
        if v is leaf:
            nodes, partials = [leaf], []
            while chain is not None:
                d, above, chain = chain
                partials.append(d)
                nodes.append(above)
            product = 1.0
            for d in partials:
                product *= d
            found.append(ChainPath(tuple(nodes), tuple(partials), product))
            continue
        for p, d in zip(v.parents, v.partials):
            if p in best:
                tie += 1
                step = abs(d) if d == d else math.inf
                heapq.heappush(heap, (-(q * step * best[p]), tie, p, q * step, (d, v, chain)))
    return found
