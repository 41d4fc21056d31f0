"""Tests for viz.draw: DOT structure, escaping (parsed by the real `dot`), saving, the node
limit, groups, and behaviour without Graphviz."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine import RunError, Value
from viz import GraphvizError, GraphvizFailed, GraphvizNotFound, GraphvizTimeout, LargeDrawingWarning, draw
from viz.draw import LABEL_CHARS, LABEL_LINES, RENDER_TIMEOUT_SECONDS, WARN_NODES, expected_render_seconds

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")

# A chain this long is what a small transformer's scalar graph reaches; drawing it must
# stay O(n) and produce text bounded by max_nodes.
BIG_CHAIN_OPS = 100_000
# Generous wall-clock bound for walking a 100k-op graph (it takes well under a second on
# a 2-core machine); it only catches a hang or a quadratic walk, not a slowdown.
BIG_DRAW_SECONDS = 30.0
# DOT text per drawn node is under ~100 characters; 300 leaves room for edges.
MAX_CHARS_PER_NODE = 300
#: a node whose label is cut to LABEL_CHARS is a few hundred points wide; 1,000 pt is far below
#: the 32,766-pixel picture an uncut 5,000-character label made.
MAX_NODE_WIDTH_PT = 1000.0

# graphviz quotes a label only when it is not a plain DOT id (`tanh` stays bare)
NODE_RE = re.compile(r"^\s*(v\d+|op\d+|more) \[label=(?:\"((?:[^\"\\]|\\.)*)\"|(\w+))", re.M)
EDGE_RE = re.compile(r"^\s*(\w+) -> (\w+)", re.M)


def _unescape(text: str) -> str:
    """Undo the quoting of a DOT label as written by viz.draw (`\\n` line break, `\\"`, `\\\\`)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse(source: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Node id -> label text, and the list of edges, of a drawing's DOT source."""
    nodes = {
        m.group(1): _unescape(m.group(2) if m.group(2) is not None else m.group(3)) for m in NODE_RE.finditer(source)
    }
    edges = [(m.group(1), m.group(2)) for m in EDGE_RE.finditer(source)]
    return nodes, edges


def svg_texts(svg: str) -> list[str]:
    """All text lines an SVG shows (each <text> element's content)."""
    root = ET.fromstring(svg)
    return [el.text or "" for el in root.iter() if el.tag.endswith("}text") or el.tag == "text"]


def small_graph() -> tuple[Value, Value, Value, Value]:
    x = Value(2.0, "x")
    y = Value(-3.0, "y")
    xy = x * y
    xy.label = "xy"
    out = (xy + 1.5).tanh()
    out.label = "out"
    out.backward()
    return x, y, xy, out


# --------------------------------------------------------------------------- structure
def test_one_node_per_value_and_per_op_with_edges() -> None:
    x, y, xy, out = small_graph()
    nodes, edges = parse(draw(out).source)
    values = {k: v for k, v in nodes.items() if k.startswith("v")}
    ops = {k: v for k, v in nodes.items() if k.startswith("op")}
    # Values: x, y, xy, the constant 1.5, xy + 1.5, out.  Ops: *, +, tanh.
    assert len(values) == 6
    assert sorted(ops.values()) == sorted(["*", "+", "tanh"])
    # Ids are sequential, never Python id()s.
    assert set(values) == {f"v{i}" for i in range(6)}
    assert set(ops) == {f"op{i}" for i in range(3)}

    by_first_line = {label.split("\n")[0]: nid for nid, label in values.items()}
    mul = next(k for k, v in ops.items() if v == "*")
    tanh = next(k for k, v in ops.items() if v == "tanh")
    assert (by_first_line["x"], mul) in edges
    assert (by_first_line["y"], mul) in edges
    assert (mul, by_first_line["xy"]) in edges
    assert (tanh, by_first_line["out"]) in edges
    # Every op has exactly one outgoing edge, to a Value; every Value but leaves has one op.
    for op in ops:
        outs = [b for a, b in edges if a == op]
        assert len(outs) == 1 and outs[0].startswith("v")
    assert len(edges) == 2 + 2 + 1 + 3  # * and + have two operands, tanh one; 3 op->value edges


def test_labels_show_label_data_and_grad() -> None:
    x, y, xy, out = small_graph()
    nodes, _ = parse(draw(out).source)
    labels = set(nodes.values())
    assert f"x\ndata 2\ngrad {x.grad:.4g}" in labels
    assert f"xy\ndata -6\ngrad {xy.grad:.4g}" in labels
    # The constant 1.5 is a leaf without a label: data and grad only.
    assert f"data 1.5\ngrad {xy.grad:.4g}" in labels


def test_numbers_are_compact() -> None:
    a = Value(3.14159265358979, "a")
    b = a * 1e-10
    nodes, _ = parse(draw(b).source)
    labels = "\n".join(nodes.values())
    assert "data 3.142" in labels
    assert "data 1e-10" in labels
    assert "3.14159" not in labels


def test_show_grad_false_hides_grads() -> None:
    _, _, _, out = small_graph()
    source = draw(out, show_grad=False).source
    assert "grad" not in source
    assert "data 2" in source


def test_repeated_operand_gives_two_edges() -> None:
    x = Value(3.0, "x")
    sq = x * x
    nodes, edges = parse(draw(sq).source)
    assert edges.count(("v0", "op0")) == 2


def test_rankdir() -> None:
    _, _, _, out = small_graph()
    assert "rankdir=LR" in draw(out).source
    assert "rankdir=TB" in draw(out, rankdir="TB").source
    with pytest.raises(ValueError, match="'LR', 'TB'"):
        draw(out, rankdir="RL")


def test_same_graph_same_text() -> None:
    # Sequential ids: two separately built identical graphs draw identically.
    assert draw(small_graph()[3]).source == draw(small_graph()[3]).source


def test_title_and_bad_arguments() -> None:
    _, _, _, out = small_graph()
    assert 'label="my graph"' in draw(out, title="my graph").source
    with pytest.raises(TypeError, match="engine.Value"):
        draw(1.0)  # type: ignore[arg-type]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_nodes"):
            draw(out, max_nodes=bad)  # type: ignore[arg-type]


def test_repr() -> None:
    _, _, _, out = small_graph()
    text = repr(draw(out))
    assert "6 values" in text and "3 ops" in text


# --------------------------------------------------------------------------- escaping
NASTY_LABELS = [
    'a"b',
    "<x>",
    "{y}",
    "c\\d",
    "line1\nline2",
    "|",
    "end\\",
    "\\n literal",
    "a & b",
    "&amp; &lt;",
    "&#65;",
    "&alpha;",
]


@needs_dot
def test_control_characters_are_shown_escaped_and_never_break_the_dot() -> None:
    a = Value(1.0, "nul\x00here\x07")
    texts = svg_texts(draw(a).svg())
    assert any("nul\\x00here\\x07" in t for t in texts), texts


def test_escaping_in_source_text() -> None:
    v = Value(1.0, 'a"b\\c\nd')
    source = draw(v).source
    assert 'label="a\\"b\\\\c\\nd\\ndata 1' in source


@needs_dot
@pytest.mark.parametrize("label", NASTY_LABELS)
def test_nasty_label_renders_as_written(label: str) -> None:
    a = Value(1.0, label)
    out = a * 2.0
    out.label = label
    svg = draw(out, title=label, groups={label: [a]}).svg()
    texts = svg_texts(svg)  # parsing the SVG also proves it is well-formed XML
    for line in label.split("\n"):
        # once for each Value, once for the title and once for the group's caption
        assert texts.count(line) >= 4, (line, texts)


# --------------------------------------------------------------------------- saving
def test_save_dot_without_graphviz_needed(tmp_path: Path) -> None:
    _, _, _, out = small_graph()
    d = draw(out)
    path = d.save(tmp_path / "g.dot")
    assert path == tmp_path / "g.dot"
    assert path.read_text(encoding="utf-8") == d.source


@needs_dot
@pytest.mark.parametrize(
    "suffix, check",
    [
        (".png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
        (".pdf", lambda b: b.startswith(b"%PDF-")),
        (".svg", lambda b: b.lstrip().startswith(b"<?xml") and b"<svg" in b),
        (".SVG", lambda b: b"<svg" in b),
    ],
)
def test_save_image_formats(tmp_path: Path, suffix: str, check) -> None:
    _, _, _, out = small_graph()
    path = draw(out).save(str(tmp_path / f"g{suffix}"))
    assert isinstance(path, Path)
    assert check(path.read_bytes())
    # Atomic write: only the target is left behind, no temp file.
    assert [p.name for p in tmp_path.iterdir()] == [f"g{suffix}"]


@needs_dot
def test_save_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "g.svg"
    target.write_text("old")
    draw(small_graph()[3]).save(target)
    assert "<svg" in target.read_text()


def test_unknown_suffix(tmp_path: Path) -> None:
    d = draw(small_graph()[3])
    for name in ("g.jpg", "g"):
        with pytest.raises(ValueError) as info:
            d.save(tmp_path / name)
        message = str(info.value)
        for allowed in (".svg", ".png", ".pdf", ".dot"):
            assert allowed in message
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_directory(tmp_path: Path) -> None:
    d = draw(small_graph()[3])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        d.save(tmp_path / "no" / "such" / "g.dot")


@needs_dot
def test_jupyter_bundle_is_svg() -> None:
    bundle = draw(small_graph()[3])._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"]
    assert "<svg" in bundle["image/svg+xml"]


# --------------------------------------------------------------------------- node limit
def test_node_limit_on_a_100k_op_chain() -> None:
    v = Value(0.5, "x")
    for i in range(BIG_CHAIN_OPS):
        v = v.tanh() if i % 2 else v * 1.0001  # each * also adds a constant leaf
    total = 1 + BIG_CHAIN_OPS + BIG_CHAIN_OPS // 2
    max_nodes = 400
    start = time.perf_counter()
    d = draw(v, max_nodes=max_nodes)
    elapsed = time.perf_counter() - start
    assert elapsed < BIG_DRAW_SECONDS
    assert d.truncated == total - max_nodes
    nodes, edges = parse(d.source)
    # max_nodes Values kept; the 1.0001 constants among them one box per use, each beside its op
    constants = [k for k, label in nodes.items() if label.startswith("data 1\n")]
    assert len(constants) == d.n_ops // 2  # every other op (the *) brought one constant
    assert all(sum(tail == c for tail, _ in edges) == 1 for c in constants)  # no hub: one edge out of each
    assert sum(k.startswith("v") for k in nodes) == d.n_values == max_nodes
    assert sum(k.startswith("op") for k in nodes) <= max_nodes
    assert len(d.source) < MAX_CHARS_PER_NODE * max_nodes
    assert f"… {total - max_nodes} more nodes not drawn (raise max_nodes to see them)" in nodes["more"]
    # The placeholder stands where the cut was: in a chain, one op lost its operand.
    cut = [b for a, b in edges if a == "more"]
    assert len(cut) == 1 and cut[0].startswith("op")


def test_node_limit_keeps_the_nodes_closest_to_the_output() -> None:
    depth = 20
    v = Value(0.1, "n0")
    for i in range(1, depth + 1):
        v = v.tanh()
        v.label = f"n{i}"
    d = draw(v, max_nodes=5)
    assert d.truncated == depth + 1 - 5
    nodes, edges = parse(d.source)
    kept = sorted(label.split("\n")[0] for k, label in nodes.items() if k.startswith("v"))
    assert kept == sorted(f"n{i}" for i in range(depth - 4, depth + 1))
    # n16's op lost its operand n15: the placeholder points at that op.
    first = next(k for k, label in nodes.items() if label.startswith("n16\n"))
    cut_op = next(a for a, b in edges if b == first)
    assert ("more", cut_op) in edges
    assert "16 more nodes not drawn" in nodes["more"]


def test_no_placeholder_at_the_limit() -> None:
    _, _, _, out = small_graph()
    d = draw(out, max_nodes=6)
    assert d.truncated == 0
    assert "more" not in parse(d.source)[0]
    assert draw(out, max_nodes=5).truncated == 1


# --------------------------------------------------------------------------- groups
def test_groups_become_clusters() -> None:
    x, y, xy, out = small_graph()
    source = draw(out, groups={"inputs": [x, [y]], "product": xy}).source
    blocks = re.findall(r"subgraph (cluster_\d+) \{(.*?)\n\s*\}", source, re.S)
    assert [name for name, _ in blocks] == ["cluster_0", "cluster_1"]
    inputs, product = blocks[0][1], blocks[1][1]
    assert "label=inputs" in inputs  # graphviz leaves a plain id unquoted
    assert inputs.count("[label=") == 2  # x and y (leaves, no op nodes)
    assert "label=product" in product
    assert 'label="*"' in product  # the op producing xy is drawn with it
    assert "xy\\ndata" in product


def test_groups_errors() -> None:
    _, _, xy, out = small_graph()
    with pytest.raises(ValueError, match="not part of the drawn graph"):
        draw(out, groups={"stranger": [Value(1.0)]})
    with pytest.raises(TypeError, match="engine.Value"):
        draw(out, groups={"numbers": [1.0]})
    with pytest.raises(TypeError, match="mapping"):
        draw(out, groups=[xy])  # type: ignore[arg-type]


def test_groups_skip_values_cut_by_the_limit() -> None:
    v = Value(0.1, "n0")
    first = v
    for _ in range(10):
        v = v.tanh()
    source = draw(v, max_nodes=3, groups={"start": [first]}).source
    assert "cluster" not in source


@needs_dot
def test_attention_like_groups_render() -> None:
    q = [Value(0.1 * i, f"q{i}") for i in range(3)]
    k = [Value(0.2 * i, f"k{i}") for i in range(3)]
    scores = [qi * ki for qi, ki in zip(q, k)]
    total = scores[0] + scores[1] + scores[2]
    svg = draw(total, groups={"Q": q, "K": k, "scores": scores}).svg()
    texts = svg_texts(svg)
    assert {"Q", "K", "scores"} <= set(texts)
    assert svg.count('class="cluster"') == 3


# --------------------------------------------------------------------------- without Graphviz
def test_without_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    d = draw(small_graph()[3])

    with pytest.raises(GraphvizNotFound) as info:
        d.save(tmp_path / "g.svg")
    err = info.value
    assert isinstance(err, RunError) and isinstance(err, GraphvizError)
    message = str(err)
    assert "\n" not in message
    for command in ("apt-get install graphviz", "brew install graphviz", "conda install -c conda-forge graphviz"):
        assert command in message
    # No chained traceback noise.
    assert err.__cause__ is None and err.__suppress_context__
    # The fallback: the DOT text beside the requested file, and the message says where.
    assert not (tmp_path / "g.svg").exists()
    assert err.dot_path == tmp_path / "g.dot" and str(err.dot_path) in message
    assert err.dot_path.read_text(encoding="utf-8") == d.source

    with pytest.raises(GraphvizNotFound):
        d.svg()
    bundle = d._repr_mimebundle_()
    assert list(bundle) == ["text/plain"] and bundle["text/plain"].endswith(d.source)


# --------------------------------------------------------------------------- a dot that fails
FAKE_DOTS = {
    "exit": (
        "#!/bin/sh\necho 'Error: <stdin>: syntax error in line 1' >&2\nexit 3\n",
        GraphvizFailed,
        "failed (exit 3): Error",
    ),
    "crash": ("#!/bin/sh\nkill -SEGV $$\n", GraphvizFailed, "crashed (SIGSEGV)"),
    # writes its pid beside itself, so the test can see it was stopped
    "hang": (
        f'#!/bin/sh\necho $$ >> "$0.pids"\nexec {shutil.which("sleep") or "/bin/sleep"} 60\n',
        GraphvizTimeout,
        "did not finish within",
    ),
}
#: the time bound given to a hanging fake `dot`, and the slack allowed on top for stopping it.
FAKE_TIMEOUT_SECONDS = 1.0
STOP_SLACK_SECONDS = 3.0


def fake_dot(folder: Path, script: str) -> Path:
    """A `dot` on a PATH of its own that runs `script` (a failing Graphviz)."""
    folder.mkdir(exist_ok=True)
    exe = folder / "dot"
    exe.write_text(script)
    exe.chmod(0o755)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FAKE_DOTS))
def test_a_failing_dot_is_one_message_and_the_dot_text_is_saved(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, error, words = FAKE_DOTS[kind]
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", script)))
    x = Value(1.0, "x")
    d = draw(x * x, timeout=FAKE_TIMEOUT_SECONDS)
    start = time.perf_counter()
    with pytest.raises(error) as info:
        d.save(tmp_path / "g.png")
    assert time.perf_counter() - start < FAKE_TIMEOUT_SECONDS + STOP_SLACK_SECONDS
    message = str(info.value)
    assert words in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert not (tmp_path / "g.png").exists()
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == d.source

    lines: list[str] = []
    assert d.save_or_dot(tmp_path / "h.svg", lines.append) == tmp_path / "h.dot"
    assert len(lines) == 1 and words in lines[0]
    assert d._repr_mimebundle_()["text/plain"].endswith(d.source)
    if kind == "hang":  # in the main thread the timer's exception makes subprocess.run kill `dot`
        pids = [int(line) for line in (tmp_path / "bin" / "dot.pids").read_text().split()]
        assert len(pids) == 3
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_the_time_bound_holds_outside_the_main_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the interval timer (not the main thread) the wait is abandoned at the bound."""
    # this `dot` is abandoned, not stopped: it sleeps only a little past the bound
    sleeper = f"#!/bin/sh\nexec {shutil.which('sleep') or '/bin/sleep'} {FAKE_TIMEOUT_SECONDS + STOP_SLACK_SECONDS}\n"
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", sleeper)))
    d = draw(Value(1.0, "x") * 2.0, timeout=FAKE_TIMEOUT_SECONDS)
    caught: list[BaseException] = []

    def work() -> None:
        try:
            d.svg()
        except BaseException as err:  # handed back to the test thread
            caught.append(err)

    start = time.perf_counter()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(FAKE_TIMEOUT_SECONDS + STOP_SLACK_SECONDS)
    assert not thread.is_alive() and time.perf_counter() - start < FAKE_TIMEOUT_SECONDS + STOP_SLACK_SECONDS
    assert len(caught) == 1 and isinstance(caught[0], GraphvizTimeout)


def test_graphviz_errors_are_run_errors_for_the_command_line() -> None:
    for cls in (GraphvizNotFound, GraphvizFailed, GraphvizTimeout):
        assert issubclass(cls, GraphvizError) and issubclass(cls, RunError) and issubclass(cls, RuntimeError)


# --------------------------------------------------------------------------- large graphs
def big_graph(n_values: int) -> Value:
    """About `n_values` Values of a dense, MLP-like graph (wide and tangled, hard to lay out)."""
    rng = random.Random(0)
    layer = [Value(rng.uniform(-1, 1), f"x{i}") for i in range(4)]
    count = len(layer)
    while count < n_values:
        new = []
        for _ in range(8):
            s = Value(0.0, f"b{count}")
            for x in layer:
                s = s + x * Value(rng.uniform(-1, 1), f"w{count}")
                count += 3
            new.append(s.tanh())
            count += 1
        layer = new
    return sum(layer[1:], layer[0])


#: issue 14: 10,000 values took dot 120-134 s; within the default bound (plus the time to walk
#: and write the graph) draw must return or refuse.
BIG_VALUES = 10_000
WALK_SLACK_SECONDS = 10.0


def test_a_10k_value_drawing_returns_or_refuses_within_the_bound(tmp_path: Path) -> None:
    root = big_graph(BIG_VALUES)
    start = time.perf_counter()
    d = draw(root, max_nodes=2 * BIG_VALUES)
    assert d.truncated == 0 and d.n_values >= BIG_VALUES * 0.5
    try:
        d.save(tmp_path / "big.svg")
        outcome = "rendered"
    except GraphvizTimeout as err:
        outcome = str(err)
        assert "max_nodes" in outcome and "timeout" in outcome and "\n" not in outcome
        assert (tmp_path / "big.dot").exists()
    elapsed = time.perf_counter() - start
    assert elapsed < RENDER_TIMEOUT_SECONDS + WALK_SLACK_SECONDS, (elapsed, outcome)


def test_a_warning_names_the_node_count_and_the_expected_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", "#!/bin/sh\ncat >/dev/null\necho '<svg/>'\n")))
    d = draw(big_graph(2 * WARN_NODES), max_nodes=4 * WARN_NODES, timeout=10_000)
    with pytest.warns(LargeDrawingWarning) as record:
        assert "<svg/>" in d.svg()
    message = str(record[0].message)
    assert re.search(r"rendering [\d,]+ nodes: `dot` will take about \d+ s", message), message
    assert expected_render_seconds(20_000) > expected_render_seconds(2_000) > expected_render_seconds(400)


def test_long_labels_are_cut_with_an_ellipsis_and_kept_whole_in_the_tooltip() -> None:
    long = "x" * 5000
    d = draw(Value(1.0, long))
    nodes, _ = parse(d.source)
    first = nodes["v0"].split("\n")[0]
    assert len(first) == LABEL_CHARS and first.endswith("…")
    assert f'tooltip="{long}\\ndata 1' in d.source
    many = "\n".join(f"line {i}" for i in range(50))
    assert len(parse(draw(Value(1.0, many)).source)[0]["v0"].split("\n")) == LABEL_LINES


@needs_dot
def test_a_long_label_gives_a_picture_of_readable_width() -> None:
    svg = draw(Value(1.0, "y" * 5000)).svg()
    width = float(re.search(r'<svg width="([\d.]+)pt', svg).group(1))
    assert width < MAX_NODE_WIDTH_PT, width


def test_a_constant_is_drawn_once_per_use_with_the_gradient_through_that_use() -> None:
    """One box per number was a hub that `dot` lays out slowly; now a box per use, each with its grad."""
    x = Value(0.5, "x")
    y = 2.0 * x + 2.0 * x * x + 2.0
    y.backward()
    d = draw(y)
    nodes, edges = parse(d.source)
    twos = sorted(label for label in nodes.values() if label.startswith("data 2\n"))
    # d(y)/d(each 2.0): x = 0.5 in 2x, x*x = 0.25 in (2x)x, 1 in + 2.0 (they add up to the old shared box's 1.75)
    assert twos == ["data 2\ngrad 0.25", "data 2\ngrad 0.5", "data 2\ngrad 1"]
    shared = Value(3.0)  # one unlabelled Value used twice: a box per use as well, each with its own share
    z = shared * x + shared
    z.backward()
    threes = sorted(label for label in parse(draw(z).source)[0].values() if label.startswith("data 3\n"))
    assert threes == ["data 3\ngrad 0.5", "data 3\ngrad 1"] and shared.grad == 1.5


def test_no_minus_zero() -> None:
    z = Value(-0.0, "z")
    out = z * 1.0
    out.backward()
    assert "-0" not in draw(out).source


# --------------------------------------------------------------------------- highlight
def test_highlight_colours_every_path_from_the_leaf_and_nothing_else() -> None:
    x, y, xy, out = small_graph()
    d = draw(out, highlight=x)
    lit = {m.group(1) for m in re.finditer(r"^\s*(\w+) \[.*color=\"#d93025\"", d.source, re.M)}
    nodes, _ = parse(d.source)
    labels = {nodes[n].split("\n")[0] for n in lit}
    assert {"x", "xy", "out", "*", "+", "tanh"} <= labels and "y" not in labels
    lit_edges = re.findall(r"^\s*(\w+) -> (\w+) \[color", d.source, re.M)
    assert len(lit_edges) == 6  # x->*, *->xy, xy->+, +->v, v->tanh, tanh->out
    with pytest.raises(ValueError, match="not part of the graph"):
        draw(out, highlight=Value(1.0))


def test_import_pulls_in_no_plotting_or_ml_library() -> None:
    code = "import sys, viz; print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    import viz

    assert {"draw", "GraphDrawing", "GraphvizError", "GraphvizNotFound", "GraphvizFailed", "GraphvizTimeout"} <= set(
        viz.__all__
    )
