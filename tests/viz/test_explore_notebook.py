"""The explorer in Jupyter: a notebook executed with nbclient shows it as text/html holding the page.

Needs nbclient, nbformat and ipykernel (the `test` extra); skipped with the reason when absent."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: seconds one cell may run (the kernel's start-up is most of it)
CELL_TIMEOUT_SECONDS = 120

CELL = """\
from models.zoo.neuron import neuron_graph
from viz import explore
o, _ = neuron_graph()
explore(o)
"""


@pytest.mark.slow
def test_a_notebook_displays_the_explorer_as_html(tmp_path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if importlib.util.find_spec("ipykernel") is None:  # looked up, not imported: this process is no kernel
        pytest.skip("needs ipykernel (the test extra) to run the notebook's kernel")
    from models.zoo.neuron import neuron_graph
    from viz import explore

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)  # the kernel imports this tree
    try:
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = nb.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["execute_result"], outputs
    html = outputs[0]["data"]["text/html"]
    o, _ = neuron_graph()
    assert html == explore(o)._repr_html_()  # the whole page: styles, data and script inlined
    assert html.startswith('<div class="tg-explorer"') and "function init(root)" in html
