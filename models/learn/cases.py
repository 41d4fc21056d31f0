"""The exercises' own cases and what their mistakes look like.

Edge cases (`EdgeCase`) catch the classic bugs the registry's cases are too gentle for:
logits of +-1000 (a softmax without the max shift overflows), float32 input (a buffer made
with np.zeros(shape) silently turns it into float64), a fully masked attention row (a softmax
over no keys: ours refuses it, theirs must too, not return NaN), odd head counts, batch 1, T = 1.

Knowledge functions (`KnowledgeFn`) compute, for one case, the named terms of a derivation
and the results of known mistakes, from the reference's cache and the case's inputs, so
that `diagnose.classify` can say "you dropped layer norm's mean path" by comparing numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from models.learn.grade import EdgeCase, Knowledge

if TYPE_CHECKING:  # annotations only: listing the exercises imports no piece
    from nn.registry import CaseMaker, Inputs, Static


# ---------------------------------------------------------------------------- edge cases
def _f32(make: CaseMaker) -> CaseMaker:
    """The same case with every float input in float32 (forward only: float32 has no room for numeric checks)."""

    def made(rng: np.random.Generator) -> tuple[Inputs, Static]:
        inputs, static = make(rng)
        return {k: v.astype(np.float32) for k, v in inputs.items()}, static

    return made


def float32_of(piece: str, case: int = 0, home: str = "") -> EdgeCase:
    """The registry case number `case` of `piece` (registered by module `home`), in float32; looked up when
    the case is made: listing the exercises must not import every piece."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        from models.learn.grade import registry_piece

        return _f32(registry_piece(piece, home).cases[case].make)(rng)

    return EdgeCase("float32 input", make, "forward")


def big_logits(shape: tuple[int, ...], scale: float = 1000.0, targets: bool = False) -> EdgeCase:
    """Logits of about +-scale: e^1000 overflows unless the row maximum is subtracted first."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        x = np.round(rng.standard_normal(shape)) * scale + rng.standard_normal(shape)
        static = {"targets": rng.integers(0, shape[-1], size=shape[:-1])} if targets else {}
        return {"logits" if targets else "x": x}, static

    return EdgeCase(f"logits of +-{scale:g}: {shape}", make, "forward", loops=True)


def big_margins(names: tuple[str, ...], B: int = 4, scale: float = 1000.0, beta: float | None = None) -> EdgeCase:
    """Rewards (or log-probabilities) far apart: log(sigmoid(-1000)) is log(0) unless written as a softplus."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        inputs = {n: rng.standard_normal(B) * scale for n in names}
        return inputs, ({"beta": beta} if beta is not None else {})

    return EdgeCase(f"margins of +-{scale:g}", make, "forward", loops=True)


def masked_row() -> EdgeCase:
    """A query row whose every key is masked: no softmax exists; ours raises ValueError, theirs must too."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        q, k, v = (rng.standard_normal((3, 4)) for _ in range(3))
        mask = np.ones((3, 3), dtype=bool)
        mask[1, :] = False
        return {"q": q, "k": k, "v": v}, {"mask": mask}

    return EdgeCase("a fully masked row", make, "raises")


def big_scores() -> EdgeCase:
    """Queries of size ~1000: the scores q k^T / sqrt(d) reach +-1000, so a softmax without its max shift overflows."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        q = rng.standard_normal((3, 4)) * 1000.0
        k, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        return {"q": q, "k": k, "v": v}, {}

    return EdgeCase("scores of +-1000", make, "forward", loops=True)


def big_inputs(name: str, shape: tuple[int, ...], scale: float = 1000.0) -> EdgeCase:
    """Entries of +-scale: e^1000 overflows a float, so an activation written from exponentials must pick its form by sign."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {name: rng.choice([-scale, scale], shape)}, {}

    return EdgeCase(f"inputs of +-{scale:g}", make, "forward", loops=True)


def mha_big_scores() -> EdgeCase:
    """Inputs of size ~100 with identity projections: the scores reach the thousands (a softmax without its shift overflows)."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        B, T, C, H = 1, 3, 4, 2
        x = rng.standard_normal((B, T, C)) * 100.0
        eye = np.eye(C)
        return {"xq": x, "xkv": x.copy(), "Wq": eye, "Wk": eye.copy(), "Wv": eye.copy(), "Wo": eye.copy()}, {
            "n_heads": H
        }

    return EdgeCase("scores in the thousands: H=2, C=4", make, "forward", loops=True)


def mha_odd_heads() -> EdgeCase:
    """3 heads of width 3 (C = 9), batch 1, causal: an odd head count catches a hard-coded split."""

    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        B, T, C, H = 1, 4, 9, 3
        x = rng.standard_normal((B, T, C))
        Ws = {n: rng.standard_normal((C, C)) / math.sqrt(C) for n in ("Wq", "Wk", "Wv", "Wo")}
        bs = {n: rng.standard_normal(C) * 0.1 for n in ("bq", "bk", "bv", "bo")}
        from nn.masks import causal_mask

        return {"xq": x, "xkv": x.copy(), **Ws, **bs}, {"n_heads": H, "mask": causal_mask(T)}

    return EdgeCase("odd head count: H=3, C=9, batch 1", make, "full")


# ---------------------------------------------------------------------------- knowledge
def batch_factors(n: int, name: str) -> dict[str, tuple[float, str]]:
    return {name: (float(n), "factor"), f"1/{name}": (1.0 / n, "factor")}


def know_softmax(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """dx_i = p_i dy_i - p_i sum_j p_j dy_j: the diagonal term and softmax's -p_i p_j term."""
    y = cache.y
    x = inputs["x"]
    off = -y * np.sum(R * y, axis=-1, keepdims=True)
    variants: dict[str, tuple[str, dict[str, np.ndarray]]] = {}
    if x.ndim >= 2:
        e = np.exp(x - x.max(axis=0, keepdims=True))
        variants["softmax over the first axis (the batch) instead of the last"] = (
            "axis",
            {"output": e / e.sum(axis=0, keepdims=True)},
        )
    variants["only the diagonal of the Jacobian, p_i (1 - p_i) dy_i: the -p_i p_j of j != i dropped"] = (
        "missing_term",
        {"x": y * (1 - y) * R},
    )
    return Knowledge(
        terms={
            "-p_i p_j (the off-diagonal of the Jacobian)": {"x": off},
            "p_i dy_i (the diagonal of the Jacobian)": {"x": y * R},
        },
        variants=variants,
    )


def know_cross_entropy(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """d logits = (softmax - onehot) / B: the softmax term and the target's own -1/B."""
    exps, total, targets = cache
    p = exps / total[:, None]
    B = p.shape[0]
    onehot = np.zeros_like(p)
    onehot[np.arange(B), targets] = 1.0
    C = p.shape[1]
    return Knowledge(
        terms={
            "-onehot(target) / B (the target's own term)": {"logits": -onehot / B * R},
            "softmax / B": {"logits": p / B * R},
        },
        factors={**(batch_factors(B, "B") if B > 1 else {}), **(batch_factors(C, "C") if C > 1 else {})},
    )


def know_mse(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    N = cache.diff.size
    f = {"2": (2.0, "factor"), "1/2": (0.5, "factor")}
    if N > 2:
        f.update(batch_factors(N, "N"))
        f["2N"] = (2.0 * N, "factor")
    return Knowledge(factors=f)


def know_sigmoid(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    s = cache.s
    return Knowledge(terms={"-s^2 (the product rule's second factor, s (1 - s))": {"x": -R * s * s}})


def know_tanh(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    y = cache.y
    return Knowledge(terms={"-tanh^2 (tanh' = 1 - tanh^2)": {"x": -R * y * y}})


def know_linear(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """The bias's gradient summed over the wrong axes: b is broadcast over every row (B, or B and T)."""
    rows = int(np.prod(inputs["x"].shape[:-1]))
    G = R.reshape(rows, -1)
    variants: dict[str, tuple[str, dict[str, np.ndarray]]] = {
        "db summed over the features (axis 1), not over the rows": ("axis", {"b": G.sum(axis=1)})
    }
    if rows > 1:
        variants["db is the first row's gradient only: not summed over the broadcast batch axis"] = (
            "axis",
            {"b": G[0]},
        )
    if R.ndim == 3 and R.shape[1] > 1:
        variants[
            f"db summed over the batch axis 0 only: b is broadcast over T (axis 1, length {R.shape[1]}) too; "
            "sum over both"
        ] = ("axis", {"b": R.sum(axis=0)})
    return Knowledge(factors=batch_factors(rows, "B") if rows > 1 else {}, variants=variants)


def know_layer_norm(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy gamma: the mean path and the variance path."""
    mean, rstd, xhat, gamma = cache
    dxhat = R * gamma
    mean_path = -rstd * dxhat.mean(axis=-1, keepdims=True)
    var_path = -rstd * xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    return Knowledge(
        terms={
            "the mean path, -mean(dxhat) / sigma": {"x": mean_path},
            "the variance path, -xhat mean(dxhat xhat) / sigma": {"x": var_path},
        }
    )


def _attention_parts(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, scale: float) -> np.ndarray:
    S = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    P = np.exp(S - S.max(axis=-1, keepdims=True))
    return P / P.sum(axis=-1, keepdims=True)


def know_attention(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """Attention's 1/sqrt(d) and its softmax's -p_i p_j term, and the mask applied after the softmax."""
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    mask = static.get("mask")
    d = q.shape[-1]
    P, scale = cache.P, cache.scale
    variants = {
        "no 1/sqrt(d) on the scores": ("scale", {"output": _attention_parts(q, k, v, mask, 1.0) @ v}),
        "1/d instead of 1/sqrt(d)": ("scale", {"output": _attention_parts(q, k, v, mask, 1.0 / d) @ v}),
    }
    if mask is not None:
        P_all = _attention_parts(q, k, v, None, scale)
        variants["mask applied after the softmax (weights no longer sum to 1)"] = (
            "mask_order",
            {"output": np.where(mask, P_all, 0.0) @ v},
        )
    dP = R @ np.swapaxes(v, -1, -2)
    off = -P * np.sum(dP * P, axis=-1, keepdims=True)  # softmax's -p_i p_j part of dS
    terms = {"softmax's -p_i p_j term (in dS)": {"q": off @ k * scale, "k": np.swapaxes(off, -1, -2) @ q * scale}}
    return Knowledge(
        terms=terms,
        variants=variants,
        factors={"sqrt(d)": (math.sqrt(d), "scale"), "1/sqrt(d)": (1 / math.sqrt(d), "scale")},
    )


def know_mha(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """A wrong 1/sqrt(d): the head width d = C / H, not C (and not none). Both are ours with Wq, bq rescaled."""
    from nn.mha import mha_forward

    C = inputs["Wq"].shape[1]
    H = static["n_heads"]
    dh = C // H
    variants = {}
    for label, s in (
        ("1/sqrt(C) instead of 1/sqrt(C/H)", math.sqrt(dh / C)),
        ("no 1/sqrt(d) on the scores", math.sqrt(dh)),
    ):
        scaled = dict(inputs)
        scaled["Wq"] = inputs["Wq"] * s
        if "bq" in scaled:
            scaled["bq"] = inputs["bq"] * s
        variants[label] = ("scale", {"output": np.asarray(mha_forward(*scaled.values(), **static)[0])})
    return Knowledge(
        variants=variants, factors={"sqrt(d)": (math.sqrt(dh), "scale"), "1/sqrt(d)": (1 / math.sqrt(dh), "scale")}
    )


def know_embedding(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    """dW rows of repeated ids add up; `dW[ids] = dout` (or numpy's buffered `dW[ids] += dout`) keeps only one."""
    ids, V, C = cache
    over = np.zeros((V, C))
    over[ids.reshape(-1)] = R.reshape(-1, C)
    return Knowledge(
        variants={
            "dW[ids] = dout (or dW[ids] += dout, which numpy buffers): a repeated id keeps "
            "only one row; use np.add.at": ("overwrite", {"W": over})
        }
    )


def know_distillation(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    T = float(static.get("temperature", 1.0))
    f = (
        {"T^2": (T * T, "factor"), "1/T^2": (1 / (T * T), "factor"), "T": (T, "factor"), "1/T": (1 / T, "factor")}
        if T != 1
        else {}
    )
    return Knowledge(factors=f)


def know_pairs(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    B = next(iter(inputs.values())).shape[0]
    f = batch_factors(B, "B") if B > 1 else {}
    beta = static.get("beta")
    if beta is not None and beta != 1:
        f.update({"beta": (float(beta), "factor"), "1/beta": (1 / float(beta), "factor")})
    return Knowledge(factors=f)


def know_ffn(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    rows = int(np.prod(inputs["x"].shape[:-1]))
    return Knowledge(factors=batch_factors(rows, "B") if rows > 1 else {})


def know_residual(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    return Knowledge(terms={"the skip path (dout itself)": {"x": R}})


def know_block(inputs: Inputs, static: dict, R: np.ndarray, cache: Any) -> Knowledge:
    return Knowledge(terms={"the residual's skip path": {"x": R}})
