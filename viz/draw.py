"""Draw an `engine.Value` computation graph, through the `graphviz` package.

    >>> from engine import Value
    >>> from viz import draw
    >>> x = Value(2.0, "x")
    >>> y = (x * x).tanh()
    >>> y.backward()
    >>> d = draw(y)
    >>> d.save("y.svg")          # or .png / .pdf, or .dot (no Graphviz needed)

What is ours here is only which nodes, which labels and which clusters; `graphviz.Digraph`
writes the DOT text, `graphviz.pipe` runs Graphviz's `dot`, and the digraph's own Jupyter
display shows the drawing (`drawing.graph` is that digraph, for the rest of its API).

    v0 [box: label / data / grad] ──> op0 (ellipse: "*") ──> v1 [box] ──> op1 ("tanh") ──> v2

Every Value is a box; every op that produced a Value is a small node of its own. Node ids
are sequential (`v0`, `op0`, ...) in topological order, so the same graph always gives the
same text. A constant (an unlabelled leaf, as `3 * x` makes) is drawn once per use, beside the
op that uses it, with the gradient through that use (local partial x the op's grad; for a
constant used once, its .grad): one shared box would be a hub with an edge to every op that
uses it, and `dot` lays out such long edges slowly (a 50k-op chain `v * 1.0001` drew 536 nodes
in more than 30 s, 134 of its edges from one box).

Big graphs: only the `max_nodes` Values closest to the output are drawn (breadth-first
along `parents`); one placeholder stands for the rest. Labels are cut to LABEL_CHARS per line
and LABEL_LINES lines, with an ellipsis; the full text is the node's tooltip. Before `dot`
runs on more than WARN_NODES nodes a `LargeDrawingWarning` names the count and the expected
time; a drawing expected to take longer than its time bound (`timeout`) is refused at once,
and a `dot` still running when the bound passes is stopped. The expected time counts the
nodes `dot` adds itself, one per rank that an edge crosses (a Value used by ops far apart,
such as a weight shared by every step of a chain), and is known before the DOT text is built:
a drawing too big for its bound is refused without building it (`draw` only counts).

Failures, one message each, all `GraphvizError` (an `engine.RunError`: exit status 1 in the
command line): `dot` not installed or not executable (`GraphvizNotFound`), `dot` exiting
non-zero, killed by a signal, or printing something that is not the format asked for
(`GraphvizFailed`; its stderr is cut to DOT_MESSAGE_CHARS), the time bound passed or refused
(`GraphvizTimeout`). `save` to an
image then writes the DOT text beside the requested file and says so in the message;
`save_or_dot` says it in one line and goes on. A notebook then shows the DOT text.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import graphviz

from engine.atomic import atomic_write
from engine.errors import RunError
from engine.value import Value, topological_order

RANKDIRS = ("LR", "TB")
SAVE_FORMATS = (".svg", ".png", ".pdf", ".dot")
DEFAULT_MAX_NODES = 400
PLACEHOLDER_ID = "more"
NUMBER_FORMAT = ".4g"
#: a label line longer than this is cut with an ellipsis (a 5,000-character label made a PNG 32,766 px wide)
LABEL_CHARS = 40
#: at most this many lines per label
LABEL_LINES = 6
#: seconds `dot` may run before it is stopped (GraphvizTimeout)
RENDER_TIMEOUT_SECONDS = 30.0
#: warn (LargeDrawingWarning) before rendering more nodes (Values + ops) than this
WARN_NODES = 2000
#: `dot -Tsvg` wall-clock seconds measured here (2 cores, Graphviz 2.43) on dense MLP-like graphs
#: (tests/viz/test_viz.py `big_graph`), 400 to 10,000 Values, as (layout nodes, seconds). Layout
#: nodes are the drawn nodes plus one per rank each edge crosses beyond the first (`_layout_nodes`):
#: these graphs have 2.2-2.3 of them per drawn node (890 drawn nodes were 1,927 layout nodes). A
#: chain whose every step uses one shared Value has far more (85 steps: 345 drawn, 14,625 layout),
#: which the drawn count alone missed. The cost grows about as layout nodes^2.3. Used only to warn
#: and to refuse, so a rough figure is enough.
MEASURED_RENDER_SECONDS = ((1927, 0.23), (4303, 1.0), (8263, 5.5), (12223, 12.3), (20143, 30.8), (39943, 162.0))
#: `dot`'s stderr shown in a message is cut to this many characters (a broken `dot` printed 5 MB on "one line")
DOT_MESSAGE_CHARS = 300
#: the first bytes of each image format `dot` writes: output that does not start so is not a picture
IMAGE_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "pdf": (b"%PDF-",)}
#: an SVG may open with an XML declaration, a doctype and comments: `<svg` must come within this many bytes
SVG_HEAD_BYTES = 4096

# Op nodes are small ellipses so the Values, which carry the numbers, stand out.
_OP_STYLE = {"shape": "ellipse", "width": "0.4", "height": "0.3", "margin": "0.03"}
_INPUT_STYLE = {"style": "filled", "fillcolor": "#e8f0fe"}  # named inputs / parameters
_HIGHLIGHT = "#d93025"
_HIGHLIGHT_FILL = "#fce8e6"

# Group members may be given as nested lists (the loops form of a layer returns nested
# lists of Values), so a group is flattened before use.
GroupMembers = Value | Iterable

_INSTALL_HINT = (
    "Graphviz's `dot` program was not found on PATH, so the graph cannot be rendered as an image; "
    "install it with `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
    "or `conda install -c conda-forge graphviz`, or save to .dot, which works without it."
)


class GraphvizError(RunError):
    """Rendering with Graphviz's `dot` failed; the message is one line. `dot_path` is where the
    DOT text was saved instead (set by `GraphDrawing.save`), or None."""

    def __init__(self, message: str, *, dot_path: Path | None = None) -> None:
        super().__init__(message)
        self.dot_path = dot_path


class GraphvizNotFound(GraphvizError):
    """Graphviz's `dot` program is not on PATH. The message is one line naming the install commands."""

    def __init__(self, message: str = _INSTALL_HINT, *, dot_path: Path | None = None) -> None:
        super().__init__(message, dot_path=dot_path)


class GraphvizFailed(GraphvizError):
    """`dot` ran and exited with a non-zero status, or was killed by a signal (a crash)."""


class GraphvizTimeout(GraphvizError):
    """`dot` did not finish within the time bound, or the drawing was refused as too large for it."""


class LargeDrawingWarning(UserWarning):
    """Issued before rendering a drawing large enough for `dot` to take a noticeable time."""


# --------------------------------------------------------------------------- labels
def _dot_text(text: str) -> str:
    """`text` as a label string that Graphviz displays exactly as written.

    graphviz's quoting adds the quotes and escapes `"`; the rest is ours. Graphviz reads `\\n`,
    `\\l`, `\\N` ... as escapes and expands HTML entities (&amp; &#65; &alpha;) even in quoted
    labels, so every backslash is doubled and `&` written as `&amp;`. A real newline becomes
    the DOT line break `\\n`; other control characters cannot be drawn (a NUL breaks the
    parser) and are shown as their escape, e.g. \\x00. `nohtml` keeps a label like `<x>` from
    being read as an HTML label; `<>{}|` mean nothing in a quoted label of a box.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = "".join(ch if ch == "\n" or ch >= " " else f"\\x{ord(ch):02x}" for ch in text)
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace("\n", "\\n")
    return graphviz.nohtml(text)


def _cut(text: str) -> str:
    """`text` cut to LABEL_LINES lines of at most LABEL_CHARS characters, an ellipsis marking each cut."""
    lines = text.split("\n")
    cut = [line if len(line) <= LABEL_CHARS else line[: LABEL_CHARS - 1] + "…" for line in lines[:LABEL_LINES]]
    if len(lines) > LABEL_LINES:
        cut[-1] = cut[-1][: LABEL_CHARS - 1] + "…"
    return "\n".join(cut)


def _label_attrs(text: str) -> dict[str, str]:
    """label=, plus tooltip= with the full text when the label had to be cut."""
    shown = _cut(text)
    attrs = {"label": _dot_text(shown)}
    if shown != text:
        attrs["tooltip"] = _dot_text(text)
    return attrs


def _number(x: float) -> str:
    """`x` in NUMBER_FORMAT; -0.0 is shown as 0 (adding 0.0 turns -0.0 into 0.0)."""
    return format(x + 0.0, NUMBER_FORMAT)


def _value_label(label: str, data: float, grad: float, show_grad: bool) -> str:
    lines = [label] if label else []
    lines.append(f"data {_number(data)}")
    if show_grad:
        lines.append(f"grad {_number(grad)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- which nodes
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
            raise TypeError(
                f"group {group!r}: members must be engine.Value objects, got {type(item).__name__}: {item!r}"
            )
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


def _on_paths(order: list[Value], leaf: Value) -> set[Value]:
    """The nodes on some path from `leaf` up to the root (`order` is topological, root last)."""
    reaches = {leaf}
    for v in order:
        if v is not leaf and any(p in reaches for p in v.parents):
            reaches.add(v)
    return reaches


def _is_constant(v: Value) -> bool:
    return not v.parents and not v.label


def draw(
    value: Value,
    *,
    rankdir: str = "LR",
    show_grad: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
    groups: Mapping[str, GroupMembers] | None = None,
    title: str | None = None,
    highlight: Value | None = None,
    timeout: float = RENDER_TIMEOUT_SECONDS,
) -> GraphDrawing:
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
        highlight: a node of the graph; every path from it to `value` is coloured (the paths
            `engine.explain(value, highlight)` lists, whose products sum to its grad).
        timeout: seconds `dot` may take to render (GraphvizTimeout past it).

    Returns:
        A `GraphDrawing`: `.source` is the DOT text; `.save(path)` writes .svg/.png/.pdf/.dot;
        Jupyter displays it as SVG (or as DOT text when `dot` is missing or fails).
    """
    if not isinstance(value, Value):
        raise TypeError(f"draw needs an engine.Value, got {type(value).__name__}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(map(repr, RANKDIRS))}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive int, got {max_nodes!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    if highlight is not None and not isinstance(highlight, Value):
        raise TypeError(f"highlight must be an engine.Value of the graph or None, got {type(highlight).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    order = topological_order(value)  # parents before children; the root is last
    if len(order) > max_nodes:
        kept_set = _keep_closest(value, max_nodes)
        nodes = [v for v in order if v in kept_set]
    else:
        kept_set = None
        nodes = order
    # built only when something is looked up in it (a highlight, groups) or the graph is cut
    in_graph: set[Value] | frozenset[Value] = (
        set(order) if kept_set is not None or highlight is not None or groups else frozenset()
    )
    if highlight is not None and highlight not in in_graph:
        raise ValueError(f"highlight: {highlight!r} is not part of the graph of {value!r}")
    lit = _on_paths(order, highlight) if highlight is not None else set()

    # Node ids. A constant gets one box per use (see the module docstring), made with the edges below.
    vid: dict[Value, str] = {}
    shown: list[Value] = []  # one Value per drawn box (constants aside), in order
    for v in nodes:
        if _is_constant(v) and v is not value:
            continue
        vid[v] = f"v{len(shown)}"
        shown.append(v)
    oid: dict[Value, str] = {}
    for v in nodes:
        if v.parents:
            oid[v] = f"op{len(oid)}"
    truncated = len(order) - len(nodes)
    drawn_constants = {v for v in nodes if _is_constant(v) and v is not value}

    # Edges, and a box per use of a constant: (id, the constant, the gradient through this use, its op).
    uses: list[tuple[str, Value, float, Value]] = []
    cut_ops: list[str] = []
    edges: list[tuple[str, str, bool]] = []
    for v in nodes:
        if v not in oid:
            continue
        op = oid[v]
        for p, partial in zip(v.parents, v.partials):
            if p in drawn_constants:
                use_id = f"v{len(shown) + len(uses)}"
                uses.append((use_id, p, partial * v.grad, v))
                edges.append((use_id, op, p in lit and v in lit))
            elif p in vid:
                edges.append((vid[p], op, p in lit and v in lit))
            elif op not in cut_ops[-1:]:
                cut_ops.append(op)
        edges.append((op, vid[v], v in lit))

    # Group membership: Value -> cluster index. Checked against the whole graph, so a
    # Value from some other graph is reported rather than silently dropped.
    cluster_of: dict[Value, int] = {}
    cluster_names: list[str] = []
    if groups is not None:
        if not isinstance(groups, Mapping):
            raise TypeError(f"groups must be a mapping of name -> Values, got {type(groups).__name__}")
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

    n_nodes = len(shown) + len(uses) + len(oid) + (1 if truncated else 0)
    placeholder_edges = [(PLACEHOLDER_ID, op) for op in cut_ops] if truncated else []
    layout_nodes = _layout_nodes(n_nodes, [(t, h) for t, h, _ in edges] + placeholder_edges)

    def build() -> _BoundedDigraph:
        """The graphviz.Digraph of the counted nodes and edges: the costly part, run only when the text is needed."""
        graph = _BoundedDigraph(
            "G",
            graph_attr={"rankdir": rankdir},
            node_attr={"shape": "box", "fontsize": "10"},
            edge_attr={"arrowsize": "0.6"},
        )
        graph.timeout = float(timeout)
        graph.n_nodes = n_nodes
        graph.layout_nodes = layout_nodes
        if title is not None:
            graph.attr("graph", labelloc="t", fontsize="16", **_label_attrs(title))
        bodies = {-1: graph}
        used = {cluster_of[v] for v in shown if v in cluster_of} | {
            cluster_of[u[3]] for u in uses if u[3] in cluster_of
        }
        for k, name in enumerate(cluster_names):
            if k in used:
                bodies[k] = sub = graphviz.Digraph(name=f"cluster_{k}")
                sub.attr("graph", style="rounded", color="#888888", **_label_attrs(name))
        for v in shown:
            attrs = _label_attrs(_value_label(v.label, v.data, v.grad, show_grad))
            if v is value:
                attrs["penwidth"] = "2"
            elif not v.parents and v.label:
                attrs.update(_INPUT_STYLE)
            if v in lit:
                attrs.update(color=_HIGHLIGHT, penwidth="2", style="filled", fillcolor=_HIGHLIGHT_FILL)
            bodies[cluster_of.get(v, -1)].node(vid[v], **attrs)
        for use_id, c, grad, user in uses:  # beside the op that uses it, in that op's box
            attrs = _label_attrs(_value_label("", c.data, grad, show_grad))
            if c in lit:
                attrs.update(color=_HIGHLIGHT, penwidth="2", style="filled", fillcolor=_HIGHLIGHT_FILL)
            bodies[cluster_of.get(user, -1)].node(use_id, **attrs)
        for v in nodes:
            if v in oid:
                lit_op = {"color": _HIGHLIGHT, "fontcolor": _HIGHLIGHT, "penwidth": "2"} if v in lit else {}
                bodies[cluster_of.get(v, -1)].node(oid[v], **_label_attrs(v.op or "?"), **_OP_STYLE, **lit_op)
        for k, sub in bodies.items():
            if k >= 0:
                graph.subgraph(sub)
        if truncated:
            note = f"… {truncated} more nodes not drawn (raise max_nodes to see them)"
            graph.node(PLACEHOLDER_ID, label=_dot_text(note), shape="note", style="dashed")
            for tail, head in placeholder_edges:
                graph.edge(tail, head, style="dashed")
        for tail, head, on_path in edges:
            if on_path:
                graph.edge(tail, head, color=_HIGHLIGHT, penwidth="2")
            else:
                graph.edge(tail, head)
        return graph

    return GraphDrawing(
        build,
        n_values=len(shown) + len(uses),
        n_ops=len(oid),
        truncated=truncated,
        n_nodes=n_nodes,
        layout_nodes=layout_nodes,
        timeout=float(timeout),
    )


def _layout_nodes(n_nodes: int, edges: list[tuple[str, str]]) -> int:
    """`n_nodes` plus the nodes `dot` adds inside long edges: one per rank an edge crosses beyond the first.

    Ranks as `dot` would roughly assign them: an op or a Value one past the furthest of its inputs
    (the edges come parents first); a node without inputs (a leaf, the placeholder) just before
    its nearest user, where a leaf used once costs nothing and a leaf used far apart (a shared
    weight) spans the distance. O(edges).
    """
    rank: dict[str, int] = {}
    heads: set[str] = set()
    for tail, head in edges:
        heads.add(head)
        rank[head] = max(rank.get(head, 0), rank.get(tail, 0) + 1)
    for tail, head in edges:  # sources sit just before their nearest user
        if tail not in heads:
            rank[tail] = min(rank.get(tail, rank[head] - 1), rank[head] - 1)
    return n_nodes + sum(max(0, rank[head] - rank[tail] - 1) for tail, head in edges)


# --------------------------------------------------------------------------- rendering
def expected_render_seconds(n_nodes: int) -> float:
    """Rough wall-clock seconds `dot -Tsvg` takes on `n_nodes` nodes, from MEASURED_RENDER_SECONDS
    (log-log interpolation; beyond the table, the last segment's power law)."""
    points = MEASURED_RENDER_SECONDS
    if n_nodes <= points[0][0]:
        return points[0][1] * n_nodes / points[0][0]
    for (n0, s0), (n1, s1) in zip(points, points[1:]):
        if n_nodes <= n1 or (n1, s1) == points[-1]:
            slope = math.log(s1 / s0) / math.log(n1 / n0)
            return s0 * (n_nodes / n0) ** slope
    raise AssertionError("unreachable: the loop returns on its last segment")


class _Expired(BaseException):
    """Raised by the SIGALRM handler inside the wait for `dot`; BaseException so nothing on the
    way catches it, and subprocess.run kills the child when it passes through."""


def _pipe_bounded(source: str, fmt: str, timeout: float) -> bytes:
    """`graphviz.pipe("dot", fmt, source)` within `timeout` seconds.

    In the main thread of a POSIX process an interval timer interrupts the wait; the
    exception passes through `subprocess.run`, which kills `dot` (graphviz.pipe runs it that
    way). Elsewhere (another thread, Windows, or a timer someone else has set, e.g. a test
    runner's) the call runs in a helper thread and is abandoned at the bound: the caller gets
    its error in time, `dot` finishes on its own.
    """
    data = source.encode("utf-8", errors="replace")
    main = threading.current_thread() is threading.main_thread()
    if main and hasattr(signal, "setitimer") and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0):

        def expire(signum: int, frame: object) -> None:
            raise _Expired()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return graphviz.pipe("dot", fmt, data, quiet=True)
        except _Expired:
            raise TimeoutError from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["out"] = graphviz.pipe("dot", fmt, data, quiet=True)
        except BaseException as err:  # handed to the waiting thread
            box["err"] = err

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "err" in box:
        raise box["err"]  # type: ignore[misc]
    return box["out"]  # type: ignore[return-value]


def _refuse_if_too_slow(n_nodes: int, timeout: float, layout_nodes: int | None = None) -> float:
    """The expected seconds of `dot` on this drawing; GraphvizTimeout when that is past `timeout`."""
    layout = n_nodes if layout_nodes is None else layout_nodes
    expected = expected_render_seconds(layout)
    if expected > timeout:
        crossing = f" (and {layout - n_nodes:,} more where long edges cross ranks)" if layout > n_nodes else ""
        raise GraphvizTimeout(
            f"refused to render {n_nodes:,} nodes{crossing}: `dot` would take about {expected:.0f} s, more than the "
            f"time bound of {timeout:g} s; draw fewer (max_nodes=) or allow more time (timeout=)"
        )
    return expected


def _cut_message(text: str) -> str:
    """`text` on one line and at most DOT_MESSAGE_CHARS characters (dot's stderr can be megabytes)."""
    line = " ".join(text.split())
    return line if len(line) <= DOT_MESSAGE_CHARS else line[: DOT_MESSAGE_CHARS - 1] + "…"


def _check_format(out: bytes, fmt: str, command: str) -> bytes:
    """`out` when it starts as a `fmt` file does (svg, png, pdf); GraphvizFailed otherwise. Other formats pass."""
    if fmt == "svg":
        ok = b"<svg" in out[:SVG_HEAD_BYTES]
    elif fmt in IMAGE_MAGIC:
        ok = out.startswith(IMAGE_MAGIC[fmt])
    else:
        return out
    if not ok:
        head = _cut_message(out[:60].decode("utf-8", errors="replace")) or "nothing"
        raise GraphvizFailed(
            f"Graphviz {command} exited 0 but did not write {fmt.upper()} (it wrote {len(out):,} bytes starting "
            f"{head!r}); is the `dot` on PATH Graphviz's?"
        )
    return out


def _render(source: str, fmt: str, timeout: float, n_nodes: int, *, layout_nodes: int | None = None) -> bytes:
    """`dot -T<fmt>` on `source`, every failure as one GraphvizError (see the module docstring).

    `layout_nodes` (default `n_nodes`) is what the time estimate counts: the drawn nodes plus
    those `dot` adds inside long edges (`_layout_nodes`)."""
    expected = _refuse_if_too_slow(n_nodes, timeout, layout_nodes)
    if n_nodes > WARN_NODES:
        warnings.warn(
            f"rendering {n_nodes:,} nodes: `dot` will take about {expected:.0f} s (stopped after {timeout:g} s)",
            LargeDrawingWarning,
            stacklevel=2,
        )
    command = f"`dot -T{fmt}`"
    try:
        return _check_format(_pipe_bounded(source, fmt, timeout), fmt, command)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound() from None
    except graphviz.CalledProcessError as err:
        if err.returncode < 0:
            try:
                name = signal.Signals(-err.returncode).name
            except ValueError:
                name = f"signal {-err.returncode}"
            raise GraphvizFailed(f"Graphviz {command} crashed ({name}) on a drawing of {n_nodes:,} nodes") from None
        stderr = (err.stderr or b"").decode("utf-8", errors="replace").strip().splitlines()
        why = f": {_cut_message(stderr[0])}" if stderr else ""
        raise GraphvizFailed(f"Graphviz {command} failed (exit {err.returncode}){why}") from None
    except TimeoutError:
        raise GraphvizTimeout(
            f"Graphviz {command} did not finish within {timeout:g} s on {n_nodes:,} nodes and was stopped; "
            "draw fewer (max_nodes=) or allow more time (timeout=)"
        ) from None
    except (
        OSError
    ) as err:  # on PATH but it cannot be run: not executable, not a program, ... (after TimeoutError, an OSError too)
        where = shutil.which("dot", mode=os.F_OK) or "dot"  # the file on PATH that is not a program
        raise GraphvizNotFound(
            f"Graphviz's `dot` ({where}) could not be run: {err.strerror or err}; "
            + _INSTALL_HINT[_INSTALL_HINT.index("install it") :]
        ) from None


class _BoundedDigraph(graphviz.Digraph):
    """A graphviz.Digraph whose `pipe` (and so its Jupyter display) renders within `timeout`
    seconds and raises GraphvizError on failure."""

    timeout: float = RENDER_TIMEOUT_SECONDS
    n_nodes: int = 0
    layout_nodes: int | None = None

    # `format` shadows the built-in because graphviz.Digraph.pipe names it so and callers pass it by name.
    def pipe(
        self,
        format: str | None = None,  # noqa: A002
        *args: object,
        encoding: str | None = None,
        **kwargs: object,
    ) -> bytes | str:
        out = _render(self.source, format or "svg", self.timeout, self.n_nodes, layout_nodes=self.layout_nodes)
        return out.decode(encoding) if encoding else out


class GraphDrawing:
    """A drawn computation graph: a graphviz.Digraph plus ways to render, save and display it.

    Attributes:
        graph: the `graphviz.Digraph` (its `pipe` bounded by `timeout`), built on first use.
        source: the DOT text.
        n_values: Values drawn (box nodes; a constant once per use).
        n_ops: op nodes drawn.
        truncated: Values of the graph left out by `max_nodes` (0 if none).
        n_nodes: every node drawn (Values, ops, the placeholder).
        layout_nodes: `n_nodes` plus those `dot` adds inside long edges: what the time estimate counts.
    """

    def __init__(
        self,
        graph: _BoundedDigraph | Callable[[], _BoundedDigraph],
        *,
        n_values: int = 0,
        n_ops: int = 0,
        truncated: int = 0,
        n_nodes: int | None = None,
        layout_nodes: int | None = None,
        timeout: float | None = None,
    ) -> None:
        # `graph` is the digraph, or a function that builds it: a drawing too big to render is then
        # refused from its counts alone, before the (linear but slow) graphviz calls are made.
        self._graph = graph if isinstance(graph, graphviz.Digraph) else None
        self._build = None if isinstance(graph, graphviz.Digraph) else graph
        self.n_values = n_values
        self.n_ops = n_ops
        self.truncated = truncated
        self.n_nodes = n_nodes if n_nodes is not None else getattr(graph, "n_nodes", n_values + n_ops)
        self.layout_nodes = (
            layout_nodes if layout_nodes is not None else getattr(graph, "layout_nodes", None) or self.n_nodes
        )
        self.timeout = timeout if timeout is not None else getattr(graph, "timeout", RENDER_TIMEOUT_SECONDS)

    @property
    def graph(self) -> _BoundedDigraph:
        """The `graphviz.Digraph`, built on first use."""
        if self._graph is None:
            assert self._build is not None
            self._graph = self._build()
        return self._graph

    @property
    def source(self) -> str:
        """The DOT text."""
        return self.graph.source

    def __repr__(self) -> str:
        more = f", {self.truncated} not drawn" if self.truncated else ""
        return f"<GraphDrawing: {self.n_values} values, {self.n_ops} ops{more}>"

    def __str__(self) -> str:
        return self.source

    def render(self, fmt: str) -> bytes:
        """The drawing in format `fmt` ("svg", "png", "pdf"), rendered by `dot` (GraphvizError on failure).

        A drawing expected to take longer than its time bound is refused before its DOT text is built."""
        _refuse_if_too_slow(self.n_nodes, self.timeout, self.layout_nodes)
        out = self.graph.pipe(fmt)
        assert isinstance(out, bytes)  # no encoding asked: bytes
        return out

    def svg(self) -> str:
        """The drawing as SVG text (GraphvizError when `dot` is missing or fails)."""
        return self.render("svg").decode("utf-8")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the drawing to `path`, in the format its suffix names (.svg .png .pdf .dot).

        `.dot` writes the DOT text and needs nothing else; the image formats run `dot`. When
        that fails, the DOT text is written beside `path` (same name, .dot) and the
        GraphvizError raised says so (`err.dot_path`). Files are written atomically
        (`engine.atomic.atomic_write`: an old file stays intact on failure). Returns the path.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SAVE_FORMATS:
            what = (
                f"the suffix {path.suffix!r} is not a known format"
                if path.suffix
                else "the file name has no suffix to say the format"
            )
            raise ValueError(f"cannot save {str(path)!r}: {what}; use one of {' '.join(SAVE_FORMATS)}")
        if suffix == ".dot":
            atomic_write(path, self.source.encode("utf-8", errors="replace"))
            return path
        if not path.parent.is_dir():
            atomic_write(path, b"")  # raises the one clear error for a missing folder
        try:
            payload = self.render(suffix[1:])
        except GraphvizError as err:
            dot_path = self.save(path.with_suffix(".dot"))
            raise type(err)(
                f"{str(err).rstrip('.')}; wrote the DOT text to {dot_path} instead", dot_path=dot_path
            ) from None
        atomic_write(path, payload)
        return path

    def save_or_dot(self, path: str | os.PathLike, echo: Callable[[str], None] = print) -> Path:
        """`save(path)`, or when `dot` is missing or fails, the .dot beside it and one line to
        `echo` saying why. For runs that should go on without a picture (the tour, training)."""
        try:
            return self.save(path)
        except GraphvizError as err:
            echo(f"(no picture: {err})")
            assert err.dot_path is not None
            return err.dot_path

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, **_: object
    ) -> dict:
        """Jupyter display, by the digraph's own; the DOT text (after a comment saying why) when
        `dot` is missing or fails."""
        try:
            _refuse_if_too_slow(self.n_nodes, self.timeout, self.layout_nodes)
            return self.graph._repr_mimebundle_(include, exclude)
        except GraphvizError as err:
            return {"text/plain": f"// no picture: {err}\n{self.source}"}
