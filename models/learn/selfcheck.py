"""The three-way check of a learner's own functions in this process (the pytest fixture `three_way`).

Unlike `learn check`, nothing is sandboxed: it runs inside the learner's own pytest, on their own
functions. Graph (their loops on engine Values), manual (their backward) and numeric (central
differences of their forward) are compared as `nn.registry.check_three_way` does; each of their
results is then compared with twograd's own piece (`reference=`, a registry name) and a wrong one
gets the same diagnosis as `learn check` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from models.learn.diagnose import BACKWARD_TOL, FORWARD_TOL, Finding


def three_way_findings(
    loops: Callable[..., Any],
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Mapping[str, np.ndarray] | None = None,
    static: Mapping[str, Any] | None = None,
    *,
    reference: str | None = None,
    seed: int = 0,
) -> tuple[list[Finding], str]:
    """(findings, the three-way table): empty findings when their three ways agree with each other and with ours."""
    from engine import graph_gradients, numerical_gradient_arrays
    from models.learn.catalog import HOMES
    from models.learn.grade import Knowledge, _compare, registry_piece
    from nn.registry import check_three_way

    piece = registry_piece(reference, HOMES.get(reference, "")) if reference else None
    if inputs is None:
        if piece is None:
            raise ValueError("three_way: give inputs=, or reference= (a piece name) to use its first case")
        inputs, static = piece.cases[0].make(np.random.default_rng(seed))
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    static = dict(static or {})
    names = list(inputs)
    table = ""
    try:
        table = str(check_three_way(loops, forward, backward, inputs, static, name="yours", seed=seed + 1))
    except Exception as err:  # their functions raised: the table cannot be built; the diagnosis below names it
        table = f"(no three-way table: {type(err).__name__}: {err})"
    rng = np.random.default_rng(seed + 1)
    out, cache = forward(*inputs.values(), **static)
    out = np.asarray(out)
    R = rng.standard_normal(out.shape)
    manual = [np.asarray(g, dtype=np.float64) for g in backward(R.copy(), cache)]

    def loss(arrs: dict[str, np.ndarray]) -> float:
        return float(np.sum(np.asarray(forward(*(arrs[n] for n in names), **static)[0], dtype=np.float64) * R))

    numeric = numerical_gradient_arrays(loss, inputs)
    weights = R.reshape(-1).tolist()

    def graph_loss(vals: dict[str, Any]) -> Any:
        from engine.gradcheck import _flatten

        leaves = _flatten(loops(*(vals[n] for n in names), **static))
        total = leaves[0] * weights[0]
        for leaf, w in zip(leaves[1:], weights[1:]):
            total = total + leaf * w
        return total

    _, graph = graph_gradients(graph_loss, inputs)
    findings: list[Finding] = []
    knowledge = Knowledge()
    if piece is not None:
        ref_out, ref_cache = piece.forward(*inputs.values(), **static)
        expected = [np.asarray(g, dtype=np.float64) for g in piece.backward(R.copy(), ref_cache)]
        from models.learn import catalog

        for ex in catalog.EXERCISES:
            for spec in getattr(ex.grader, "specs", ()):
                if spec.piece == reference and spec.knowledge is not None:
                    knowledge = spec.knowledge(inputs, static, R, ref_cache)
        f = _compare(out, np.asarray(ref_out), "your forward's output", "", FORWARD_TOL, knowledge, "output")
        if f is not None:
            findings.append(f)
    else:  # no reference: the numeric gradient of their own forward is the yardstick
        expected = [numeric[n] for n in names]
    if len(manual) != len(names):
        findings.append(
            Finding("shape", "your backward", f"your backward returned {len(manual)} gradients for {len(names)} inputs")
        )
        return findings, table
    for n, g, r in zip(names, manual, expected):
        f = _compare(
            g,
            r,
            f"your backward: d{n}",
            "",
            BACKWARD_TOL,
            knowledge,
            n,
            extra={"graph": graph[n], "manual": g, "numeric": numeric[n]},
        )
        if f is not None:
            findings.append(f)
    return findings, table
