"""Every notebook of docs/notebooks runs top to bottom in a real Jupyter kernel without an error.

The notebooks are jupytext percent-format `.py` files; `docs/_hooks/notebooks.py` converts one
(jupytext) and executes it (nbclient), exactly as the site build does. An executed notebook is
kept in build/notebooks/ for the site build, which then does not run it a second time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: one notebook per phase of the plan; removing or renaming one fails `test_every_phase_has_its_notebook`
EXPECTED = (
    "phase0_math_primitives.py",
    "phase1_backpropagation.py",
    "phase2_attention.py",
    "phase3_transformer_block.py",
    "phaseA_tiny_transformer.py",
    "phaseB_distillation.py",
    "phaseC_alignment.py",
)


def _runner():
    spec = importlib.util.spec_from_file_location("twograd_docs_notebooks", ROOT / "docs" / "_hooks" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_every_phase_has_its_notebook() -> None:
    found = sorted(p.name for p in _runner().notebook_paths())
    assert found == sorted(EXPECTED), f"docs/notebooks/ holds {found}, expected {sorted(EXPECTED)}"


@pytest.mark.slow  # a kernel per notebook; the heaviest trains for most of a minute
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path) -> None:
    runner = _runner()
    path = ROOT / "docs" / "notebooks" / name
    assert path.exists(), f"{path} is missing"
    nb = runner.execute(path, tmp_path)  # raises CellExecutionError on the first cell that raises
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a code cell was not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    shown = [
        o for c in code for o in c.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")
    ]
    assert any("image/png" in o["data"] or "image/svg+xml" in o["data"] for o in shown), "the notebook shows no picture"
    runner.store(path, nb)
