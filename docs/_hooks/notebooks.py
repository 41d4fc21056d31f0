"""Run the plain-text notebooks of docs/notebooks and turn an executed one into a Markdown page.

The notebooks are stored as jupytext percent-format `.py` files (readable diffs, no outputs in
git). `execute` converts one with jupytext and runs it top to bottom in a fresh kernel with
nbclient; `to_markdown` writes the executed cells as a page for the site (prose as is, code as a
python block, outputs as text, inline SVG/HTML or PNG files).

Both the notebook test (tests/docs/test_notebooks.py) and the site build (docs/_hooks/site.py)
run notebooks through here. The test keeps each executed notebook in `CACHE`, stamped with a key
of the notebook's text and every source file of the four packages; the site build uses a copy
whose key still matches and runs the notebook itself otherwise, so in CI the notebooks run once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "docs" / "notebooks"
#: executed notebooks, kept between the test and the site build (build/ is not in git)
CACHE = Path(os.environ.get("TWOGRAD_NOTEBOOK_CACHE", ROOT / "build" / "notebooks"))
PACKAGES = ("engine", "nn", "models", "viz")
#: seconds one cell may run before nbclient stops the notebook (a hang, not a slow machine)
CELL_TIMEOUT = 600
KEY_FIELD = "twograd_source_key"


def notebook_paths() -> list[Path]:
    """Every notebook of the site, in the order of the plan (phase0 ... phaseC)."""
    return sorted(NOTEBOOKS.glob("phase*.py"))


def source_key(path: Path) -> str:
    """sha256 of the notebook's text and of every .py/.csv file the notebook can reach in the packages."""
    h = hashlib.sha256(path.read_bytes())
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*")):
            if f.suffix in (".py", ".csv", ".js", ".css") and "__pycache__" not in f.parts:
                h.update(f.relative_to(ROOT).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def kernel_env() -> dict[str, str]:
    """The kernel's environment: this checkout first on the path; numpy's BLAS on one thread,
    as the `twograd` command runs it (two threads on small matrices are slower, and far slower
    on a loaded machine)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def execute(path: Path, workdir: Path | None = None) -> Any:
    """Run the notebook at `path` top to bottom in a fresh python3 kernel started in `workdir`
    (a new temporary folder by default); return the executed nbformat notebook.
    Raises nbclient's CellExecutionError on the first cell that raises."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="twograd-notebook-"))
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    old = dict(os.environ)
    os.environ.update(kernel_env())  # the kernel inherits the environment it is started in
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    nb.metadata[KEY_FIELD] = source_key(path)
    return nb


def store(path: Path, nb: Any) -> None:
    """Keep an executed notebook in CACHE for the site build (best effort: a read-only checkout skips it)."""
    import nbformat

    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(CACHE / f"{path.stem}.ipynb"))
    except OSError:
        pass


def executed(path: Path, log: Callable[[str], None] = lambda msg: None) -> Any:
    """The executed notebook: the cached copy when its key matches the sources, else a new run (stored)."""
    import nbformat

    cached = CACHE / f"{path.stem}.ipynb"
    if cached.exists():
        nb = nbformat.read(str(cached), as_version=4)
        if nb.metadata.get(KEY_FIELD) == source_key(path):
            log(f"notebook {path.name}: using the run kept in {cached}")
            return nb
    log(f"notebook {path.name}: executing")
    nb = execute(path)
    store(path, nb)
    return nb


# ------------------------------------------------------------------------------ to Markdown
_XML_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.S)


def _one_block(html: str) -> str:
    """Raw HTML that Markdown passes through whole: no blank lines inside, on lines of its own."""
    html = _XML_PROLOG.sub("", html)
    return "\n".join(line for line in html.splitlines() if line.strip())


def _text_block(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).rstrip("\n")  # colour codes of a traceback or tqdm
    fence = "```" if "```" not in text else "````"
    return f"{fence}{{ .text .nb-out }}\n{text}\n{fence}"  # .nb-out: styled apart from the code


def to_markdown(nb: Any, stem: str) -> tuple[str, dict[str, bytes]]:
    """The page for an executed notebook and its image files: (markdown, {relative path: bytes}).

    Markdown cells are copied; a code cell becomes a python block followed by its outputs:
    stdout/stderr as text, then for each displayed object the richest form of
    SVG (inline), PNG (a file beside the page), HTML (inline), plain text.
    """
    parts: list[str] = []
    images: dict[str, bytes] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(f"```python\n{cell.source}\n```")
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(_text_block(out.get("text", "")))
            elif kind == "error":
                parts.append(_text_block("\n".join(out.get("traceback", []))))
            elif kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/svg+xml" in data:
                    parts.append(f'<div class="nb-output nb-svg">\n{_one_block(data["image/svg+xml"])}\n</div>')
                elif "image/png" in data:
                    name = f"{stem}-{len(images) + 1}.png"
                    images[name] = base64.b64decode(data["image/png"])
                    parts.append(f"![output {len(images)} of {stem}]({name}){{ .nb-image }}")
                elif "text/html" in data:
                    parts.append(f'<div class="nb-output nb-html">\n{_one_block(data["text/html"])}\n</div>')
                elif "text/plain" in data:
                    parts.append(_text_block(data["text/plain"]))
    return "\n\n".join(parts) + "\n", images
