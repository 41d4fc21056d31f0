"""Attention, shown: a graph of one tiny attention head, and a causal multi-head layer on a
sentence, checked three ways and drawn as a heatmap.

`attention_graph` builds softmax(q k^T / sqrt(2)) v for two tokens of width 2 on
`engine.Value`s with `nn.attention.attention_loops` and draws it with every scalar
labelled: q[i,c], k[j,c], v[j,c] (inputs), q[i].k[j] (dot products), s[i,j] (scaled
scores), m[i] (the constant max-shift), e[i,j] (exponentials),
z[i] (softmax denominators), p[i,j] (weights), out[i,c] and the scalar L = sum out[i,c]
that backward starts from.

`tour_stage` is the attention stage of `twograd tour`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine import Value
from engine.gradcheck import GradientReport
from nn.attention import attention_loops
from nn.masks import causal_mask
from nn.mha import attention_weights, init_mha_params, mha_backward, mha_forward, mha_loops
from nn.registry import check_three_way

TOUR_SENTENCE = "the cat sat on the mat"
TOUR_D_MODEL = 8  # model width C
TOUR_HEADS = 2  # heads of width C / H = 4
TOUR_SEED = 0


def _labelled(rows: list[list[float]], name: str) -> list[list[Value]]:
    return [[Value(x, f"{name}[{i},{c}]") for c, x in enumerate(row)] for i, row in enumerate(rows)]


def attention_graph(
    tokens: Sequence[str] = ("the", "cat"),
    *,
    d: int = 2,
    seed: int = 0,
    causal: bool = False,
    rankdir: str = "LR",
    max_nodes: int = 400,
) -> Any:
    """Draw one attention head over `tokens` (default two, width `d` = 2) on labelled Values.

    q, k, v are random (seeded). The graph is built by `attention_loops` (the library's loops
    form, not a copy), reduced to L = sum of the outputs, backpropagated, and drawn with the
    groups Q, K, V, scores, softmax and output boxed. Returns `viz.draw`'s GraphDrawing
    (`.save("attention.svg")`, or `.dot` without Graphviz).
    """
    from viz import draw  # viz may be used by models; imported here so `models` loads without it

    T = len(tokens)
    rng = np.random.default_rng(seed)
    q = _labelled(rng.standard_normal((T, d)).round(2).tolist(), "q")
    k = _labelled(rng.standard_normal((T, d)).round(2).tolist(), "k")
    v = _labelled(rng.standard_normal((T, d)).round(2).tolist(), "v")
    trace: dict[str, list] = {}
    out, weights = attention_loops(q, k, v, mask=causal_mask(T) if causal else None, return_weights=True, trace=trace)
    for name, grid in (("s", trace["scores"]), ("e", trace["exps"]), ("p", weights), ("out", out)):
        for i, row in enumerate(grid):
            for j, x in enumerate(row):
                if isinstance(x, Value):
                    x.label = f"{name}[{i},{j}]"
    # the nodes just before each score and exponential: q_i . k_j, the 1/sqrt(d) factor,
    # s_ij - m_i and the (constant) shift m_i = max_j s_ij
    dots = []
    for i, row in enumerate(trace["scores"]):
        for j, s_ij in enumerate(row):
            if isinstance(s_ij, Value):
                dot, factor = s_ij.parents
                dot.label, factor.label = f"q[{i}].k[{j}]", f"1/sqrt({d})"
                dots.append(dot)
    for i, row in enumerate(trace["exps"]):
        for j, e_ij in enumerate(row):
            if isinstance(e_ij, Value):
                (shifted,) = e_ij.parents
                shifted.label = f"s[{i},{j}]-m[{i}]"
                shifted.parents[1].label = f"m[{i}]"
    for i, z in enumerate(trace["sums"]):
        if isinstance(z, Value) and z.op:  # with one allowed key, z is that key's e[i,j]
            z.label = f"z[{i}]"
    total = out[0][0]
    for i, row in enumerate(out):
        for c, x in enumerate(row):
            if (i, c) != (0, 0):
                total = total + x
    total.label = "L"
    total.backward()
    present = lambda grid: [x for row in grid for x in row if isinstance(x, Value)]  # noqa: E731
    groups: dict[str, Any] = {
        "Q": q,
        "K": k,
        "V": v,
        "scores": dots + present(trace["scores"]),
        "softmax": present(trace["exps"]) + [z for z in trace["sums"] if isinstance(z, Value)] + present(weights),
        "output": present(out),
    }
    words = " ".join(tokens)
    title = f"attention over '{words}': out = softmax(q k^T / sqrt({d})) v,  L = sum out"
    return draw(total, rankdir=rankdir, groups=groups, title=title, max_nodes=max_nodes)


def tour_problem(
    sentence: str = TOUR_SENTENCE, seed: int = TOUR_SEED
) -> tuple[list[str], dict[str, np.ndarray], dict[str, Any]]:
    """(tokens, inputs, static) of the tour's causal multi-head attention.

    Token embeddings are random (seeded) rows of a (vocabulary, C) table; the same
    embedded sentence is passed as xq and as xkv (self-attention, checked as two inputs).
    Biases are small random numbers rather than zeros so that their gradients say something.
    """
    tokens = sentence.split()
    rng = np.random.default_rng(seed)
    vocab = sorted(set(tokens))
    table = rng.standard_normal((len(vocab), TOUR_D_MODEL))  # (V, C)
    x = table[[vocab.index(t) for t in tokens]][None]  # (1, T, C)
    params = init_mha_params(TOUR_D_MODEL, TOUR_HEADS, rng, bias=True)
    for name in ("bq", "bk", "bv", "bo"):
        params[name] = 0.1 * rng.standard_normal(TOUR_D_MODEL)
    inputs = {"xq": x, "xkv": x.copy(), **{n: params[n] for n in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")}}
    static = {"n_heads": TOUR_HEADS, "mask": causal_mask(len(tokens))}
    return tokens, inputs, static


def gradient_table(report: GradientReport) -> str:
    """One line per input: max |graph - manual|, max |manual - numeric|, ok."""
    rows: dict[str, dict[str | tuple[str, str], Any]] = {}  # input -> shape, ok, and (left, right) -> max abs
    for r in report.rows:
        entry = rows.setdefault(r.input, {"shape": "x".join(map(str, r.shape)) or "scalar", "ok": True})
        entry[(r.left, r.right)] = r.max_abs
        entry["ok"] = entry["ok"] and r.passed
    lines = [f"{'input':8s} {'shape':>8s}  {'graph vs manual':>15s}  {'manual vs numeric':>17s}  ok"]
    for name, e in rows.items():
        gm = e.get(("graph", "manual"), float("nan"))
        mn = e.get(("manual", "numeric"))
        mn_text = f"{mn:17.2e}" if mn is not None else f"{'-':>17s}"
        label = "forward" if name == "output" else name
        lines.append(f"{label:8s} {e['shape']:>8s}  {gm:15.2e}  {mn_text}  {'ok' if e['ok'] else 'FAIL'}")
    return "\n".join(lines)


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Tour stage: causal multi-head attention checked three ways, its heatmap and a head's graph."""
    from viz.plots import PlotsUnavailable, plot_attention

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, inputs, static = tour_problem()
    B, T, C = inputs["xq"].shape
    echo(
        f"causal multi-head attention on {' '.join(repr(t) for t in tokens)}: B={B}, T={T}, d_model={C}, heads={TOUR_HEADS}"
    )
    report = check_three_way(mha_loops, mha_forward, mha_backward, inputs, static, name="mha (causal)")
    echo(gradient_table(report))
    if report.passed:
        echo(
            f"all {len(report.rows)} comparisons within tolerance (graph vs manual: float64 rounding; vs numeric: finite differences)"
        )
    else:
        echo(f"{len(report.failures)} of {len(report.rows)} comparisons FAILED:\n{report}")

    _, cache = mha_forward(*inputs.values(), **static)
    weights = attention_weights(cache)[0]  # (H, T, T)
    try:
        path = plot_attention(
            weights, tokens, tokens, out_dir / "attention_heads.png", title="causal self-attention weights"
        )
        echo(f"wrote {path}")
    except PlotsUnavailable as err:
        echo(f"(no heatmap: {err})")

    drawing = attention_graph()
    path = drawing.save_or_dot(out_dir / "attention_graph.svg", echo)
    echo(f"wrote {path} ({drawing.n_values} values, {drawing.n_ops} ops: one head, two tokens, d=2)")
    return report.passed
