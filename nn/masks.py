"""Boolean attention masks: causal (no peeking ahead) and padding (no attending to filler).

A mask is True where a query may attend to a key and broadcasts against the scores
(..., Tq, Tk) of `nn.attention` and `nn.mha`. Masks act by exclusion: a masked key takes no
part in the softmax (its weight is exactly 0.0 and no gradient reaches it); they are not
added to the scores as large negative numbers.

    causal_mask(Tq, Tk, offset)[i, j] = j <= i + offset
    padding_mask(lengths)[b, 0, 0, j] = j < lengths[b]
"""

# Shape legend: B batch, Tq query positions, Tk key positions; (B, 1, 1, Tk) broadcasts
# against multi-head scores (B, H, Tq, Tk), (B, 1, Tk) against single-head (B, Tq, Tk).

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nn._checks import fail, positive_int


def causal_mask(Tq: int, Tk: int | None = None, *, offset: int = 0) -> np.ndarray:
    """Boolean (Tq, Tk) mask, True where key j may be seen by query i: j <= i + offset.

    `offset=0` (default) aligns the first query with the first key, as
    `torch.nn.functional.scaled_dot_product_attention(is_causal=True)` does. When the
    queries are the *last* Tq of Tk positions (decoding with cached keys), pass
    `offset=Tk - Tq`. A query row left with no key raises ValueError when used.
    """
    Tq = positive_int("causal_mask", "Tq", Tq)
    Tk = Tq if Tk is None else positive_int("causal_mask", "Tk", Tk)
    i = np.arange(Tq)[:, None]  # (Tq, 1)
    j = np.arange(Tk)[None, :]  # (1, Tk)
    return j <= i + offset  # (Tq, Tk)


def padding_mask(
    lengths_or_valid: Sequence[int] | np.ndarray, Tk: int | None = None, *, heads: bool = True
) -> np.ndarray:
    """Boolean key mask from sequence lengths or from a (B, Tk) boolean "key is real" array.

    Returns (B, 1, 1, Tk) when `heads` (to broadcast against multi-head scores
    (B, H, Tq, Tk)), else (B, 1, Tk) (single-head scores (B, Tq, Tk)). True where the key
    is a real token. Given lengths, `Tk` defaults to max(lengths). Combine with a causal
    mask by `&`: `padding_mask(lengths) & causal_mask(T)` has shape (B, 1, T, T).
    """
    piece = "padding_mask"
    a = np.asarray(lengths_or_valid)
    if a.dtype == np.bool_:
        if a.ndim != 2:
            raise fail(piece, f"a boolean key_valid must have shape (B, Tk), got {a.shape}")
        if Tk is not None and Tk != a.shape[1]:
            raise fail(piece, f"key_valid has Tk={a.shape[1]} but Tk={Tk} was given")
        valid = a  # (B, Tk)
    else:
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise fail(
                piece,
                f"expected integer lengths of shape (B,) or a boolean (B, Tk) array, got dtype {a.dtype} and shape {a.shape}",
            )
        if a.size == 0:
            raise fail(piece, "lengths is empty (B = 0)")
        Tk = int(a.max()) if Tk is None else Tk
        if (a < 1).any() or (a > Tk).any():
            raise fail(piece, f"every length must be in [1, Tk={Tk}], got lengths {a.tolist()}")
        valid = np.arange(Tk)[None, :] < a[:, None]  # (B, Tk)
    B, Tk_ = valid.shape
    return valid.reshape((B, 1, 1, Tk_) if heads else (B, 1, Tk_))
