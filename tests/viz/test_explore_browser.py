"""The explorer's page in a real browser: headless Debian Chromium, offline (tests/headless.py).

It clicks through every step of the neuron and reads the page: the forward values equal `.data`,
the grads at the end equal the engine's, a step back undoes exactly one step, folding and
unfolding the MLP keep the counts, a painted comparison marks one leaf, and the console stays
free of errors. Every wait is for a condition, bounded by headless.WAIT_SECONDS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import headless
import numpy as np
import pytest
from explore_graphs import mlp_graph

from models.zoo.neuron import NAMES, neuron_graph, neuron_manual_grad
from viz import explore

pytestmark = pytest.mark.skipif(bool(headless.unavailable()), reason=headless.unavailable() or "chromium is available")


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    with headless.browser() as d:
        yield d


def _open(driver, path: Path) -> object:
    driver.get(path.resolve().as_uri())
    root = headless.wait_for(driver, lambda d: d.find_element("css selector", ".tg-explorer[data-ready]"))
    assert headless.console_errors(driver) == []
    return root


def _units(driver) -> list[dict]:
    """Every box of the current view: its key, node, and the numbers it shows (as attributes, full precision)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.tg-unit')].map(e => ({key: e.dataset.key, node: e.dataset.node,"
        " data: e.dataset.data, grad: e.dataset.grad, members: e.dataset.members, cls: e.getAttribute('class')}))"
    )


def _click_and_wait(driver, root, selector: str, step: int) -> None:
    driver.find_element("css selector", selector).click()
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == str(step))


@pytest.mark.slow
def test_every_step_of_the_neuron_shows_the_engine_numbers(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    e = explore(o)
    rec = e.recording
    root = _open(driver, e.save(tmp_path / "neuron.html"))
    assert root.get_attribute("data-step") == "0"
    n_forward = sum(1 for s in rec.steps if s.kind == "forward")
    for k in range(1, e.n_steps + 1):
        _click_and_wait(driver, root, ".tg-next", k)
        step = rec.steps[k - 1]
        shown = {int(u["node"]): u for u in _units(driver)}
        if step.kind == "forward":  # the node just computed shows exactly .data
            assert float(shown[step.node]["data"]) == rec.values[step.node].data
        else:  # the grad just written shows the replayed value after this step
            target = step.node if step.kind == "seed" else rec.edges[step.edge].parent
            assert float(shown[target]["grad"]) == step.after
        assert driver.find_element("css selector", ".tg-arith").get_attribute("textContent") == step.text
        if k == n_forward:
            assert all(float(u["data"]) == rec.values[i].data for i, u in shown.items())
            assert all(u["grad"] is None for u in shown.values())  # no grad before backward starts
    final = {int(u["node"]): float(u["grad"]) for u in _units(driver)}
    assert final == {i: v.grad for i, v in enumerate(rec.values)}  # 100% of the steps, every grad the engine's
    assert driver.find_element("css selector", ".tg-counter").text == f"step {e.n_steps} / {e.n_steps}"
    assert headless.console_errors(driver) == []


def test_back_keys_slider_and_end_move_by_whole_steps(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    e = explore(o)
    rec = e.recording
    root = _open(driver, e.save(tmp_path / "neuron.html"))
    _click_and_wait(driver, root, ".tg-end", e.n_steps)
    _click_and_wait(driver, root, ".tg-prev", e.n_steps - 1)
    last = rec.steps[-1]
    undone = {int(u["node"]): u for u in _units(driver)}[rec.edges[last.edge].parent]
    assert undone["grad"] is None  # the last step was this leaf's only contribution: back to no grad at all
    root.send_keys("\ue012")  # left arrow
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == str(e.n_steps - 2))
    root.send_keys("\ue014")  # right arrow
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == str(e.n_steps - 1))
    driver.execute_script(
        "const s = document.querySelector('.tg-slider'); s.value = 3; s.dispatchEvent(new Event('input'));"
    )
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == "3")
    shown = {int(u["node"]): u for u in _units(driver)}
    computed = {s.node for s in rec.steps[:3]}
    assert {i for i, u in shown.items() if u["data"] is not None and rec.nodes[i].kind == "op"} == computed
    _click_and_wait(driver, root, ".tg-start", 0)
    assert headless.console_errors(driver) == []


def test_clicking_a_leaf_colours_its_chain_rule_paths(driver, tmp_path) -> None:
    o, leaves = neuron_graph()
    e = explore(o)
    _open(driver, e.save(tmp_path / "neuron.html"))
    x1 = e.recording.index()[leaves["x1"]]
    driver.find_element("css selector", f'.tg-unit[data-node="{x1}"]').click()
    headless.wait_for(driver, lambda d: d.find_elements("css selector", ".tg-unit.tg-path"))
    lit = {e.recording.nodes[int(u["node"])].name for u in _units(driver) if "tg-path" in u["cls"]}
    assert lit == {"x1", "x1*w1", "x1*w1 + x2*w2", "n", "o"}
    assert len(driver.find_elements("css selector", "path.tg-edge.tg-path")) == 4
    assert "x1 → x1*w1 → x1*w1 + x2*w2 → n → o" in driver.find_element("css selector", ".tg-pick").text


@pytest.mark.slow
def test_folding_and_unfolding_the_mlp_keeps_the_counts(driver, tmp_path) -> None:
    loss, blocks = mlp_graph()
    e = explore(loss, blocks=blocks)
    rec = e.recording
    root = _open(driver, e.save(tmp_path / "mlp.html"))
    _click_and_wait(driver, root, ".tg-end", e.n_steps)
    folded = _units(driver)
    assert sorted(int(u["members"]) for u in folded) == sorted(len(g.members) for g in e.groups)
    assert sum(int(u["members"]) for u in folded) == len(rec.nodes)
    for g in e.groups:
        driver.find_element("css selector", f'.tg-unit[data-key="g{g.id}"]').click()
        headless.wait_for(driver, lambda d, g=g: root.get_attribute("data-view") == str(g.id + 1))
        inside = [
            u
            for u in _units(driver)
            if u["node"] is not None and int(u["node"]) in set(g.members) and "tg-const" not in u["cls"]
        ]
        assert {int(u["node"]) for u in inside} == {i for i in g.members if rec.nodes[i].kind != "const"}
        assert all(float(u["grad"]) == rec.values[int(u["node"])].grad for u in inside)
        assert all(float(u["data"]) == rec.values[int(u["node"])].data for u in inside)
        driver.find_element("css selector", ".tg-back").click()
        headless.wait_for(driver, lambda d: root.get_attribute("data-view") == "0")
        assert _units(driver) == folded
    assert headless.console_errors(driver) == []


def test_a_gradient_wrong_on_one_leaf_is_painted_on_that_leaf_only(driver, tmp_path) -> None:
    o, leaves = neuron_graph()
    manual = neuron_manual_grad()
    manual["b"] *= 2
    e = explore(o, compare=manual)
    _open(driver, e.save(tmp_path / "compare.html"))
    painted = [u for u in _units(driver) if "tg-disagree" in u["cls"]]
    assert [int(u["node"]) for u in painted] == [e.recording.index()[leaves["b"]]]
    assert sum("err0" in u["cls"] for u in _units(driver)) == len(NAMES) - 1
    assert "1 of 5 compared nodes disagree" in driver.find_element("css selector", ".tg-legend").text


def test_without_dot_the_page_lists_the_same_numbers(driver, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    o, _ = neuron_graph()
    e = explore(o)
    root = _open(driver, e.save(tmp_path / "table.html"))
    assert "apt-get install graphviz" in driver.find_element("css selector", ".tg-note").text
    _click_and_wait(driver, root, ".tg-end", e.n_steps)
    rows = {int(u["node"]): float(u["grad"]) for u in _units(driver)}
    assert rows == {i: v.grad for i, v in enumerate(e.recording.values)}
    listed = driver.execute_script(
        "return [...document.querySelectorAll('.tg-steps tr')].map(r => r.lastChild.textContent)"
    )
    assert listed == [s.text for s in e.recording.steps]  # the same lines as Explorer.table()
    assert driver.find_element("css selector", ".tg-steps tr.tg-cur").text.startswith(f"{e.n_steps} backward")


def test_two_explorers_in_one_document_step_on_their_own(driver, tmp_path) -> None:
    """As two outputs of one notebook: each fragment brings its script; each explorer keeps its own state."""
    o, _ = neuron_graph()
    first, second = explore(o)._repr_html_(), explore(o, title="second")._repr_html_()
    page = tmp_path / "two.html"
    page.write_text(f"<!DOCTYPE html><html><body>{first}<hr>{second}</body></html>", encoding="utf-8")
    driver.get(page.resolve().as_uri())
    roots = headless.wait_for(
        driver,
        lambda d: (
            len(d.find_elements("css selector", ".tg-explorer[data-ready]")) == 2
            and d.find_elements("css selector", ".tg-explorer[data-ready]")
        ),
    )
    roots[0].find_element("css selector", ".tg-end").click()
    headless.wait_for(driver, lambda d: roots[0].get_attribute("data-step") == "15")
    assert roots[1].get_attribute("data-step") == "0"
    markers = driver.execute_script("return [...document.querySelectorAll('marker')].map(m => m.id)")
    assert len(markers) == 2 and len(set(markers)) == 2
    assert headless.console_errors(driver) == []


def test_nan_and_infinite_numbers_reach_the_page(driver, tmp_path) -> None:
    from engine import Value

    x = Value(float("nan"), "x")
    w = Value(float("inf"), "w")
    y = x * 2 + w
    y.label = "y"
    e = explore(y)
    root = _open(driver, e.save(tmp_path / "nan.html"))
    _click_and_wait(driver, root, ".tg-end", e.n_steps)
    shown = {
        e.recording.nodes[int(u["node"])].name: (u["data"], u["grad"])
        for u in _units(driver)
        if "tg-const" not in u["cls"]
    }
    assert shown == {"x": ("NaN", "2"), "w": ("Infinity", "1"), "mul#2": ("NaN", "1"), "y": ("NaN", "1")}
    assert headless.console_errors(driver) == []


def test_a_folded_box_holding_a_wrong_entry_is_painted_and_pointed_at(driver, tmp_path) -> None:
    """The compared leaves sit inside folded boxes: each box is painted by its worst member and says how many
    disagree; the worst is outlined and the legend opens its group, where the leaf itself is painted."""
    loss, blocks = mlp_graph()
    W1 = np.array([[v.grad for v in row] for row in blocks["W1"]])
    W1[2, 5] *= -1
    b1 = np.array([v.grad for v in blocks["b1"]])
    e = explore(loss, compare={"W1": W1, "b1": b1}, blocks=blocks)
    root = _open(driver, e.save(tmp_path / "mlp-compare.html"))
    gid = {g.name: g.id for g in e.groups}
    boxes = {u["key"]: u for u in _units(driver)}
    w1, b1_box = boxes[f"g{gid['W1']}"], boxes[f"g{gid['b1']}"]
    assert "err3" in w1["cls"] and "tg-disagree" in w1["cls"] and "tg-worst" in w1["cls"]
    assert "err0" in b1_box["cls"] and "tg-disagree" not in b1_box["cls"]
    assert not any(
        c in boxes[f"g{gid['layer 1']}"]["cls"] for c in ("err0", "err1", "err2", "err3")
    )  # nothing compared
    text = lambda key: driver.find_element("css selector", f'.tg-unit[data-key="{key}"]').get_attribute("textContent")  # noqa: E731
    assert "1 of 48 entries disagree" in text(f"g{gid['W1']}")
    assert "0 of 16 entries disagree" in text(f"g{gid['b1']}")
    legend = driver.find_element("css selector", ".tg-legend").text
    assert "relative error above 1e-6" in legend and "0.000001" not in legend
    assert "worst: W1[2,5]" in legend
    driver.find_element("css selector", ".tg-open-worst").click()
    headless.wait_for(driver, lambda d: root.get_attribute("data-view") == str(gid["W1"] + 1))
    leaf = e.recording.index()[blocks["W1"][2][5]]
    painted = [u for u in _units(driver) if "tg-disagree" in u["cls"]]
    assert [int(u["node"]) for u in painted] == [leaf] and "tg-worst" in painted[0]["cls"]
    assert headless.console_errors(driver) == []


def test_a_folded_box_counts_a_grad_once_its_last_contribution_arrived(driver, tmp_path) -> None:
    loss, blocks = mlp_graph()
    e = explore(loss, blocks=blocks)
    rec = e.recording
    last = [n["l"] for n in e.data()["nodes"]]
    first: dict[int, int] = {}
    for k, s in enumerate(rec.steps):
        if s.kind == "backward":
            first.setdefault(rec.edges[s.edge].parent, k)
    x = next(g for g in e.groups if g.name == "x")
    # a step count at which x[0,2] has had a contribution but not its last: still accumulating
    leaf = rec.index()[blocks["x"][0][2]]
    k = first[leaf] + 1
    assert k <= last[leaf]
    root = _open(driver, e.save(tmp_path / "mlp.html"))
    driver.execute_script(f"document.querySelector('.tg-explorer').tgExplorer.goTo({k})")
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == str(k))
    done = sum(1 for i in x.members if last[i] < k)
    box = driver.find_element("css selector", f'.tg-unit[data-key="g{x.id}"]')
    assert box.get_attribute("data-graded") == str(done) and done < len(x.members)
    assert f"grads {done}/{len(x.members)}" in box.get_attribute("textContent")
    _click_and_wait(driver, root, ".tg-end", e.n_steps)
    assert box.get_attribute("data-graded") == str(len(x.members))
    assert headless.console_errors(driver) == []


def test_a_small_picture_is_scaled_to_fill_the_panel_and_zooms(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    root = _open(driver, explore(o).save(tmp_path / "neuron.html"))
    fill = (
        "const c = document.querySelector('.tg-canvas'), s = document.querySelector('.tg-svg').getBoundingClientRect();"
        " return [s.width / c.clientWidth, s.height / (0.75 * window.innerHeight), s.width];"
    )
    wide, high, width = driver.execute_script(fill)
    assert max(wide, high) > 0.9 and wide <= 1.0 and high <= 1.0  # fills the panel in one direction, fits in both
    zoom = float(root.get_attribute("data-zoom"))
    assert zoom > 1.5  # dot's picture is 466 px wide
    driver.find_element("css selector", ".tg-zoom-in").click()
    headless.wait_for(driver, lambda d: float(root.get_attribute("data-zoom")) > zoom)
    assert driver.execute_script(fill)[2] == pytest.approx(width * 1.25, rel=1e-3)
    driver.find_element("css selector", ".tg-fit").click()
    headless.wait_for(driver, lambda d: float(root.get_attribute("data-zoom")) == zoom)
    assert headless.console_errors(driver) == []


def test_the_key_says_what_the_boxes_and_the_dot_mean(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    _open(driver, explore(o).save(tmp_path / "neuron.html"))
    key = driver.find_element("css selector", ".tg-key").text
    for words in (
        "an input: a labelled leaf",
        "not computed yet",
        "a folded group",
        "grad · : backward has not reached",
    ):
        assert words in key


def test_the_step_text_uses_short_names_with_the_full_ones_on_hover(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    e = explore(o)
    root = _open(driver, e.save(tmp_path / "neuron.html"))
    k = next(k for k, s in enumerate(e.recording.steps, 1) if s.full != s.text)
    driver.execute_script(f"document.querySelector('.tg-explorer').tgExplorer.goTo({k})")
    headless.wait_for(driver, lambda d: root.get_attribute("data-step") == str(k))
    arith = driver.find_element("css selector", ".tg-arith")
    assert arith.get_attribute("textContent") == e.recording.steps[k - 1].text
    assert arith.get_attribute("title") == e.recording.steps[k - 1].full
    assert "x1*w1 + x2*w2" not in arith.get_attribute("textContent")


def test_when_every_compared_entry_agrees_nothing_is_outlined_as_worst(driver, tmp_path) -> None:
    o, _ = neuron_graph()
    _open(driver, explore(o, compare=neuron_manual_grad()).save(tmp_path / "agree.html"))
    assert driver.find_elements("css selector", ".tg-worst") == []
    assert "0 of 5 compared nodes disagree" in driver.find_element("css selector", ".tg-legend").text
