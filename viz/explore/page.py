"""The explorer's HTML: its data as JSON, its CSS and JavaScript inlined from the package's own files.

No server, no network, no CDN: explorer.js and explorer.css ship as package data next to this
file and are copied into every page, so a saved page works offline in any browser, and Jupyter's
text/html output holds the whole of it.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

#: the page's own files, shipped as package data (pyproject's [tool.setuptools.package-data])
ASSETS = ("explorer.js", "explorer.css")


def _asset(name: str) -> str:
    return resources.files("viz.explore").joinpath(name).read_text(encoding="utf-8")


def _json(data: dict[str, Any]) -> str:
    """JSON safe inside a <script> element: "</" and the HTML comment openers cannot end it early."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def fragment(data: dict[str, Any]) -> str:
    """One explorer as a block of HTML (style, data, script); several may sit in one document."""
    return (
        f'<div class="tg-explorer" tabindex="0">'
        f"<style>{_asset('explorer.css')}</style>"
        f'<script type="application/json" class="tg-data">{_json(data)}</script>'
        f"<noscript>The explorer needs JavaScript; `Explorer.table()` in Python lists the same steps.</noscript>"
        f"<script>{_asset('explorer.js')}</script>"
        f"</div>"
    )


def full_page(data: dict[str, Any], title: str) -> str:
    """A complete HTML document holding one explorer."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - twograd explorer</title></head>\n<body>{fragment(data)}</body></html>\n"
    )
