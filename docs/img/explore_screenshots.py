"""Regenerate the explorer's screenshots in docs/img/ with headless Chromium's own --screenshot.

    python docs/img/explore_screenshots.py

The pages open at a step and a view through the page's #step=K&view=V address (viz/explore/explorer.js).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from explore_graphs import mlp_graph  # noqa: E402
from headless import CHROMIUM, FLAGS  # noqa: E402

from models.zoo.neuron import neuron_graph  # noqa: E402
from viz import explore  # noqa: E402

OUT = Path(__file__).resolve().parent
#: seconds Chromium may take per screenshot (a bound, not a wait)
TIMEOUT_SECONDS = 120


def shoot(page: Path, fragment: str, png: Path, size: str) -> None:
    with tempfile.TemporaryDirectory(prefix="twograd-chromium-") as profile:
        subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={size}",
                f"--screenshot={png}",
                page.resolve().as_uri() + fragment,
            ],
            check=True,
            timeout=TIMEOUT_SECONDS,
            capture_output=True,
        )
    print(f"wrote {png.relative_to(ROOT)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        o, _ = neuron_graph()
        neuron = explore(o, title="o = tanh(x1*w1 + x2*w2 + b)").save(Path(tmp) / "neuron.html")
        shoot(neuron, "#step=10", OUT / "explore-neuron.png", "1250,700")
        loss, blocks = mlp_graph()
        mlp = explore(loss, blocks=blocks, title="3-16-16-1 MLP on one example")
        page = mlp.save(Path(tmp) / "mlp.html")
        shoot(page, "#step=0", OUT / "explore-mlp-folded.png", "1250,640")
        layer1 = next(g.id for g in mlp.groups if g.name == "layer 1")
        shoot(page, f"#step=740&view={layer1 + 1}", OUT / "explore-mlp-group.png", "2150,560")
        # a hand-derived dW1 wrong in one entry: the folded W1 box is painted by its worst entry
        W1 = np.array([[v.grad for v in row] for row in blocks["W1"]])
        W1[2, 5] *= -1
        b1 = np.array([v.grad for v in blocks["b1"]])
        wrong = explore(
            loss, compare={"W1": W1, "b1": b1}, blocks=blocks, title="3-16-16-1 MLP, dW1 wrong in one entry"
        )
        shoot(wrong.save(Path(tmp) / "compare.html"), "#step=0", OUT / "explore-compare.png", "1250,700")


if __name__ == "__main__":
    main()
