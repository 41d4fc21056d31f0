"""Pictures of twograd: computation graphs with Graphviz, plots with matplotlib.

    >>> from viz import draw
    >>> draw(loss).save("loss.svg")
    >>> from viz import explore
    >>> explore(loss).save("loss.html")              # step through forward and backward, offline
    >>> from viz.plots import plot_loss              # loss curves, decision boundaries, attention
    >>> plot_loss(losses, "loss.png")

This package imports no plotting or ML library at import time: `viz.draw` needs the `graphviz`
package (and Graphviz's `dot` program for image formats), and `viz.plots` imports matplotlib
(the `plot` extra) only when it draws. `viz.plots` is therefore not imported here; import it
by name.
"""

# A user's own engine.py / models/ ... found first on sys.path: one ImportError naming it (engine/_siblings.py).
import importlib.util as _util
from pathlib import Path as _Path

_spec = _util.spec_from_file_location(
    "twograd_siblings", _Path(__file__).resolve().parent.parent / "engine" / "_siblings.py"
)
assert _spec is not None and _spec.loader is not None  # a .py file always has both
_spec.loader.exec_module(_siblings := _util.module_from_spec(_spec))
_siblings.check_siblings(__name__, __file__)
del _util, _Path, _spec, _siblings

from viz.draw import (
    GraphDrawing,
    GraphvizError,
    GraphvizFailed,
    GraphvizNotFound,
    GraphvizTimeout,
    LargeDrawingWarning,
    draw,
)
from viz.explore import Explorer, ExploreRefused, explore

__all__ = [
    "draw",
    "explore",
    "Explorer",
    "ExploreRefused",
    "GraphDrawing",
    "GraphvizError",
    "GraphvizNotFound",
    "GraphvizFailed",
    "GraphvizTimeout",
    "LargeDrawingWarning",
]
