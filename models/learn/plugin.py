"""twograd's pytest plugin (entry point `pytest11`): fixtures for checking a learner's own pieces.

    def test_my_linear(three_way):
        three_way(linear_loops, linear_forward, linear_backward, reference="linear")   # or inputs={...}

    def test_linear_check(learn_check):
        learn_check("linear")             # the same check as `twograd learn check linear`, on this folder

A failure's report carries the diagnosis ("[transposed] your backward: dW is the transpose ...")
and the three numbers (graph, manual, numeric) at the worst index.

This module is loaded by every pytest run in an environment where twograd is installed, so it
imports nothing but pytest at load time; everything else is imported when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _fail(findings: list, table: str, title: str) -> None:
    lines = [title] + [f"  [{f.kind}] {f.message}" for f in findings]
    if table:
        lines += ["", table]
    pytest.fail("\n".join(lines), pytrace=False)


@pytest.fixture
def three_way() -> Callable[..., None]:
    """check(loops, forward, backward, inputs=None, static=None, *, reference=None, seed=0): fails with the diagnosis."""

    def check(
        loops: Callable[..., Any],
        forward: Callable[..., Any],
        backward: Callable[..., Any],
        inputs: dict | None = None,
        static: dict | None = None,
        *,
        reference: str | None = None,
        seed: int = 0,
    ) -> None:
        from models.learn.selfcheck import three_way_findings

        findings, table = three_way_findings(loops, forward, backward, inputs, static, reference=reference, seed=seed)
        if findings:
            _fail(
                findings,
                table,
                f"three-way check of your {getattr(forward, '__name__', 'piece')} failed"
                + (f" (against twograd's {reference})" if reference else ""),
            )

    return check


@pytest.fixture
def learn_check(request: pytest.FixtureRequest) -> Callable[..., None]:
    """run(name, directory=None): `twograd learn check NAME` on the test file's folder (progress recorded); fails with the diagnosis."""

    def run(name: str, directory: str | Path | None = None) -> None:
        from engine.atomic import sha256_file
        from models.learn import catalog, grade, report, workspace

        folder = Path(directory) if directory is not None else Path(str(request.node.fspath)).parent
        ex = catalog.get(name)
        path = workspace.exercise_file(folder, name)
        digest = sha256_file(path)
        result = grade.check(ex, path)
        workspace.record(folder, name, result.passed, digest, result.findings[0].to_dict() if result.findings else None)
        if not result.passed:
            pytest.fail(report.format_check(result), pytrace=False)

    return run
