"""viz.explore's Python side: the replayed steps, their numbers, the folding, the painted comparison,
the page's self-containment, and the step table when Graphviz's `dot` is missing.

The browser side (the page actually stepping) is tests/viz/test_explore_browser.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from explore_graphs import chain_graph, mlp_graph

from engine import Value, cross_entropy, dot, rms_norm, softmax, total
from engine.expr import build_expression
from models.zoo.neuron import NAMES, neuron_graph, neuron_manual_grad
from viz import Explorer, ExploreRefused, explore
from viz.explore import INSTALL_LINE, LOCAL_DERIVATIVES
from viz.explore.record import count_nodes, record


def _fused_graph() -> tuple[Value, list[Value]]:
    """Every fused op and a node used twice: softmax, rms_norm, cross_entropy, dot, total, x * x."""
    xs = [Value(v, f"x[{i}]") for i, v in enumerate((0.3, -1.2, 0.7))]
    gs = [Value(v, f"g[{i}]") for i, v in enumerate((1.1, 0.9, -0.4))]
    s = softmax(xs, scale=0.5)
    r = rms_norm(s, gs, eps=1e-5)
    loss = cross_entropy(r, 1) + dot(xs, gs) + total(r) * xs[0] * xs[0]
    loss.label = "L"
    return loss, xs + gs


# ------------------------------------------------------------------ steps and their numbers
def test_neuron_steps_are_forward_per_op_then_seed_then_backward_per_edge() -> None:
    o, _ = neuron_graph()
    e = explore(o)
    rec = e.recording
    ops = [n for n in rec.nodes if n.kind == "op"]
    kinds = [s.kind for s in rec.steps]
    assert kinds == ["forward"] * len(ops) + ["seed"] + ["backward"] * len(rec.edges)
    assert len(ops) == 5 and len(rec.edges) == 9 and e.n_steps == 15
    assert [rec.nodes[s.node].name for s in rec.steps[:5]] == ["x1*w1", "x2*w2", "x1*w1 + x2*w2", "n", "o"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: neuron_graph()[0],
        lambda: _fused_graph()[0],
        lambda: mlp_graph()[0],
        lambda: build_expression("x*x*y + exp(x/y) - x", {"x": 0.7, "y": -1.3})[0],
    ],
    ids=["neuron", "fused-ops", "mlp", "expression"],
)
def test_replayed_numbers_equal_the_engine_data_and_grad_to_the_last_bit(build) -> None:
    root = build()
    rec = record(root)
    for v in rec.values:  # some builders ran backward already, and leaves accumulate: one clean pass
        v.grad = 0.0
    root.backward()
    assert [n.data for n in rec.nodes] == [v.data for v in rec.values]
    assert rec.grads == [v.grad for v in rec.values]


def test_explored_before_backward_shows_the_grads_of_after_and_touches_no_grad() -> None:
    x = Value(3.0, "x")
    y = x * x + x  # x used three times: three contributions arrive at x
    y.label = "y"
    before = explore(y)
    assert x.grad == 0.0 and y.grad == 0.0  # nothing written into the graph
    y.backward()
    after = explore(y)
    assert before.recording.grads == after.recording.grads == [v.grad for v in after.recording.values]
    arrivals = [
        s for s in before.recording.steps if s.kind == "backward" and before.recording.edges[s.edge].parent == 0
    ]
    assert [(s.before, s.after) for s in arrivals] == [
        (0.0, 1.0),
        (1.0, 4.0),
        (4.0, 7.0),
    ]  # d/dx (x^2 + x) = 2x + 1 = 7


def test_a_step_states_its_arithmetic_with_the_numbers() -> None:
    o, _ = neuron_graph()
    steps = explore(o).recording.steps
    assert steps[4].text == "o = tanh(n) = tanh(0.881374) = 0.707107"
    assert steps[5].text == "o.grad = 1  (∂o/∂o)"
    assert steps[6].text == "n.grad += ∂o/∂n * o.grad = 0.5 * 1 = 0.5;  n.grad: 0 -> 0.5"


def test_the_formula_table_knows_every_op_the_engine_builds() -> None:
    root, _ = _fused_graph()
    x = Value(0.5, "x")
    ops = [
        x + 1,
        x - 1,
        x * 2,
        x / 2,
        x ** Value(2.0),
        -x,
        abs(x),
        x.exp(),
        x.log(),
        x.sqrt(),
        x.tanh(),
        x.sigmoid(),
        x.relu(),
        x.erf(),
    ]
    names = {v.op for v in ops} | {n.op for n in record(root).nodes if n.op}
    assert names <= set(LOCAL_DERIVATIVES), names - set(LOCAL_DERIVATIVES)


# ------------------------------------------------------------------ folding
def test_mlp_folds_into_its_blocks_and_the_counts_add_up() -> None:
    loss, blocks = mlp_graph()
    e = explore(loss, blocks=blocks)
    names = [g.name for g in e.groups]
    assert names == list(blocks)
    members = [i for g in e.groups for i in g.members]
    assert sorted(members) == list(range(len(e.recording.nodes)))  # every node in exactly one group
    assert [len(g.members) for g in e.groups][:4] == [3, 48, 16, 32]  # x, W1 (3x16), b1, layer 1: 16 dots + 16 tanh
    folded = e.views[0]
    assert set(folded.units) == {f"g{g.id}" for g in e.groups}
    for g, view in zip(e.groups, e.views[1:]):
        shown = {ref for kind, ref in view.units.values() if kind in ("node", "input")}
        assert shown == {i for i in g.members if e.recording.nodes[i].kind != "const"}
        inputs_drawn = {i for i, keys in view.node_units.items() if i not in g.members}
        assert inputs_drawn == set(g.inputs)


def test_groups_by_label_prefix_fused_row_and_parameter_array() -> None:
    a = Value(1.0, "layer1:a")
    b = Value(2.0, "layer1:b")
    xs = [Value(v, f"x[{i}]") for i, v in enumerate((0.1, 0.2, 0.3))]
    s = softmax(xs)
    out = a * b + total(s) * s[0]
    e = explore(out)
    by_name = {g.name: (g.rule, len(g.members)) for g in e.groups}
    assert by_name["layer1"] == ("prefix", 2)
    assert by_name["x"] == ("array", 3)
    fused = [v for k, v in by_name.items() if k.startswith("softmax row")]
    assert fused == [("fused", 4)]  # logsumexp + 3 outputs


def test_a_constant_is_drawn_once_per_use_not_as_a_hub() -> None:
    y = chain_graph(41)  # 21 products, each reading the one constant
    e = explore(y)
    const = [n.id for n in e.recording.nodes if n.kind == "const"]
    assert len(const) == 1
    units = [key for key, (kind, ref) in e.views[0].units.items() if kind == "const"]
    assert len(units) == 21
    heads = {}
    for tail, head, _ in e.views[0].edges:
        heads.setdefault(tail, []).append(head)
    assert all(len(heads[u]) == 1 for u in units)


# ------------------------------------------------------------------ another gradient painted
def test_compare_wrong_on_exactly_one_leaf_paints_that_leaf_only() -> None:
    o, leaves = neuron_graph()
    manual = neuron_manual_grad()
    manual["w1"] += 0.25  # a wrong hand-derived gradient on one leaf
    e = explore(o, compare={leaves[k] if k == "x1" else k: manual[k] for k in NAMES})
    ids = e.recording.index()
    c = e.comparison
    assert c.disagree == [ids[leaves["w1"]]] and c.first == ids[leaves["w1"]]
    assert set(c.rel) == {ids[leaves[k]] for k in NAMES}
    assert all(c.rel[ids[leaves[k]]] < 1e-12 for k in NAMES if k != "w1")
    assert c.rel[ids[leaves["w1"]]] == pytest.approx(0.25 / 1.25)  # |1.25 - 1| / 1.25
    data = e.data()["compare"]
    assert data["disagree"] == [ids[leaves["w1"]]] and data["cls"][ids[leaves["w1"]]] == "err3"


def test_compare_on_interior_nodes_marks_the_first_disagreement_in_backward_order() -> None:
    o, leaves = neuron_graph()
    rec = record(o)
    n = next(v for v in rec.values if v.label == "n")
    manual = neuron_manual_grad()
    wrong = {"n": 0.5 * 1.1, **{k: manual[k] * 1.1 for k in NAMES}}  # do/dn off by 10%, and so is everything below it
    e = explore(o, compare=wrong)
    assert e.comparison.first == rec.index()[n]
    assert len(e.comparison.disagree) == 5  # n, and the leaves whose manual grads are nonzero (w2's is 0 * 1.1 == 0)


def test_compare_takes_array_gradients_by_name() -> None:
    loss, blocks = mlp_graph()
    W1 = np.array([[v.grad for v in row] for row in blocks["W1"]])
    W1_wrong = W1.copy()
    W1_wrong[2, 5] *= -1
    e = explore(loss, compare={"W1": W1_wrong}, blocks=blocks)
    assert [e.recording.nodes[i].name for i in e.comparison.disagree] == ["W1[2,5]"]
    assert len(e.comparison.rel) == 48


def test_a_folded_group_is_summarised_by_its_worst_compared_member_and_the_threshold_is_one_format() -> None:
    """A compared leaf inside a folded box is not drawn: the box carries its members' worst error and count."""
    loss, blocks = mlp_graph()
    W1 = np.array([[v.grad for v in row] for row in blocks["W1"]])
    W1_wrong = W1.copy()
    W1_wrong[2, 5] *= -1
    e = explore(loss, compare={"W1": W1_wrong, "b1": np.array([v.grad for v in blocks["b1"]])}, blocks=blocks)
    data = e.data()["compare"]
    by_name = {e.groups[g].name: summary for g, summary in data["groups"].items()}
    assert set(by_name) == {"W1", "b1"}
    w1 = by_name["W1"]
    assert (w1["n"], w1["bad"], w1["cls"]) == (48, 1, "err3") and e.recording.nodes[w1["node"]].name == "W1[2,5]"
    assert w1["rel"] == e.comparison.rel[w1["node"]] == 2.0  # |-g - g| / |g|
    assert (by_name["b1"]["n"], by_name["b1"]["bad"], by_name["b1"]["cls"]) == (16, 0, "err0")
    assert data["worst"] == w1["node"]
    assert data["tolerance"] == "1e-6"  # as the legend writes its bins ("1e-10 .. 1e-6"), never "0.000001" or "1e-06"
    assert all("1e-06" not in text and "0.000001" not in text for _, text in data["legend"])


def test_the_page_knows_each_nodes_last_grad_step() -> None:
    """A folded box counts a grad as done after its last contribution: the page gets that step per node."""
    x = Value(3.0, "x")
    y = x * x + x  # x gets three contributions
    y.label = "y"
    e = explore(y)
    last = [n["l"] for n in e.data()["nodes"]]
    writes = {}
    for k, s in enumerate(e.recording.steps):
        if s.kind != "forward":
            writes.setdefault(s.node if s.kind == "seed" else e.recording.edges[s.edge].parent, []).append(k)
    assert last == [writes[i][-1] for i in range(len(e.recording.nodes))]
    assert len(writes[0]) == 3 and last[0] == e.n_steps - 1  # x: its third contribution is the last step


def test_an_mlp_without_blocks_folds_into_its_layers() -> None:
    loss, _ = mlp_graph()
    e = explore(loss)
    names = [g.name for g in e.groups]
    assert names == ["x", "W1", "b1", "layer W1", "W2", "b2", "layer W2", "W3", "layer W3"]
    sizes = {g.name: len(g.members) for g in e.groups}
    assert sizes["layer W1"] == sizes["layer W2"] == 32  # 16 dots + 16 tanh
    assert {g.rule for g in e.groups if g.name.startswith("layer")} == {"layer"}
    assert len(e.views[0].units) <= 15  # a readable sheet, not 3 x 16 neurons side by side
    assert e.layouts[0].width < 1000


def test_one_layer_is_not_folded_away() -> None:
    """Ops over one set of arrays (a single linear layer) stay drawn: folding them would hide everything."""
    from engine import to_values
    from nn.linear import linear_loops

    rng = np.random.default_rng(1)
    out = linear_loops(
        to_values(rng.standard_normal((1, 3)), "x"), to_values(rng.standard_normal((3, 2)), "W"), [0.0, 0.0]
    )
    loss = dot([v for row in out for v in row], [1.0, -1.0])
    e = explore(loss)
    assert sorted(g.name for g in e.groups) == ["W", "x"]


def test_a_long_label_is_named_by_its_op_in_the_steps_with_the_full_text_kept() -> None:
    o, _ = neuron_graph()
    rec = record(o)
    add = next(n for n in rec.nodes if n.name == "x1*w1 + x2*w2")
    assert add.short == f"add#{add.id}"
    backward = [s for s in rec.steps if s.kind == "backward" and rec.edges[s.edge].parent == add.id][0]
    assert (
        backward.text == f"add#{add.id}.grad += ∂n/∂add#{add.id} * n.grad = 1 * 0.5 = 0.5;  add#{add.id}.grad: 0 -> 0.5"
    )
    assert backward.full.startswith("(x1*w1 + x2*w2).grad += ∂n/∂(x1*w1 + x2*w2) * n.grad")
    forward = next(s for s in rec.steps if s.kind == "forward" and s.node == add.id)
    assert forward.text == f"add#{add.id} = (x1*w1) + (x2*w2) = -6 + 0 = -6"  # names the node, then says what it is
    assert all(n.short == n.name for n in rec.nodes if n.id != add.id)  # short labels are kept as they are
    steps = explore(o).data()["steps"]
    assert [s.get("f", s["t"]) for s in steps] == [s.full for s in rec.steps]


def test_compare_names_a_key_it_cannot_find() -> None:
    o, _ = neuron_graph()
    with pytest.raises(Exception, match="'nope' is neither a Value of the graph nor a label"):
        explore(o, compare={"nope": 1.0})


# ------------------------------------------------------------------ the page
def test_the_page_is_self_contained_and_holds_the_numbers(tmp_path) -> None:
    o, _ = neuron_graph()
    e = explore(o)
    path = e.save(tmp_path / "neuron.html")
    text = path.read_text(encoding="utf-8")
    assert text == e.html()
    assert re.findall(r"https?://[^\s\"']+", text) == [
        "http://www.w3.org/2000/svg"
    ]  # the SVG namespace name, never fetched
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    assert "function init(root)" in text and ".tg-explorer" in text
    data = json.loads(re.search(r'<script type="application/json" class="tg-data">(.*?)</script>', text, re.S).group(1))
    assert [n["d"] for n in data["nodes"]] == [v.data for v in e.recording.values]
    assert [n["g"] for n in data["nodes"]] == [v.grad for v in e.recording.values]


def test_repr_html_is_the_page_fragment() -> None:
    o, _ = neuron_graph()
    e = explore(o)
    frag = e._repr_html_()
    assert frag.startswith('<div class="tg-explorer"') and frag in e.html()


def test_save_refuses_a_suffix_that_is_not_html(tmp_path) -> None:
    o, _ = neuron_graph()
    with pytest.raises(Exception, match="writes an .html file"):
        explore(o).save(tmp_path / "x.svg")


def test_a_script_end_tag_in_a_label_cannot_break_the_page() -> None:
    x = Value(1.0, "</script><b>")
    page = explore(x * 2).html()
    assert page.count("</script>") == 2  # the data's and the program's own


# ------------------------------------------------------------------ size limits, no dot
def test_a_graph_over_max_nodes_is_refused_before_it_is_walked() -> None:
    y = chain_graph(5000)
    assert count_nodes(y, 100) == 101
    with pytest.raises(ExploreRefused, match="more than 100 nodes"):
        explore(y, max_nodes=100)


def test_without_dot_the_explorer_keeps_its_steps_and_names_the_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no `dot` on it
    o, _ = neuron_graph()
    e = explore(o)
    assert e.layout_error == INSTALL_LINE and "apt-get install graphviz" in INSTALL_LINE
    assert all(layout is None for layout in e.layouts)
    table = e.table()
    assert table.splitlines()[-1] == "final grads: x1 = -1.5, w1 = 1, x2 = 0.5, w2 = 0, b = 0.5"
    assert len(table.splitlines()) == e.n_steps + 2
    assert INSTALL_LINE in e.save(tmp_path / "o.html").read_text(encoding="utf-8")


def test_explore_refuses_what_is_not_a_value() -> None:
    with pytest.raises(Exception, match="explore needs an engine.Value, got float"):
        explore(1.0)  # type: ignore[arg-type]
    assert isinstance(explore(Value(2.0, "a")), Explorer)


def test_a_gradient_report_is_refused_with_what_to_pass_instead() -> None:
    from models.zoo.neuron import neuron_report

    o, _ = neuron_graph()
    with pytest.raises(Exception, match="keeps only each input's worst entry.*pass the other gradient itself"):
        explore(o, compare=neuron_report())
