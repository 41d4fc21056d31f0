"""Render an `engine.Value` computation graph with Graphviz.

    >>> from engine import Value
    >>> from viz import draw
    >>> x = Value(2.0, "x")
    >>> y = (x * x).tanh()
    >>> y.backward()
    >>> d = draw(y)
    >>> d.save("y.svg")          # or .png / .pdf, or .dot (no Graphviz needed)

Layout of the drawing (DOT):

    v0 [box: label / data / grad] ──> op0 (ellipse: "*") ──> v1 [box] ──> op1 ("tanh") ──> v2

Every Value is a box; every op that produced a Value is a small node of its own, with an
edge from each operand to the op and one from the op to its output. Node ids are
sequential (`v0`, `op0`, ...) in topological order, so the same graph always gives the
same text.

Big graphs: only the `max_nodes` Values closest to the output (breadth-first along
`parents`) are drawn; one placeholder node stands for the rest and is joined to every op
that lost an operand. The walk is iterative and O(number of nodes), and the DOT text is
bounded by `max_nodes`, whatever the size of the graph.

Rendering to an image runs Graphviz's `dot` program found on PATH at the time of the
call. Without it, `.dot` files still save, Jupyter shows the DOT text, and asking for an
image raises `GraphvizNotFound` with one line saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from engine.atomic import atomic_write
from engine.value import Value, topological_order

RANKDIRS = ("LR", "TB")
SAVE_FORMATS = (".svg", ".png", ".pdf", ".dot")
DEFAULT_MAX_NODES = 400
PLACEHOLDER_ID = "more"
NUMBER_FORMAT = ".4g"
# Op nodes are small ellipses so the Values, which carry the numbers, stand out.
_OP_STYLE = "shape=ellipse, width=0.4, height=0.3, margin=0.03"

# Group members may be given as nested lists (the loops form of a layer returns nested
# lists of Values), so a group is flattened before use.
GroupMembers = Union[Value, Iterable]

_INSTALL_HINT = (
    "Graphviz's `dot` program was not found on PATH, so the graph cannot be rendered as an image; "
    "install it with `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
    "or `conda install -c conda-forge graphviz`, or save to .dot, which works without it."
)


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is not on PATH. The message is one line naming the install commands."""

    def __init__(self, message: str = _INSTALL_HINT) -> None:
        super().__init__(message)


# --------------------------------------------------------------------------- DOT text
def _quote(text: str) -> str:
    """`text` as a DOT double-quoted string that displays exactly as written.

    Inside a quoted DOT string only `\\` and `"` are special to the parser; Graphviz then
    reads `\\n`, `\\l`, `\\N`, ... as escapes in labels, which escaping every backslash
    also disables. A real newline becomes the DOT line break `\\n`. `<>{}|` need nothing:
    they are special only in HTML labels (`<...>` instead of quotes) and record shapes,
    neither of which is used here.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Graphviz expands HTML entities (&amp; &#65; &alpha;) even in quoted labels, so a
    # literal & is written as &amp;. Other control characters cannot be drawn (a NUL even
    # breaks the parser): they are shown as their escape, e.g. \x00.
    text = "".join(ch if ch == "\n" or ch >= " " else f"\\x{ord(ch):02x}" for ch in text.replace("\t", " "))
    text = text.replace("&", "&amp;")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\n", "\\n")
    return '"' + text + '"'


def _number(x: float) -> str:
    return format(x, NUMBER_FORMAT)


def _value_label(v: Value, show_grad: bool) -> str:
    lines = [v.label] if v.label else []
    lines.append(f"data {_number(v.data)}")
    if show_grad:
        lines.append(f"grad {_number(v.grad)}")
    return "\n".join(lines)


_END = object()  # sentinel for next() in _flatten


def _flatten(members: GroupMembers, group: str) -> list[Value]:
    """The Values in `members` (a Value, or nested iterables of Values), in order."""
    out: list[Value] = []
    stack = [iter([members])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, Value):
            out.append(item)
        elif isinstance(item, (str, bytes)) or not hasattr(item, "__iter__"):
            raise TypeError(f"group {group!r}: members must be engine.Value objects, got {type(item).__name__}: {item!r}")
        else:
            stack.append(iter(item))
    return out


def _keep_closest(root: Value, max_nodes: int) -> set[Value]:
    """The `max_nodes` Values nearest `root`, breadth-first along `parents` (root included)."""
    kept = {root}
    queue = deque([root])
    while queue and len(kept) < max_nodes:
        v = queue.popleft()
        for p in v.parents:
            if p not in kept:
                kept.add(p)
                queue.append(p)
                if len(kept) == max_nodes:
                    break
    return kept


def draw(
    value: Value,
    *,
    rankdir: str = "LR",
    show_grad: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
    groups: Optional[Mapping[str, GroupMembers]] = None,
    title: Optional[str] = None,
) -> "GraphDrawing":
    """Draw the computation graph that produced `value`.

    Args:
        value: the output node; everything it depends on is drawn.
        rankdir: "LR" (inputs on the left) or "TB" (inputs on top).
        show_grad: also print each node's `.grad` (call `value.backward()` first).
        max_nodes: the most Values to draw. Beyond it, the Values closest to `value` are kept
            and one placeholder node says how many were left out (`drawing.truncated`).
        groups: name -> Values (a Value, or nested lists of them). Each group's Values, with
            the op nodes that produce them, are drawn inside a labelled box (a DOT cluster).
            A Value listed in several groups goes to the first. Values of the graph that were
            cut by `max_nodes` are skipped.
        title: a caption drawn above the graph.

    Returns:
        A `GraphDrawing`: `.source` is the DOT text; `.save(path)` writes .svg/.png/.pdf/.dot;
        Jupyter displays it as SVG (or as DOT text without Graphviz).
    """
    if not isinstance(value, Value):
        raise TypeError(f"draw needs an engine.Value, got {type(value).__name__}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(map(repr, RANKDIRS))}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive int, got {max_nodes!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")

    order = topological_order(value)  # parents before children; the root is last
    total = len(order)
    if total > max_nodes:
        kept_set = _keep_closest(value, max_nodes)
        nodes = [v for v in order if v in kept_set]
    else:
        kept_set = None
        nodes = order
    truncated = total - len(nodes)

    vid: dict[Value, str] = {v: f"v{i}" for i, v in enumerate(nodes)}
    oid: dict[Value, str] = {}
    for v in nodes:
        if v.op or v.parents:
            oid[v] = f"op{len(oid)}"

    # Group membership: Value -> cluster index. Checked against the whole graph, so a
    # Value from some other graph is reported rather than silently dropped.
    cluster_of: dict[Value, int] = {}
    cluster_names: list[str] = []
    if groups is not None:
        if not isinstance(groups, Mapping):
            raise TypeError(f"groups must be a mapping of name -> Values, got {type(groups).__name__}")
        in_graph = set(order) if kept_set is not None else vid.keys()
        for name, members in groups.items():
            if not isinstance(name, str):
                raise TypeError(f"group names must be str, got {type(name).__name__}: {name!r}")
            k = len(cluster_names)
            cluster_names.append(name)
            for m in _flatten(members, name):
                if m not in in_graph:
                    raise ValueError(f"group {name!r} holds a Value that is not part of the drawn graph: {m!r}")
                if m in vid:
                    cluster_of.setdefault(m, k)

    # Node statements, by cluster (-1: outside every cluster).
    body: dict[int, list[str]] = {}
    for v in nodes:
        stmts = body.setdefault(cluster_of.get(v, -1), [])
        attrs = f"label={_quote(_value_label(v, show_grad))}"
        if v is value:
            attrs += ", penwidth=2"
        elif not v.parents and v.label:
            attrs += ', style=filled, fillcolor="#e8f0fe"'  # named inputs / parameters
        stmts.append(f"{vid[v]} [{attrs}];")
        if v in oid:
            stmts.append(f"{oid[v]} [label={_quote(v.op or '?')}, {_OP_STYLE}];")

    edges: list[str] = []
    cut_ops: list[str] = []
    for v in nodes:
        if v not in oid:
            continue
        op = oid[v]
        lost = False
        for p in v.parents:
            if p in vid:
                edges.append(f"{vid[p]} -> {op};")
            else:
                lost = True
        if lost:
            cut_ops.append(op)
        edges.append(f"{op} -> {vid[v]};")

    lines = ["digraph G {", f"  graph [rankdir={rankdir}];"]
    if title is not None:
        lines.append(f"  graph [label={_quote(title)}, labelloc=t, fontsize=16];")
    lines.append("  node [shape=box, fontsize=10];")
    lines.append("  edge [arrowsize=0.6];")
    lines.extend("  " + s for s in body.get(-1, []))
    for k, name in enumerate(cluster_names):
        stmts = body.get(k)
        if not stmts:
            continue
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f"    label={_quote(name)};")
        lines.append('    style=rounded; color="#888888";')
        lines.extend("    " + s for s in stmts)
        lines.append("  }")
    if truncated:
        note = f"… {truncated} more nodes not drawn (raise max_nodes to see them)"
        lines.append(f'  {PLACEHOLDER_ID} [label={_quote(note)}, shape=note, style=dashed];')
        lines.extend(f"  {PLACEHOLDER_ID} -> {op} [style=dashed];" for op in cut_ops)
    lines.extend("  " + e for e in edges)
    lines.append("}")
    return GraphDrawing(
        "\n".join(lines) + "\n", n_values=len(nodes), n_ops=len(oid), truncated=truncated
    )


# --------------------------------------------------------------------------- rendering
def _render(source: str, fmt: str) -> bytes:
    """Run `dot -T<fmt>` on `source` and return its output.

    Raises GraphvizNotFound (one line, no chained traceback) when `dot` is not on PATH.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound() from None
    try:
        proc = subprocess.run(
            [exe, f"-T{fmt}"],
            input=source.encode("utf-8", errors="replace"),
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        # `dot` vanished between the lookup and the call.
        raise GraphvizNotFound() from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"Graphviz `dot -T{fmt}` failed (exit {proc.returncode}): {err}")
    return proc.stdout


class GraphDrawing:
    """A drawn computation graph: DOT text plus ways to render, save and display it.

    Attributes:
        source: the DOT text.
        n_values: Values drawn (box nodes).
        n_ops: op nodes drawn.
        truncated: Values of the graph left out by `max_nodes` (0 if none).
    """

    def __init__(self, source: str, *, n_values: int = 0, n_ops: int = 0, truncated: int = 0) -> None:
        self.source = source
        self.n_values = n_values
        self.n_ops = n_ops
        self.truncated = truncated

    def __repr__(self) -> str:
        more = f", {self.truncated} not drawn" if self.truncated else ""
        return f"<GraphDrawing: {self.n_values} values, {self.n_ops} ops{more}>"

    def __str__(self) -> str:
        return self.source

    def svg(self) -> str:
        """The drawing as SVG text (needs Graphviz's `dot`; raises GraphvizNotFound without it)."""
        return _render(self.source, "svg").decode("utf-8")

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the drawing to `path`, in the format its suffix names (.svg .png .pdf .dot).

        `.dot` writes the DOT text and needs nothing else; the image formats run `dot`.
        The file is written atomically (`engine.atomic.atomic_write`: mode 0o666 less the
        umask; an old file stays intact on failure). Returns the path written.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SAVE_FORMATS:
            what = f"the suffix {path.suffix!r} is not a known format" if path.suffix else "the file name has no suffix to say the format"
            raise ValueError(f"cannot save {str(path)!r}: {what}; use one of {' '.join(SAVE_FORMATS)}")
        if suffix == ".dot":
            payload = self.source.encode("utf-8", errors="replace")
        else:
            payload = _render(self.source, suffix[1:])
        atomic_write(path, payload)
        return path

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """Jupyter display: SVG when `dot` is available, else the DOT text."""
        want_svg = (include is None or "image/svg+xml" in include) and not (
            exclude is not None and "image/svg+xml" in exclude
        )
        if want_svg:
            try:
                return {"image/svg+xml": self.svg()}
            except GraphvizNotFound:
                pass
        return {"text/plain": self.source}
