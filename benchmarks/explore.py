"""The backprop explorer's three targets (issue 20), measured on this machine.

    python benchmarks/explore.py            # Python side; add the browser's numbers when chromium runs
    python benchmarks/explore.py --no-browser

1. A 3-16-16-1 tanh MLP on one example opens folded into layer boxes within 2 s: the Python
   side (record + fold + `dot` layouts of the folded view and of every group + the page's HTML),
   and, in headless Chromium, the page's load until the explorer is ready (navigation start to
   the end of its init, performance.now()).
2. A 2,000-node graph steps under 50 ms per step in the browser: a 2,001-node chain (x, then
   1,999 alternating `* c` and `tanh`, one constant used 1,000 times, drawn once per use: 3,000
   boxes in one picture), and a 1,863-node MLP (8-40-32-1) given no `blocks=` (it opens folded
   into its parameter arrays and layers, viz/explore/fold.py rule 5; its steps are painted there). Timed in the page with
   performance.now(): (a) the explorer's step function with its DOM update, every step one at a
   time; (b) a step until the next frame is painted (style, layout, scrolling to the step, paint,
   and the wait for the frame itself), every 25th step. (a)'s worst and (b)'s 95th percentile are
   held to the target; (b)'s worst is printed too (it moves with the machine's other load).
3. A 100,000-node graph is refused with a message within 10 s (the default max_nodes). For
   information, not a target: with max_nodes raised it is recorded and listed as steps, no
   picture (too many boxes for one), and the time that takes is printed.

Every number is printed with its target and PASS/FAIL; exit status 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package, and the graphs and browser helper the tests share

from explore_graphs import chain_graph, mlp_graph  # noqa: E402

from viz import ExploreRefused, explore  # noqa: E402

OPEN_TARGET_S = 2.0
STEP_TARGET_MS = 50.0
BIG_TARGET_S = 10.0
BIG_NODES = 100_000


def _row(what: str, value: str, target: str, ok: bool) -> bool:
    print(f"{what:<58} {value:>14}   target {target:<10} {'PASS' if ok else 'FAIL'}")
    return ok


def python_side(out: Path) -> tuple[list[bool], dict[str, Path]]:
    results = []
    t0 = time.perf_counter()
    loss, blocks = mlp_graph((3, 16, 16, 1))
    t1 = time.perf_counter()
    page = explore(loss, blocks=blocks, title="3-16-16-1 MLP")
    html = page.html()
    t2 = time.perf_counter()
    mlp_path = out / "mlp.html"
    mlp_path.write_text(html, encoding="utf-8")
    print(
        f"MLP 3-16-16-1: {len(page.recording.nodes)} nodes, {page.n_steps} steps, {len(page.groups)} boxes folded, "
        f"page {len(html) / 1e6:.2f} MB (graph built in {t1 - t0:.3f} s, not counted)"
    )
    results.append(
        _row(
            "MLP: explore + layouts + HTML (Python side)",
            f"{t2 - t1:.3f} s",
            f"< {OPEN_TARGET_S} s",
            t2 - t1 < OPEN_TARGET_S,
        )
    )

    y = chain_graph(1999)
    t0 = time.perf_counter()
    chain = explore(y, title="2,001-node chain")
    chain_path = chain.save(out / "chain.html")
    t1 = time.perf_counter()
    print(
        f"chain: {len(chain.recording.nodes)} nodes, {chain.n_steps} steps, {len(chain.views[0].units)} boxes; explore + save {t1 - t0:.2f} s"
    )
    wide, _ = mlp_graph((8, 40, 32, 1))  # no blocks: folded by its parameter arrays and the layers over them
    t0 = time.perf_counter()
    flat = explore(wide, title="2,000-node MLP")
    flat_path = flat.save(out / "wide.html")
    t1 = time.perf_counter()
    print(f"wide MLP: {len(flat.recording.nodes)} nodes, {flat.n_steps} steps; explore + save {t1 - t0:.2f} s")

    big = chain_graph(BIG_NODES)
    t0 = time.perf_counter()
    try:
        explore(big)
        refused = ""
    except ExploreRefused as err:
        refused = str(err)
    t1 = time.perf_counter()
    print(f"100k chain, default: {refused or 'NOT refused'}")
    results.append(
        _row(
            f"{BIG_NODES + 2:,}-node graph refused with a message",
            f"{t1 - t0:.3f} s",
            f"< {BIG_TARGET_S} s",
            bool(refused) and t1 - t0 < BIG_TARGET_S,
        )
    )
    t0 = time.perf_counter()
    forced = explore(big, max_nodes=BIG_NODES + 10)
    t1 = time.perf_counter()
    # Not a target (the refusal above meets it): what raising the limit costs, for the record.
    print(
        f"100k chain, max_nodes raised (for information): {forced!r} in {t1 - t0:.2f} s; first view: {forced.view_errors[0]}"
    )
    return results, {"mlp": mlp_path, "chain": chain_path, "wide": flat_path}


#: every step, one at a time: the explorer's step function with its DOM update (no frame painted in between)
STEP_ALL = """
const ex = document.querySelector('.tg-explorer').tgExplorer, times = [];
ex.goTo(0);
for (let k = 1; k <= ex.steps; k++) { const t = performance.now(); ex.goTo(k); times.push(performance.now() - t); }
return times;
"""
#: every SAMPLE_EVERY-th step, from its start until after the next frame is painted (style, layout, scroll, paint
#: included, and the wait for the frame: at least one 60 Hz frame, 16.7 ms, by construction)
SAMPLE_EVERY = 25
STEP_PAINTED = """
const done = arguments[arguments.length - 1];
const ex = document.querySelector('.tg-explorer').tgExplorer, times = [];
const painted = (then) => requestAnimationFrame(() => setTimeout(then, 0));
let k = 1;
function one() {  // go to step k - 1 untimed, let it paint, then time the one step k until it is painted
  if (k > ex.steps) { done(times); return; }
  ex.goTo(k - 1);
  painted(() => {
    const t = performance.now();
    ex.goTo(k);
    painted(() => { times.push(performance.now() - t); k += SAMPLE_EVERY; one(); });
  });
}
one();
""".replace("SAMPLE_EVERY", str(SAMPLE_EVERY))  # JavaScript: as an f-string every brace would need doubling


def browser_side(pages: dict[str, Path]) -> list[bool]:
    import headless

    why = headless.unavailable()
    if why:
        print(f"browser: SKIP ({why})")
        return []
    results = []
    with headless.browser() as driver:
        driver.set_script_timeout(600)  # a bound on the whole measurement, not a wait
        driver.get(pages["mlp"].resolve().as_uri())
        root = headless.wait_for(driver, lambda d: d.find_element("css selector", ".tg-explorer[data-ready-ms]"))
        ms = float(root.get_attribute("data-ready-ms"))
        results.append(
            _row(
                "MLP: page load to explorer ready (headless Chromium)",
                f"{ms / 1000:.3f} s",
                f"< {OPEN_TARGET_S} s",
                ms / 1000 < OPEN_TARGET_S,
            )
        )
        for name in ("chain", "wide"):
            driver.get(pages[name].resolve().as_uri())
            root = headless.wait_for(driver, lambda d: d.find_element("css selector", ".tg-explorer[data-ready-ms]"))
            load = float(root.get_attribute("data-ready-ms"))
            times = driver.execute_script(STEP_ALL)
            painted = sorted(driver.execute_async_script(STEP_PAINTED))
            p95 = painted[int(0.95 * (len(painted) - 1))]
            print(
                f"{name}: page ready after {load / 1000:.2f} s; step function over all {len(times)} steps: median "
                f"{statistics.median(times):.2f} ms, worst {max(times):.2f} ms; step until painted, {len(painted)} sampled "
                f"steps: median {statistics.median(painted):.1f} ms, 95th percentile {p95:.1f} ms, worst {painted[-1]:.1f} ms"
            )
            results.append(
                _row(
                    f"{name}: worst step (step function + DOM, all steps)",
                    f"{max(times):.2f} ms",
                    f"< {STEP_TARGET_MS:.0f} ms",
                    max(times) < STEP_TARGET_MS,
                )
            )
            results.append(
                _row(
                    f"{name}: step until painted, 95th percentile",
                    f"{p95:.1f} ms",
                    f"< {STEP_TARGET_MS:.0f} ms",
                    p95 < STEP_TARGET_MS,
                )
            )
        assert headless.console_errors(driver) == [], "the pages logged errors"
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="measure the Python side only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="twograd-explore-bench-") as tmp:
        results, pages = python_side(Path(tmp))
        if not args.no_browser:
            results += browser_side(pages)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
