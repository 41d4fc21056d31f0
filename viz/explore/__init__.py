"""The backprop explorer: step through forward and backward node by node, in one offline page.

    >>> from viz import explore
    >>> explore(loss).save("loss.html")          # or show it in Jupyter: `explore(loss)`

The Python side decides what to show (record.py replays the steps, fold.py groups the nodes,
views.py and layout.py place them with Graphviz's `dot`, compare.py paints another gradient);
the page's JavaScript (explorer.js, one plain-DOM file shipped as package data) only steps and draws.
"""

from viz.explore.explorer import DEFAULT_MAX_NODES, INSTALL_LINE, Explorer, ExploreRefused, explore
from viz.explore.formulas import LOCAL_DERIVATIVES, formula

__all__ = ["explore", "Explorer", "ExploreRefused", "DEFAULT_MAX_NODES", "INSTALL_LINE", "LOCAL_DERIVATIVES", "formula"]
