"""viz.draw against what broke it: a hub node (one Value used by every step of a chain), a drawing
far too big for its time bound, and a `dot` that is not executable, prints garbage, or floods stderr."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import graphviz
import pytest

from engine import Value
from viz import GraphvizFailed, GraphvizNotFound, GraphvizTimeout, draw
from viz.draw import DOT_MESSAGE_CHARS

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
#: the issue's chain: 50,000 ops, every other one `v * 1.0001` (a new constant leaf each time)
HUB_CHAIN_OPS = 50_000
#: steps of a chain that uses one labelled weight `w` at every step: a hub no drawing rule can split
SHARED_WEIGHT_STEPS = 200
#: room for the words around dot's cut stderr in one message
MESSAGE_WORDS_CHARS = 200


def chain_with_constants(ops: int) -> Value:
    v = Value(0.5, "x")
    for i in range(ops):
        v = v.tanh() if i % 2 else v * 1.0001
    return v


def fake_dot(folder: Path, body: str, *, executable: bool = True) -> str:
    """A folder holding a `dot` (a Python script) and nothing else, for PATH."""
    folder.mkdir()
    exe = folder / "dot"
    exe.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.buffer.read()\n{body}\n")
    exe.chmod(0o755 if executable else 0o644)
    return str(folder)


def test_a_chain_that_uses_a_constant_at_every_step_is_drawn_without_a_hub() -> None:
    """The default draw of the issue's chain hit the 30 s bound on 536 nodes: 134 edges left one shared '1.0001' box."""
    d = draw(chain_with_constants(HUB_CHAIN_OPS))
    tails = [line.split(" -> ")[0].strip() for line in d.source.splitlines() if " -> " in line]
    assert max(tails.count(t) for t in set(tails)) == 1  # every box feeds one op: nothing for dot to route far
    assert d.layout_nodes == d.n_nodes  # so no node is added inside a long edge either


@needs_dot
def test_the_chain_renders(tmp_path: Path) -> None:
    path = draw(chain_with_constants(HUB_CHAIN_OPS)).save(tmp_path / "chain.svg")
    assert b"<svg" in path.read_bytes()[:4096]


def test_a_weight_shared_by_every_step_counts_its_long_edges_and_is_refused_without_running_dot(
    tmp_path: Path, monkeypatch
) -> None:
    """Its drawn nodes are few (800) but dot adds one per rank each of w's edges crosses (78,804 here)."""
    ran = tmp_path / "dot ran"
    monkeypatch.setenv("PATH", fake_dot(tmp_path / "bin", f"open({str(ran)!r}, 'w').close()\nprint('<svg/>')"))
    w, v = Value(0.9, "w"), Value(0.5, "x")
    for _ in range(SHARED_WEIGHT_STEPS):
        v = (w * v).tanh()
    d = draw(v)
    assert d.layout_nodes > 10 * d.n_nodes
    with pytest.raises(
        GraphvizTimeout, match=r"refused to render 800 nodes \(and [\d,]+ more where long edges cross ranks\)"
    ):
        d.svg()
    assert not ran.exists()


def test_a_drawing_too_big_for_its_bound_is_refused_before_its_text_is_built(monkeypatch) -> None:
    """`draw(max_nodes=100000)` built the whole DOT text (104 s in the issue) before the refusal."""
    built: list[str] = []
    real_node = graphviz.Digraph.node
    monkeypatch.setattr(
        graphviz.Digraph, "node", lambda self, name, *a, **k: (built.append(name), real_node(self, name, *a, **k))
    )
    d = draw(chain_with_constants(10_000), max_nodes=100_000, timeout=1.0)
    assert d.n_nodes == 25_001  # 15,001 Values (5,000 of them constants) and 10,000 ops
    with pytest.raises(GraphvizTimeout, match="refused to render 25,001 nodes"):
        d.render("svg")
    with pytest.raises(GraphvizTimeout, match="refused"):
        d.render("png")
    assert built == [] and d.truncated == 0
    assert "no picture: refused" in d._repr_mimebundle_()["text/plain"]  # the text is still there on request
    assert len(built) == d.n_nodes


def test_a_dot_that_cannot_be_run_is_one_line_and_the_dot_text_is_saved(tmp_path: Path, monkeypatch) -> None:
    """It gave "I/O error: [Errno 13]" and no .dot."""
    folder = fake_dot(tmp_path / "bin", "print('<svg/>')", executable=False)
    monkeypatch.setenv("PATH", folder)
    d = draw(Value(1.0, "x") * 2.0)
    with pytest.raises(GraphvizNotFound) as info:
        d.save(tmp_path / "g.svg")
    message = str(info.value)
    assert (
        "\n" not in message
        and f"`dot` ({folder}/dot) could not be run" in message
        and "apt-get install graphviz" in message
    )
    assert not (tmp_path / "g.svg").exists() and (tmp_path / "g.dot").read_text() == d.source


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_a_dot_that_prints_garbage_and_exits_0_is_not_saved_as_a_picture(fmt: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", fake_dot(tmp_path / "bin", "sys.stdout.write('garbage' * 1000)"))
    d = draw(Value(1.0, "x") * 2.0)
    with pytest.raises(
        GraphvizFailed, match=rf"exited 0 but did not write {fmt.upper()} \(it wrote 7,000 bytes starting 'garbagegarb"
    ):
        d.save(tmp_path / f"g.{fmt}")
    assert not (tmp_path / f"g.{fmt}").exists() and (tmp_path / "g.dot").exists()


def test_dots_stderr_is_cut_to_a_line_of_sane_length(tmp_path: Path, monkeypatch) -> None:
    """A `dot` that printed 5 MB on one line of stderr was echoed whole."""
    monkeypatch.setenv("PATH", fake_dot(tmp_path / "bin", "sys.stderr.write('Error: ' + 'x' * 5_000_000)\nsys.exit(1)"))
    with pytest.raises(GraphvizFailed) as info:
        draw(Value(1.0, "x") * 2.0).svg()
    message = str(info.value)
    assert message.startswith("Graphviz `dot -Tsvg` failed (exit 1): Error: xxx") and message.endswith("x…")
    assert len(message) < DOT_MESSAGE_CHARS + MESSAGE_WORDS_CHARS
