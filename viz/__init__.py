"""Pictures of twograd: computation graphs with Graphviz, plots with matplotlib.

    >>> from viz import draw
    >>> draw(loss).save("loss.svg")
    >>> from viz.plots import plot_loss              # loss curves, decision boundaries, attention
    >>> plot_loss(losses, "loss.png")

This package imports no plotting or ML library at import time: `viz.draw` needs the `graphviz`
package (and Graphviz's `dot` program for image formats), and `viz.plots` imports matplotlib
(the `plot` extra) only when it draws. `viz.plots` is therefore not imported here; import it
by name.
"""

from viz.draw import (
    GraphDrawing,
    GraphvizError,
    GraphvizFailed,
    GraphvizNotFound,
    GraphvizTimeout,
    LargeDrawingWarning,
    draw,
)

__all__ = [
    "draw",
    "GraphDrawing",
    "GraphvizError",
    "GraphvizNotFound",
    "GraphvizFailed",
    "GraphvizTimeout",
    "LargeDrawingWarning",
]
