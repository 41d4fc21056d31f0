"""Keep docs/contributing.md true: its example piece passes the checks the page says it passes
(and fails them when its backward is broken, as the page says), and its commands name the
extras, scripts, files and paths that exist and that .ci/lint uses.

The example is run in a fresh interpreter: registering it here would add a piece to the
registry of every later test in this process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "contributing.md"
#: generous: the probe imports numpy and nn and checks two small cases; the bound only catches a hang
PROBE_TIMEOUT_SECONDS = 300

# Runs the page's example file as a module, then prints the three-way check's verdict and the
# torch referee's ("skipped" without torch). argv: the example file.
PROBE = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("contributing_example", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from nn.registry import check_piece, get_piece
piece = get_piece("softplus")
print("three-way", "ok" if all(r.passed for r in check_piece(piece)) else "FAIL")
try:
    import torch  # noqa: F401
except ImportError:
    print("referee skipped")
else:
    sys.path.insert(0, "tests/nn")
    from test_torch_referee import assert_matches_torch
    try:
        for case in piece.cases:
            inputs, static = case.make(np.random.default_rng(0))
            assert_matches_torch(piece, inputs, static, what=case.name)
        print("referee ok")
    except AssertionError:
        print("referee FAIL")
"""


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[str]:
    """Every command line of the page's bash blocks."""
    return [line.strip() for block in _blocks("bash") for line in block.splitlines() if line.strip()]


def _probe(code: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "softplus.py"
    path.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow
def test_the_example_piece_passes_its_checks(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    three_way, referee = _probe(code, tmp_path)
    assert three_way == "three-way ok"
    assert referee in ("referee ok", "referee skipped")


@pytest.mark.slow
def test_the_broken_backward_the_page_suggests_fails_the_checks(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    right = "return (dy * cache.s,)"
    assert right in code and "`dy * (1.0 - cache.s)`" in PAGE.read_text(encoding="utf-8")
    three_way, referee = _probe(code.replace(right, "return (dy * (1.0 - cache.s),)"), tmp_path)
    assert three_way == "three-way FAIL"
    assert referee in ("referee FAIL", "referee skipped")


def test_the_setup_installs_extras_that_exist() -> None:
    # (no tomllib: it is Python >= 3.11, and twograd runs on 3.10)
    table = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = re.findall(r"^(\w+) = \[", table, flags=re.M)
    installs = [c for c in _commands() if "pip install -e" in c]
    assert installs, "the page lost its set-up command"
    for command in installs:
        (wanted,) = re.findall(r'"\.\[([\w,]+)\]"', command)
        assert set(wanted.split(",")) <= set(extras), f"{command}: extras {wanted} vs {sorted(extras)}"
    assert "dev" in wanted.split(",")


def test_the_checks_on_the_page_are_the_ones_ci_runs() -> None:
    lint = (ROOT / ".ci" / "lint").read_text()
    linted = " ".join(re.search(r"^LINTED=\(([^)]*)\)", lint, flags=re.M).group(1).split())
    typed = " ".join(re.search(r"^TYPED=\(([^)]*)\)", lint, flags=re.M).group(1).split())
    commands = _commands()
    assert "bash .ci/lint" in commands
    assert f"ruff check {linted}" in commands
    assert f"ruff format --check {linted}" in commands
    assert f"mypy {typed}" in commands
    assert all(Path(ROOT, p).is_dir() for p in (linted + " " + typed).split())


def test_the_files_the_page_names_exist() -> None:
    text = PAGE.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:nn|tests|engine|benchmarks|\.ci)/[\w./]+?)(?:::\w+)?`", text))
    named |= {m for c in _commands() for m in re.findall(r"\b(tests/[\w/]+\.py)\b", c)}
    assert "nn/registry.py" in named and "tests/nn/test_registry.py" in named
    missing = sorted(p for p in named if p != "nn/softplus.py" and not (ROOT / p).exists())
    assert missing == [], f"the page names files that do not exist: {missing}"
