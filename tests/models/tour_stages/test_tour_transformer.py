"""The Transformer block's tour stage and its sub-layer drawing (models/tour_stages/transformer.py)."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from models.tour_stages.transformer import block_graph, block_problem, tour_stage
from nn.transformer_block import transformer_block_forward, transformer_block_loops


def test_the_trace_holds_each_sublayer_of_the_paper_block() -> None:
    _, inputs, static = block_problem("a b c", d_model=4, n_heads=2, d_ff=8)
    trace: dict = {}
    y = transformer_block_loops(*(a.tolist() for a in inputs.values()), **static, trace=trace)
    assert list(trace) == ["attention", "add & norm 1", "feed-forward", "add & norm 2"]
    assert trace["add & norm 2"] is y
    manual, _ = transformer_block_forward(*inputs.values(), **static)
    np.testing.assert_allclose(np.array(y), manual, rtol=1e-12, atol=1e-12)  # the same block


def test_the_drawing_boxes_every_sublayer() -> None:
    drawing = block_graph()
    for name in ("input x", "attention", "add & norm 1", "feed-forward", "add & norm 2"):
        assert name in drawing.source or name.replace("&", "&amp;") in drawing.source, name  # DOT may escape &
    with engine.unfused():  # the graph of binary nodes only, as the block was drawn before the fused ops
        binary = block_graph()
    assert binary.truncated == 0 and binary.n_values > 500
    # each dot product and sum is one fused node now: fewer boxes, nothing cut
    assert drawing.truncated == 0 and 0 < drawing.n_values < binary.n_values


@pytest.mark.slow
def test_tour_stage_passes_and_writes_the_drawing(tmp_path) -> None:
    lines: list[str] = []
    assert tour_stage(tmp_path, lines.append)
    assert any("all 52 comparisons within tolerance" in line for line in lines)
    assert any((tmp_path / f"transformer_block_graph.{ext}").exists() for ext in ("svg", "dot"))
