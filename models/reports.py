"""How a result shows itself: one readable text in a REPL, one HTML block in Jupyter.

Every report the public API returns (`TrainReport`, `Samples`, `DistillReport`, `AlignResult`,
`TourResult`) mixes in `Shown` and says what it has: `text()` (exactly what the command prints),
`html_rows()` (the results table) and `plot_curves()` (loss curves, drawn as an inline SVG). So a
REPL prints the command's summary, a notebook shows a table and a curve, and nothing is ever
printed as a stray `Out: 0`.

The SVG is drawn here, from the numbers, with no plotting library: a notebook without
matplotlib still shows the curve, and the HTML holds no image files or scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

#: the inline curve's size in CSS pixels, and its padding for the axis labels.
CURVE_WIDTH, CURVE_HEIGHT, CURVE_PAD = 420, 160, 36
#: at most this many points of a curve are drawn (every k-th step beyond it): a 40,000-step run stays a small SVG.
CURVE_MAX_POINTS = 400
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def svg_curves(curves: Mapping[str, Sequence[float]], *, log_y: bool = False, title: str = "") -> str:
    """An inline SVG line chart of one or more curves (x = index, y = value); non-finite points are skipped.

    `log_y` draws log10(y) (losses that fall over decades); non-positive values are then skipped too.
    Returns "" when no curve has two drawable points.
    """
    series = []
    for name, values in curves.items():
        step = max(1, math.ceil(len(values) / CURVE_MAX_POINTS))
        pts = [(i, float(v)) for i, v in enumerate(values) if i % step == 0 or i == len(values) - 1]
        pts = [(i, math.log10(v) if log_y else v) for i, v in pts if math.isfinite(v) and (v > 0 or not log_y)]
        if len(pts) >= 2:
            series.append((name, pts))
    if not series:
        return ""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y1 == y0:  # a flat curve: give it a band to sit in
        y0, y1 = y0 - 0.5, y1 + 0.5
    w, h, pad = CURVE_WIDTH, CURVE_HEIGHT, CURVE_PAD

    def px(x: float, y: float) -> str:
        return f"{pad + (x - x0) / max(x1 - x0, 1) * (w - pad - 8):.1f},{8 + (y1 - y) / (y1 - y0) * (h - pad):.1f}"

    def label(y: float) -> str:
        return f"{10**y:.3g}" if log_y else f"{y:.3g}"  # the value itself, not its log (1e-2.4 reads badly)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{html.escape(title or "curve")}" style="font: 11px sans-serif">',
        f'<rect x="{pad}" y="8" width="{w - pad - 8}" height="{h - pad}" fill="none" stroke="#ccc"/>',
        f'<text x="2" y="16">{html.escape(label(y1))}</text>',
        f'<text x="2" y="{h - pad + 8}">{html.escape(label(y0))}</text>',
        f'<text x="{pad}" y="{h - 6}">{x0}</text>',
        f'<text x="{w - 8}" y="{h - 6}" text-anchor="end">{x1}</text>',
    ]
    for k, (name, pts) in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(px(x, y) for x, y in pts)}"/>'
        )
        parts.append(
            f'<text x="{w - 12}" y="{22 + 13 * k}" text-anchor="end" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_table(rows: Sequence[Sequence[Any]], head: Sequence[str] | None = None) -> str:
    """A plain HTML table; every cell is escaped text."""
    out = ['<table style="border-collapse: collapse">']
    if head:
        out.append(
            "<tr>"
            + "".join(f'<th style="text-align:left; padding: 2px 10px">{html.escape(str(c))}</th>' for c in head)
            + "</tr>"
        )
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="padding: 2px 10px">{html.escape(str(c))}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def format_number(value: Any) -> str:
    """A metric as a person reads it: 4 significant digits, None as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Shown:
    """Mixin: `repr()` and `str()` are `text()`; `_repr_html_()` is a title, the results table and the curves.

    A subclass defines `text()`, and may define `html_title()`, `html_rows()` (a list of
    (name, value) pairs or a (head, rows) pair) and `plot_curves()` (name -> values, with `log_y`).
    """

    def text(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def html_title(self) -> str:
        return type(self).__name__

    def html_rows(self) -> tuple[Sequence[str] | None, Sequence[Sequence[Any]]]:
        return None, []

    def plot_curves(self) -> tuple[Mapping[str, Sequence[float]], bool]:
        """(name -> values, whether to draw them on a log scale); none by default."""
        return {}, False

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        head, rows = self.html_rows()
        curves, log_y = self.plot_curves()
        parts = [f'<div class="twograd-report"><strong>{html.escape(self.html_title())}</strong>']
        if rows:
            parts.append(html_table(rows, head))
        svg = svg_curves(curves, log_y=log_y, title=self.html_title()) if curves else ""
        if svg:
            parts.append(f"<div>{svg}</div>")
        parts.append(f"<details><summary>text</summary><pre>{html.escape(self.text())}</pre></details></div>")
        return "".join(parts)
