"""The distillation loss (Hinton, Vinyals and Dean 2015): a student learns from the labels and from a
teacher's temperature-softened output distribution, written two ways.

With student logits z_s, teacher logits z_t (static: the teacher is not trained), integer labels y,
a temperature T > 0 and a weight alpha in [0, 1], per row (one example, or one position of a sequence)

    q_t = softmax(z_t / T)      q_s = softmax(z_s / T)      p = softmax(z_s)

    L_row = alpha T^2 KL(q_t || q_s) + (1 - alpha) CE(y, p)
          = alpha T^2 sum_c q_t,c (log q_t,c - log q_s,c) + (1 - alpha) (-log p_y)

and the loss is the mean of L_row over the K rows that take a loss: every row of (B, C) logits, or
the positions of (B, T, V) logits whose label is not `ignore_index` (nn.losses' IGNORE_INDEX, as in
`sequence_cross_entropy`). That mean is torch's `kl_div(..., reduction="batchmean")` over the kept
rows plus `cross_entropy`.

Stability. Every log-probability is a log-softmax of max-shifted logits (see nn.softmax), finite for
finite logits of any size (1e3 and beyond): no log of a probability is ever taken. A teacher
probability that underflows to exactly 0 (a logit 1e3 below the row's largest) then contributes
q log q - q log q_s = 0 * (finite) = 0, which is the limit 0 log 0 = 0; the loops form skips such
terms outright, so no graph node is built for them.

Gradient (the derivation `distillation_backward` follows). For one row, with u = z_s / T:

    KL = sum_c q_t,c log q_t,c - sum_c q_t,c log softmax(u)_c
    d(-log softmax(u)_c) / du_j = softmax(u)_j - [j = c]
    dKL/du_j = sum_c q_t,c (q_s,j - [j = c]) = q_s,j - q_t,j        (the q_t sum to 1)
    dKL/dz_s,j = (1/T) (q_s,j - q_t,j)                                 (du/dz_s = 1/T)
    dCE/dz_s,j = p_j - onehot(y)_j                                     (nn.losses.cross_entropy)

so

    dL_row/dz_s = alpha T (softmax(z_s/T) - softmax(z_t/T)) + (1 - alpha) (softmax(z_s) - onehot(y))

and the mean divides each row's gradient by K; ignored positions get 0 (they are not in the sum).

Why T^2. The soft term's gradient alone is (1/T)(q_s - q_t). For T large against the logits,
softmax(z/T)_c ~ (1 + z_c/T - mean(z)/T) / C, so q_s - q_t ~ (z_s - z_t - mean(z_s - z_t)) / (C T) and
dKL/dz_s ~ (z_s - z_t - mean) / (C T^2): it shrinks as 1/T^2. Multiplying KL by T^2 undoes exactly
that, so alpha weighs the soft against the hard term at about the same scale whatever T is, and
changing T does not silently change the effective learning rate of the soft term.
"""

# Shape legend: B batch (rows), C classes; for sequences T positions and V the vocabulary (the
# classes); K the rows (examples or positions) that take a loss. "T" as a number is the temperature.

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from engine import log
from nn._checks import array_input, dout_array, fail, kept_rows, nested_input, shape_text
from nn.losses import (
    IGNORE_INDEX,
    CrossEntropyCache,
    cross_entropy_backward,
    cross_entropy_forward,
    cross_entropy_loops,
)
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register
from nn.softmax import _shifted_exps

PIECE = "distillation"


# ------------------------------------------------------------------------------ checks
def _check_settings(temperature: Any, alpha: Any) -> tuple[float, float]:
    """(T, alpha) as floats: T finite and > 0, alpha in [0, 1]."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float, np.floating, np.integer))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise fail(PIECE, f"temperature must be a finite number > 0, got {temperature!r}")
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.floating, np.integer))
        or not math.isfinite(alpha)
        or not 0.0 <= alpha <= 1.0
    ):
        raise fail(PIECE, f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(temperature), float(alpha)


def _kept_rows(shape: tuple[int, ...], targets: Any, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep (R,) bool over the R = B or B*T rows, the kept labels (K,)) for logits (B, C) or (B, T, V)."""
    return kept_rows(PIECE, shape, targets, ignore_index, layouts=(2, 3))


def _teacher_array(teacher_logits: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    z_t = array_input(PIECE, "teacher_logits", teacher_logits)
    if z_t.shape != tuple(shape):
        raise fail(
            PIECE, f"teacher_logits must have the student's shape {shape_text(shape)}, got {shape_text(z_t.shape)}"
        )
    return z_t.astype(dtype, copy=False)


# ------------------------------------------------------------------------------ loops form
def distillation_loops(
    logits: Any,
    *,
    teacher_logits: Any,
    targets: Any,
    temperature: float = 1.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> Any:
    """L = (1/K) sum over kept rows of [alpha T^2 KL(q_t || q_s) + (1 - alpha) CE(y, softmax(z_s))], on nested lists.

    The student's logits may be floats or engine.Values; the teacher's are plain numbers (static).
    Per row, log q_s = (u - max u) - log sum e^(u - max u) with u = z_s / T, and likewise for the
    teacher; terms with q_t,c = 0 (underflow) are skipped: 0 log 0 = 0.
    """
    T, alpha = _check_settings(temperature, alpha)
    logits, shape = nested_input(PIECE, "logits", logits)
    keep, kept_targets = _kept_rows(shape, targets, ignore_index)
    z_t = _teacher_array(teacher_logits, shape, np.dtype(np.float64)).reshape(-1, shape[-1]).tolist()  # (R, C)
    rows = logits if len(shape) == 2 else [row for seq in logits for row in seq]  # (R, C)
    kept_rows = [r for r, k in zip(rows, keep.tolist()) if k]  # (K, C)
    kept_teacher = [r for r, k in zip(z_t, keep.tolist()) if k]
    kl_total = None
    for row, t_row in zip(kept_rows, kept_teacher):
        s_shifted, _, s_total = _shifted_exps([z / T for z in row])
        t_shifted, t_exps, t_total = _shifted_exps([z / T for z in t_row])
        log_s_total, log_t_total = log(s_total), math.log(t_total)
        for s_c, t_c, e_c in zip(s_shifted, t_shifted, t_exps):
            q_t = e_c / t_total
            if q_t == 0.0:  # 0 log 0 = 0: the term and its gradient vanish
                continue
            term = q_t * ((t_c - log_t_total) - (s_c - log_s_total))  # q_t (log q_t - log q_s)
            kl_total = term if kl_total is None else kl_total + term
    kl = 0.0 if kl_total is None else kl_total / len(kept_rows)
    ce = cross_entropy_loops(kept_rows, targets=kept_targets)
    return alpha * T * T * kl + (1.0 - alpha) * ce


# ------------------------------------------------------------------------------ manual pair
class DistillationCache(NamedTuple):
    q_s: np.ndarray  # (K, C) softmax(z_s / T) of the kept rows
    q_t: np.ndarray  # (K, C) softmax(z_t / T) of the kept rows
    ce: CrossEntropyCache  # cross_entropy's cache over the kept rows (holds softmax(z_s) and the labels)
    keep: np.ndarray  # (R,) which rows take a loss (R = B, or B*T)
    shape: tuple[int, ...]  # the logits' shape, (B, C) or (B, T, V)
    temperature: float
    alpha: float


def _log_softmax_rows(u: np.ndarray) -> np.ndarray:
    """log softmax over the last axis of (K, C), max-shifted: finite for finite u of any size."""
    shifted = u - u.max(axis=-1, keepdims=True)  # every entry <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # the sum is >= 1


def distillation_forward(
    logits: Any,
    *,
    teacher_logits: Any,
    targets: Any,
    temperature: float = 1.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[np.ndarray, DistillationCache]:
    """L (0-d) = mean over kept rows of alpha T^2 KL(q_t || q_s) + (1 - alpha) CE(y, softmax(z_s)).

    The hard term is `cross_entropy_forward` on the kept rows itself, so alpha = 0 gives exactly
    the cross-entropy loss (and, in the backward, exactly its gradient).
    """
    T, alpha = _check_settings(temperature, alpha)
    z_s = array_input(PIECE, "logits", logits)
    keep, kept_targets = _kept_rows(z_s.shape, targets, ignore_index)
    z_t = _teacher_array(teacher_logits, z_s.shape, z_s.dtype)
    C = z_s.shape[-1]
    s_rows = z_s.reshape(-1, C)[keep]  # (K, C)
    t_rows = z_t.reshape(-1, C)[keep]  # (K, C)
    log_q_s = _log_softmax_rows(s_rows / T)  # (K, C)
    log_q_t = _log_softmax_rows(t_rows / T)  # (K, C)
    q_t = np.exp(log_q_t)  # may underflow to 0: then q_t (log q_t - log q_s) = 0 * finite = 0
    K = s_rows.shape[0]
    kl = float((q_t * (log_q_t - log_q_s)).sum()) / K  # torch's batchmean over the kept rows
    ce, ce_cache = cross_entropy_forward(s_rows, targets=kept_targets)
    loss = alpha * T * T * kl + (1.0 - alpha) * float(ce)
    return np.asarray(loss, dtype=z_s.dtype), DistillationCache(
        np.exp(log_q_s), q_t, ce_cache, keep, tuple(z_s.shape), T, alpha
    )


def distillation_backward(dout: Any, cache: DistillationCache) -> tuple[np.ndarray]:
    """dlogits, the logits' shape: on each kept row (see the module docstring for the derivation)

        dL/dz_s = dout [alpha T (q_s - q_t) + (1 - alpha) (softmax(z_s) - onehot(y))] / K

    the hard term from `cross_entropy_backward` (with dout (1 - alpha)); 0 on ignored rows.
    """
    d = float(dout_array(PIECE, dout, ()))
    q_s, q_t, ce_cache, keep, shape, T, alpha = cache
    K = q_s.shape[0]
    (drows,) = cross_entropy_backward(d * (1.0 - alpha), ce_cache)  # (K, C), (1 - alpha) dout (p - onehot) / K
    drows += (q_s - q_t) * (d * alpha * T / K)
    dlogits = np.zeros((keep.shape[0], shape[-1]), dtype=drows.dtype)  # (R, C)
    dlogits[keep] = drows
    return (dlogits.reshape(shape),)


# ------------------------------------------------------------------------------ registry
def _distill_case(
    shape: tuple[int, ...], temperature: float, alpha: float, n_ignored: int = 0, scale: float = 2.0
) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        targets = rng.integers(0, shape[-1], size=shape[:-1])
        targets.reshape(-1)[rng.permutation(targets.size)[:n_ignored]] = IGNORE_INDEX
        static = {
            "teacher_logits": scale * rng.standard_normal(shape),
            "targets": targets,
            "temperature": temperature,
            "alpha": alpha,
            "ignore_index": IGNORE_INDEX,
        }
        return {"logits": scale * rng.standard_normal(shape)}, static

    return make


def _distillation_torch(
    torch: Any,
    logits: Any,
    *,
    teacher_logits: Any,
    targets: Any,
    temperature: float = 1.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> Any:
    """The torch referee (see `Piece`): F.kl_div(log_softmax(z_s/T), softmax(z_t/T), batchmean, log_target=False)
    and F.cross_entropy, over the rows whose target is not ignore_index."""
    F = torch.nn.functional
    C = logits.shape[-1]
    keep = targets.reshape(-1) != ignore_index
    z_s, z_t, y = logits.reshape(-1, C)[keep], teacher_logits.reshape(-1, C)[keep], targets.reshape(-1)[keep]
    kl = F.kl_div(
        F.log_softmax(z_s / temperature, dim=-1),
        F.softmax(z_t / temperature, dim=-1),
        reduction="batchmean",
        log_target=False,
    )
    return alpha * temperature**2 * kl + (1.0 - alpha) * F.cross_entropy(z_s, y)


register(
    Piece(
        name=PIECE,
        loops=distillation_loops,
        forward=distillation_forward,
        backward=distillation_backward,
        cases=(
            Case("batch 1: (1, 3), T 2, alpha 0.5", _distill_case((1, 3), 2.0, 0.5)),
            Case("odd: (5, 7), T 4, alpha 0.9", _distill_case((5, 7), 4.0, 0.9)),
            Case("T 1, alpha 1: (3, 4)", _distill_case((3, 4), 1.0, 1.0)),
            Case("sequences: (2, 4, 5), 3 ignored, T 2", _distill_case((2, 4, 5), 2.0, 0.7, n_ignored=3)),
            Case("large logits: (3, 4) x 30, T 3", _distill_case((3, 4), 3.0, 0.5, scale=30.0)),
        ),
        description="alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) CE; teacher logits static",
        torch=_distillation_torch,
        tags=("loss",),
    )
)
