"""Token embeddings: a table lookup, and the Transformer's lookup scaled by sqrt(C).

    embedding:        out[b, t, :] = W[ids[b, t], :]
    token_embedding:  out[b, t, :] = s W[ids[b, t], :],   s = sqrt(C), or 1 with scale=False
                      (Vaswani et al. 2017, section 3.4, scale the shared embedding
                      weights by sqrt(d_model) in the embedding layers)

The lookup is differentiable in W only; the ids are integers (a static argument). Positions
(sinusoidal and learned) are in `nn.positions`.
"""

# Shape legend: B batch, T time (positions), V vocabulary size, C channels (embedding width).

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from nn._checks import array_input, dout_array, fail, nested_input, shape_text
from nn._nested import map_leaves
from nn.module import Module
from nn.registry import Case, Piece, register

PIECE = "embedding"


# ------------------------------------------------------------------------------ checks
def _check_ids(ids: Any, V: int) -> np.ndarray:
    """`ids` as an int64 array; ValueError naming non-integer or out-of-range ids."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":  # floats and booleans are refused: a token id is an integer
        bad = ""
        if arr.dtype.kind == "f":
            off = ~np.isfinite(arr) | (arr != np.round(arr))
            if off.any():
                bad = f" (non-integer values {arr[off][:5].tolist()} at {np.argwhere(off)[:5].tolist()})"
        raise fail(PIECE, f"ids must be integer token ids, got dtype {arr.dtype}{bad}")
    if arr.ndim < 1:
        raise fail(PIECE, f"ids must have at least one axis, e.g. (B, T), got shape {shape_text(arr.shape)}")
    idx = arr.astype(np.int64)
    bad_mask = (idx < 0) | (idx >= V)
    if bad_mask.any():
        raise fail(
            PIECE, f"ids out of range [0, {V}): {idx[bad_mask][:5].tolist()} at {np.argwhere(bad_mask)[:5].tolist()}"
        )
    return idx


# ------------------------------------------------------------------------------ loops
def embedding_loops(W: Any, ids: Any) -> Any:
    """out[...] = W[ids[...]] on nested lists; W (V, C) of floats or Values, checked as in the manual form."""
    W, W_shape = nested_input(PIECE, "W", W, ndims=(2,), layout="(V, C)")
    idx = _check_ids(ids, W_shape[0]).tolist()

    # each id becomes a fresh list holding W's row of scalars: the graph sees W's leaves
    return map_leaves(lambda i: list(W[i]), idx)


# ------------------------------------------------------------------------------ manual pair
#: the largest one-hot matrix (ids x vocabulary entries) the backward builds: 4M entries, 32 MB in float64.
ONEHOT_MAX = 4_000_000


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (B, T) int64
    V: int
    C: int


def embedding_forward(W: np.ndarray, ids: Any) -> tuple[np.ndarray, EmbeddingCache]:
    """out = W[ids]: (V, C) table, (B, T) ids -> (B, T, C). Any shape of ids works: ids.shape + (C,)."""
    W = array_input(PIECE, "W", W, ndims=(2,), layout="(V, C)")
    idx = _check_ids(ids, W.shape[0])
    out = W[idx]  # (B, T, C), a copy (fancy indexing)
    return out, EmbeddingCache(ids=idx, V=W.shape[0], C=W.shape[1])


def embedding_backward(dout: np.ndarray, cache: EmbeddingCache) -> tuple[np.ndarray]:
    """dW, from dout (B, T, C).

    out[b, t, c] = sum_v [ids[b, t] == v] W[v, c], so

        dW[v, c] = sum over (b, t) with ids[b, t] == v of dout[b, t, c].

    A token appearing several times collects one contribution per occurrence: the rows are
    scatter-added. That sum is the product with the one-hot matrix of the ids,

        dW = onehot(ids)^T dout            onehot (N, V), N = number of ids,

    which one matrix product computes far faster than np.add.at's element loop when the
    one-hot matrix is small (N V <= ONEHOT_MAX); beyond it, np.add.at (`dW[ids] += dout`
    would drop repeated ids).
    """
    ids, V, C = cache.ids, cache.V, cache.C
    dout = dout_array(PIECE, dout, ids.shape + (C,))
    flat_ids, rows = ids.reshape(-1), dout.reshape(-1, C)  # (N,), (N, C)
    dt = rows.dtype if rows.dtype in (np.float32, np.float64) else np.float64
    if flat_ids.size * V <= ONEHOT_MAX:
        onehot = np.zeros((flat_ids.size, V), dtype=dt)  # (N, V)
        onehot[np.arange(flat_ids.size), flat_ids] = 1.0
        return (onehot.T @ rows,)  # (V, C)
    dW = np.zeros((V, C), dtype=dt)  # (V, C)
    np.add.at(dW, flat_ids, rows)
    return (dW,)


# ------------------------------------------------------------------------------ scaled (the Transformer's)
def _token_scale(C: int, scale: Any) -> float:
    if not isinstance(scale, (bool, np.bool_)):
        raise fail("token_embedding", f"scale must be a bool (True: multiply by sqrt(C)), got {scale!r}")
    return math.sqrt(C) if scale else 1.0


def token_embedding_loops(W: Any, ids: Any, *, scale: bool = True) -> Any:
    """s W[ids] on nested lists, s = sqrt(C) (or 1 with scale=False)."""
    rows = embedding_loops(W, ids)
    s = _token_scale(len(W[0]), scale)
    return map_leaves(lambda v: v * s, rows) if scale else rows


class TokenEmbeddingCache(NamedTuple):
    lookup: EmbeddingCache  # the table lookup's cache: ids (B, T), V, C
    scale: float  # s


def token_embedding_forward(W: np.ndarray, ids: Any, *, scale: bool = True) -> tuple[np.ndarray, TokenEmbeddingCache]:
    """out = s W[ids], s = sqrt(C): (V, C) table, (B, T) ids -> (B, T, C).

    Why: a table of entries ~ N(0, 1/C) (the size a tied output projection has) then gives
    rows of unit-size entries, the size of the sinusoidal encodings added to them.
    """
    out, lookup = embedding_forward(W, ids)  # (B, T, C)
    s = _token_scale(lookup.C, scale)
    if scale:
        out *= s  # in place: the lookup's output is a fresh copy
    return out, TokenEmbeddingCache(lookup=lookup, scale=s)


def token_embedding_backward(dout: np.ndarray, cache: TokenEmbeddingCache) -> tuple[np.ndarray]:
    """dW: out = s W[ids] is linear in W, so dW = embedding_backward(s dout), the scatter-add of s dout."""
    lookup = cache.lookup
    dout = dout_array("token_embedding", dout, lookup.ids.shape + (lookup.C,))
    return embedding_backward(dout * cache.scale, lookup)


# ------------------------------------------------------------------------------ layer
class Embedding(Module):
    """A learned (V, C) table `W`, initialised N(0, std^2) (std = 1 as in torch.nn.Embedding).

    `forward(ids)` returns W[ids] and caches the ids; `backward(dout)` adds dW into
    `self.grads["W"]` (there is no gradient for integer ids, so it returns None).
    """

    def __init__(self, V: int, C: int, rng: np.random.Generator | None = None, std: float = 1.0) -> None:
        super().__init__()
        for name, n in (("V", V), ("C", C)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Embedding: {name} must be a positive int, got {n!r}")
        self.V, self.C = int(V), int(C)
        # rng=None draws fresh entropy: fine when the weights are loaded right after (Module.load).
        rng = rng if rng is not None else np.random.default_rng()
        self.add_param("W", std * rng.standard_normal((self.V, self.C)))
        self._cache: EmbeddingCache | None = None

    def forward(self, ids: Any) -> np.ndarray:
        out, self._cache = embedding_forward(self.params["W"], ids)
        return out

    def backward(self, dout: np.ndarray) -> None:
        if self._cache is None:
            raise RuntimeError("Embedding.backward called before forward")
        (dW,) = embedding_backward(dout, self._cache)
        self.grads["W"] += dW


class TokenEmbedding(Embedding):
    """The Transformer's token embedding: a learned (V, C) table `W`, looked up and scaled by sqrt(C).

    With `scale` (default) W starts N(0, 1/C), so the scaled output has entries of unit
    variance; with `scale=False` it is `Embedding` (W ~ N(0, 1)). `std` overrides the init.
    `backward(dout)` adds dW into `self.grads["W"]` and returns None (ids have no gradient).
    """

    def __init__(
        self, V: int, C: int, rng: np.random.Generator | None = None, scale: bool = True, std: float | None = None
    ) -> None:
        _token_scale(1, scale)  # refuse a non-bool before building anything
        self.scale = bool(scale)
        super().__init__(V, C, rng, std=(1.0 / math.sqrt(C) if scale else 1.0) if std is None else std)
        self._token_cache: TokenEmbeddingCache | None = None

    def forward(self, ids: Any) -> np.ndarray:
        out, self._token_cache = token_embedding_forward(self.params["W"], ids, scale=self.scale)
        return out

    def backward(self, dout: np.ndarray) -> None:
        if self._token_cache is None:
            raise RuntimeError("TokenEmbedding.backward called before forward")
        (dW,) = token_embedding_backward(dout, self._token_cache)
        self.grads["W"] += dW


# ------------------------------------------------------------------------------ registry
def _case(B: int, T: int, V: int, C: int, force_repeat: bool = False) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        W = rng.standard_normal((V, C))
        ids = rng.integers(0, V, size=(B, T))
        if force_repeat:
            ids.reshape(-1)[-1] = ids.reshape(-1)[0]  # the same token twice: dW must add both
        return {"W": W}, {"ids": ids}

    return make


def _embedding_torch(torch: Any, W: Any, ids: Any) -> Any:
    """The torch referee (see `Piece`): F.embedding(ids, W); `ids` arrives as an int64 tensor."""
    return torch.nn.functional.embedding(ids, W)


register(
    Piece(
        name=PIECE,
        loops=embedding_loops,
        forward=embedding_forward,
        backward=embedding_backward,
        cases=(
            Case("batch1_T1_V3_C2", _case(1, 1, 3, 2)),
            Case("B2_T5_V4_C3_repeats", _case(2, 5, 4, 3, force_repeat=True)),
            Case("B3_T4_V7_C5", _case(3, 4, 7, 5, force_repeat=True)),
        ),
        description="token embedding lookup W[ids]; backward scatter-adds repeated ids",
        torch=_embedding_torch,
    )
)


def _token_case(B: int, T: int, V: int, C: int, scale: bool) -> Any:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        inputs, static = _case(B, T, V, C, force_repeat=True)(rng)
        return inputs, {**static, "scale": scale}

    return make


def _token_embedding_torch(torch: Any, W: Any, ids: Any, *, scale: bool = True) -> Any:
    """The torch referee (see `Piece`): F.embedding times sqrt(C)."""
    out = torch.nn.functional.embedding(ids, W)
    return out * math.sqrt(W.shape[1]) if scale else out


register(
    Piece(
        name="token_embedding",
        loops=token_embedding_loops,
        forward=token_embedding_forward,
        backward=token_embedding_backward,
        cases=(
            Case("scaled_B2_T3_V4_C5", _token_case(2, 3, 4, 5, True)),
            Case("unscaled_B1_T4_V3_C2", _token_case(1, 4, 3, 2, False)),
            Case("scaled_B3_T2_V6_C8", _token_case(3, 2, 6, 8, True)),
        ),
        description="the Transformer's token embedding sqrt(C) W[ids] (scale=False: W[ids])",
        torch=_token_embedding_torch,
    )
)
