"""The Transformer block, shown: the paper's block on a sentence, checked three ways, and drawn
sub-layer by sub-layer.

    x = sqrt(C) E[tokens] + PE          token embeddings (scaled, as the paper) + sinusoidal positions
    h = LayerNorm(x + MHA(x))           attention, then add & norm
    y = LayerNorm(h + FFN(h))           feed-forward, then add & norm

`block_graph` builds the block for two tokens of width 4 on labelled `engine.Value`s with
`nn.transformer_block.transformer_block_loops` (the library's loops form, not a copy) and
draws it with each sub-layer boxed. `tour_stage` is the block's stage of `twograd tour`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine import Value
from models.tour_stages.attention import gradient_table
from nn.embedding import token_embedding_forward
from nn.positions import positional_encoding
from nn.registry import check_three_way
from nn.transformer_block import (
    block_param_names,
    init_block_params,
    transformer_block_backward,
    transformer_block_forward,
    transformer_block_loops,
)

TOUR_SENTENCE = "the cat sat on the mat"
TOUR_D_MODEL = 8  # C
TOUR_HEADS = 2  # H, heads of width 4
TOUR_D_FF = 16  # F = 2 C: a small feed-forward keeps the graph path quick
TOUR_SEED = 0
#: the paper's block: post-norm, ReLU, layer norm, with biases, no mask (an encoder layer).
PAPER_BLOCK = {"activation": "relu", "norm": "layer", "norm_first": False, "causal": False}


def embed(tokens: Sequence[str], d_model: int, rng: np.random.Generator) -> np.ndarray:
    """x (1, T, C) = sqrt(C) E[ids] + PE[:T], E ~ N(0, 1/C) over the sentence's own vocabulary."""
    vocab = sorted(set(tokens))
    table = rng.standard_normal((len(vocab), d_model)) / np.sqrt(d_model)  # (V, C)
    ids = np.array([[vocab.index(t) for t in tokens]])  # (1, T)
    x, _ = token_embedding_forward(table, ids, scale=True)  # (1, T, C)
    return x + positional_encoding(len(tokens), d_model)


def block_problem(
    sentence: str = TOUR_SENTENCE,
    seed: int = TOUR_SEED,
    d_model: int = TOUR_D_MODEL,
    n_heads: int = TOUR_HEADS,
    d_ff: int = TOUR_D_FF,
) -> tuple[list[str], dict[str, np.ndarray], dict[str, Any]]:
    """(tokens, inputs, static) of the paper's block on `sentence`: x and every parameter by name.

    Biases and gains are moved off 0 and 1 (small random numbers) so that their gradients say something.
    """
    tokens = sentence.split()
    rng = np.random.default_rng(seed)
    x = embed(tokens, d_model, rng)
    params = init_block_params(d_model, n_heads, d_ff, rng, norm="layer", bias=True)
    for name, a in params.items():
        if not name.startswith("W"):
            params[name] = a + 0.1 * rng.standard_normal(a.shape)
    return tokens, {"x": x, **params}, {"n_heads": n_heads, **PAPER_BLOCK}


def _labelled(array: np.ndarray, name: str) -> list[Any]:
    """A 1-d or 2-d array as (nested) lists of Values labelled name[i] or name[i,j]."""
    if array.ndim == 1:
        return [Value(float(v), f"{name}[{i}]") for i, v in enumerate(array)]
    return [[Value(float(v), f"{name}[{i},{j}]") for j, v in enumerate(row)] for i, row in enumerate(array)]


def _flat(nested: Any) -> list[Value]:
    if isinstance(nested, Value):
        return [nested]
    if isinstance(nested, list):
        return [v for item in nested for v in _flat(item)]
    return []


def _created_by(outputs: list[Value], done: set[int]) -> list[Value]:
    """The Values that `outputs` depend on which are not in `done` (ids): what one sub-layer made."""
    found: list[Value] = []
    stack = list(outputs)
    while stack:
        v = stack.pop()
        if id(v) in done:
            continue
        done.add(id(v))
        found.append(v)
        stack.extend(p for p in v.parents if isinstance(p, Value))
    return found


def block_graph(
    tokens: Sequence[str] = ("the", "cat"),
    *,
    d_model: int = 4,
    n_heads: int = 2,
    d_ff: int = 8,
    seed: int = 0,
    max_nodes: int = 3000,
) -> Any:
    """Draw the paper's block over two tokens of width 4, each sub-layer in its own box.

    The block's output is reduced to L = sum_tc y_tc r_tc with fixed random r (a plain sum of
    layer-normed rows would be constant), backpropagated, and drawn: every node shows its data
    and grad. Returns viz.draw's GraphDrawing (`.save("block.svg")`).
    """
    from viz import draw  # viz may be used by models; imported here so `models` loads without it

    _, inputs, static = block_problem(" ".join(tokens), seed, d_model, n_heads, d_ff)
    x = [_labelled(inputs["x"][0], "x")]  # (1, T, C)
    params = {n: _labelled(inputs[n], n) for n in block_param_names("layer", True)}
    trace: dict[str, Any] = {}
    y = transformer_block_loops(x, *params.values(), **static, trace=trace)
    r = np.random.default_rng(seed + 1).standard_normal((len(tokens), d_model)).round(2)
    terms = [y[0][t][c] * float(r[t, c]) for t in range(len(tokens)) for c in range(d_model)]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    total.label = "L"
    total.backward()
    done = {id(v) for v in _flat(x)}  # the inputs stay outside every box
    groups = {"input x": _flat(x)}
    for name, value in trace.items():
        groups[name] = _created_by(_flat(value), done)
    title = (
        f"the paper's Transformer block over {' '.join(map(repr, tokens))}, d_model={d_model}, {n_heads} heads, "
        f"d_ff={d_ff}: h = LayerNorm(x + MHA(x)), y = LayerNorm(h + FFN(h)), L = sum y r"
    )
    return draw(total, rankdir="LR", groups=groups, title=title, max_nodes=max_nodes)


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage: the paper's block on a sentence, its three-way gradient table, and its drawing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, inputs, static = block_problem()
    y, _ = transformer_block_forward(*inputs.values(), **static)
    B, T, C = inputs["x"].shape
    echo(
        f"the paper's block on {' '.join(repr(t) for t in tokens)}: x = sqrt(C) E[tokens] + PE, B={B} T={T} C={C}, "
        f"{TOUR_HEADS} heads, d_ff={TOUR_D_FF}"
    )
    echo(
        f"h = LayerNorm(x + MHA(x)), y = LayerNorm(h + FFN(h)) -> y {'x'.join(map(str, y.shape))}; "
        f"y['{tokens[1]}'] = [{', '.join(f'{v:.2f}' for v in y[0, 1])}]"
    )
    report = check_three_way(
        transformer_block_loops,
        transformer_block_forward,
        transformer_block_backward,
        inputs,
        static,
        name="transformer block (post-norm)",
    )
    echo(gradient_table(report))
    if report.passed:
        echo(
            f"all {len(report.rows)} comparisons within tolerance (graph vs manual: float64 rounding; vs numeric: finite differences)"
        )
    else:
        echo(f"{len(report.failures)} of {len(report.rows)} comparisons FAILED:\n{report}")
    drawing = block_graph()
    path = drawing.save_or_dot(out_dir / "transformer_block_graph.svg", echo)
    echo(f"wrote {path} ({drawing.n_values} values, {drawing.n_ops} ops: two tokens, d_model=4, boxed by sub-layer)")
    return report.passed
