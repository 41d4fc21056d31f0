"""Drawing twograd computation graphs with Graphviz.

    >>> from viz import draw
    >>> draw(loss).save("loss.svg")

This package imports no plotting or ML library at import time; `viz.draw` needs only
the standard library (and Graphviz's `dot` program for image formats).
"""

from viz.draw import GraphDrawing, GraphvizNotFound, draw

__all__ = ["draw", "GraphDrawing", "GraphvizNotFound"]
