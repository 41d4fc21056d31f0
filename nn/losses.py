"""Losses, each written two ways: mean squared error, cross-entropy, binary cross-entropy.

Every loss returns a scalar: a 0-d float64 array from `NAME_forward`, a single float or
engine.Value from `NAME_loops`. Its backward takes dout = dL/dloss (a scalar, 1.0 when the
loss is the final output) and returns one gradient per differentiable input.

Which inputs are differentiable, piece by piece:

  * mse(pred, target): both (torch's mse_loss does the same; a teacher's outputs in
    distillation are a target that may itself be trained). dtarget = -dpred.
  * cross_entropy(logits, *, targets): logits only; integer class targets are static.
  * binary_cross_entropy(logits, *, targets): logits only; float targets in [0, 1] are static.
  * sequence_cross_entropy(logits, *, targets, ignore_index): a language model's loss over
    (B, T, V) logits; integer targets (B, T) are static, and positions whose target is
    `ignore_index` (padding, prompts) take no loss.
"""

# Shape legend: B batch (rows), C classes; "..." any shape; N the number of elements averaged;
# for sequences T positions, V vocabulary (the classes), K the positions that take a loss.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import cross_entropy as cross_entropy_row
from engine import exp, log, total
from nn._checks import (
    array_input,
    as_float_array,
    class_targets,
    dout_array,
    fail,
    kept_rows,
    nested_input,
    same_shape,
    shape_text,
)
from nn._nested import flatten
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register


def _scalar_dout(piece: str, dout: Any) -> float:
    return float(dout_array(piece, dout, ()))


def _nonempty(piece: str, name: str, shape: tuple[int, ...]) -> None:
    if 0 in shape:
        raise fail(piece, f"{name} is empty (shape {shape_text(shape)}): a mean over no elements is undefined")


# ------------------------------------------------------------------------------ mse
def mse_loops(pred: Any, target: Any) -> Any:
    """L = (1/N) sum_i (pred_i - target_i)^2 over all N elements of nested lists."""
    pred, p_shape = nested_input("mse", "pred", pred)
    target, t_shape = nested_input("mse", "target", target)
    same_shape("mse", "pred", p_shape, "target", t_shape)
    _nonempty("mse", "pred", p_shape)
    p_leaves, t_leaves = flatten(pred), flatten(target)
    d = p_leaves[0] - t_leaves[0]
    total = d * d
    for p, t in zip(p_leaves[1:], t_leaves[1:]):
        d = p - t
        total = total + d * d
    return total / len(p_leaves)


class MseCache(NamedTuple):
    diff: np.ndarray  # (...) pred - target


def mse_forward(pred: Any, target: Any) -> tuple[np.ndarray, MseCache]:
    """L = mean((pred - target)^2) over all elements (PyTorch's reduction='mean')."""
    pred = array_input("mse", "pred", pred)
    target = array_input("mse", "target", target)
    same_shape("mse", "pred", pred.shape, "target", target.shape)
    _nonempty("mse", "pred", pred.shape)
    diff = np.asarray(pred - target)  # (...)
    flat = diff.reshape(-1)
    return np.asarray(np.dot(flat, flat) / flat.shape[0]), MseCache(diff)


def mse_backward(dout: Any, cache: MseCache) -> tuple[np.ndarray, np.ndarray]:
    """L = (1/N) sum_i d_i^2 with d = pred - target:  dL/dpred_i = 2 d_i / N,  dL/dtarget_i = -2 d_i / N."""
    diff = cache.diff
    dloss = _scalar_dout("mse", dout)
    dpred = diff * (2.0 * dloss / diff.size)
    return dpred, -dpred


# ------------------------------------------------------------------------------ cross_entropy
def _check_ce_shapes(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise fail("cross_entropy", f"logits must have shape (B, C), got shape {shape_text(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise fail("cross_entropy", f"logits needs at least one row and one class, got shape {shape_text(shape)}")


def cross_entropy_loops(logits: Any, *, targets: Any) -> Any:
    """L = (1/B) sum_b -log softmax(logits_b)[t_b] = (1/B) sum_b (log sum_c e^(z_bc) - z_b,t_b),

    with z_b = logits_b - max(logits_b) (the shift cancels; see nn.softmax).
    """
    logits, shape = nested_input("cross_entropy", "logits", logits)
    _check_ce_shapes(shape)
    t = class_targets("cross_entropy", targets, shape[0], shape[1], shape).tolist()
    nlls = [cross_entropy_row(row, target) for row, target in zip(logits, t)]  # -log p_target, one node a row
    return total(nlls) / shape[0]  # one fused node on Values


class CrossEntropyCache(NamedTuple):
    exps: np.ndarray  # (B, C) e^(z - max z) per row
    total: np.ndarray  # (B,) row sums of exps; softmax = exps / total
    targets: np.ndarray  # (B,) integer class indices


def cross_entropy_forward(logits: Any, *, targets: Any) -> tuple[np.ndarray, CrossEntropyCache]:
    """L = mean over rows b of -log softmax(logits_b)[t_b], computed as log-sum-exp minus the target logit.

    With z_b = logits_b - max_c logits_bc every exponent is <= 0 and each row's sum is >= 1,
    so logits of +-1e4 give an exact, finite loss.
    """
    logits = array_input("cross_entropy", "logits", logits)
    _check_ce_shapes(logits.shape)
    B, C = logits.shape
    t = class_targets("cross_entropy", targets, B, C, logits.shape)
    z = logits - logits.max(axis=1, keepdims=True)  # (B, C), every entry <= 0
    picked = z[np.arange(B), t]  # (B,) the target's shifted logit
    exps = np.exp(z, out=z)  # (B, C), reuses z's memory
    total = exps.sum(axis=1)  # (B,), >= 1
    loss = (np.log(total).sum() - picked.sum()) / B
    return np.asarray(loss), CrossEntropyCache(exps, total, t)


def cross_entropy_backward(dout: Any, cache: CrossEntropyCache) -> tuple[np.ndarray]:
    """Fused softmax + negative log-likelihood gradient.

    L_b = log S_b - z_b,t_b with S_b = sum_c e^(z_bc):  dL_b/dz_bc = e^(z_bc)/S_b - [c = t_b] = p_bc - onehot_bc.
    The mean over B rows divides by B:  dlogits = dout (p - onehot) / B.
    """
    exps, total, t = cache
    B = exps.shape[0]
    drow = _scalar_dout("cross_entropy", dout) / B  # dL/dL_b for each row's loss
    dlogits = exps * (drow / total)[:, None]  # drow * p, (B, C)
    dlogits[np.arange(B), t] -= drow  # the one-hot term, one entry per row
    return (dlogits,)


# ------------------------------------------------------------------------------ binary_cross_entropy
def _bce_targets(targets: Any, z_shape: tuple[int, ...]) -> np.ndarray:
    """Float targets in [0, 1] of the logits' shape. One pass: NaN and +-inf fail the range test too."""
    y = as_float_array("binary_cross_entropy", "targets", targets)
    same_shape("binary_cross_entropy", "logits", z_shape, "targets", y.shape)
    if not ((y >= 0.0) & (y <= 1.0)).all():
        i = np.argwhere(~((y >= 0.0) & (y <= 1.0)))[0]
        where = f" at index {tuple(int(k) for k in i)}" if y.ndim else ""
        raise fail("binary_cross_entropy", f"targets must be finite probabilities in [0, 1], got {y[tuple(i)]}{where}")
    return y


def binary_cross_entropy_loops(logits: Any, *, targets: Any) -> Any:
    """L = (1/N) sum_i [max(z_i, 0) - z_i y_i + log(1 + e^(-|z_i|))], z the logits, y the targets.

    This is -[y log s(z) + (1 - y) log(1 - s(z))] rewritten so no exponent is positive.
    """
    logits, shape = nested_input("binary_cross_entropy", "logits", logits)
    _nonempty("binary_cross_entropy", "logits", shape)
    y = _bce_targets(targets, shape)
    total = None
    for z, yi in zip(flatten(logits), y.reshape(-1).tolist()):
        if z > 0:  # max(z, 0) = z, |z| = z
            term = z - z * yi + log(1.0 + exp(-z))
        else:  # max(z, 0) = 0, |z| = -z (z = 0 lands here: the slope there is s(0) - y = 0.5 - y)
            term = log(1.0 + exp(z)) - z * yi
        total = term if total is None else total + term
    assert total is not None  # logits is not empty (checked above)
    return total / y.size


class BceCache(NamedTuple):
    z: np.ndarray  # (...) the logits, by reference
    y: np.ndarray  # (...) the targets, by reference
    e: np.ndarray  # (...) e^(-|z|), in (0, 1]


def binary_cross_entropy_forward(logits: Any, *, targets: Any) -> tuple[np.ndarray, BceCache]:
    """L = mean(max(z, 0) - z y + log(1 + e^(-|z|))): binary cross-entropy of sigmoid(z) against y.

    Derivation: with s = sigmoid(z), -y log s - (1 - y) log(1 - s) = log(1 + e^z) - z y, and
    log(1 + e^z) = max(z, 0) + log(1 + e^(-|z|)) never exponentiates a positive number.
    """
    z = array_input("binary_cross_entropy", "logits", logits)
    _nonempty("binary_cross_entropy", "logits", z.shape)
    y = _bce_targets(targets, z.shape)
    e = np.exp(-np.abs(z))  # (...), in (0, 1]
    terms = np.maximum(z, 0.0)
    terms -= z * y
    terms += np.log1p(e)
    return np.asarray(terms.mean()), BceCache(z, y, e)


def binary_cross_entropy_backward(dout: Any, cache: BceCache) -> tuple[np.ndarray]:
    """dL/dz_i = (1/N) (s(z_i) - y_i):  d/dz [log(1 + e^z) - z y] = e^z / (1 + e^z) - y = s(z) - y.

    s(z) is rebuilt from the cached e = e^(-|z|): s = 1/(1 + e) for z >= 0, e/(1 + e) for z < 0.
    """
    z, y, e = cache
    dterm = _scalar_dout("binary_cross_entropy", dout) / z.size  # dL/d(each element's term)
    dz = np.where(z >= 0.0, 1.0, e)
    dz /= 1.0 + e  # s(z)
    dz -= y
    dz *= dterm
    return (dz,)


# ------------------------------------------------------------------------------ sequence_cross_entropy
IGNORE_INDEX = -1  # torch's default is -100; any negative id works, and -1 reads as "none"
SEQ_PIECE = "sequence_cross_entropy"


def _kept_positions(logits_shape: tuple[int, ...], targets: Any, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep (B*T,) bool, the kept targets (K,)): which positions take a loss, and their classes."""
    return kept_rows(SEQ_PIECE, logits_shape, targets, ignore_index, layouts=(3,))


def sequence_cross_entropy_loops(logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX) -> Any:
    """L = (1/K) sum over the K positions (b, t) with y_bt != ignore_index of -log softmax(logits_bt)[y_bt]:
    the rows that take a loss, then `cross_entropy_loops` on them (torch's mean with ignore_index)."""
    logits, shape = nested_input(SEQ_PIECE, "logits", logits)
    keep, kept_targets = _kept_positions(shape, targets, ignore_index)
    rows = [row for seq in logits for row in seq]  # (B*T, V)
    return cross_entropy_loops([r for r, k in zip(rows, keep.tolist()) if k], targets=kept_targets)


class SequenceCrossEntropyCache(NamedTuple):
    rows: CrossEntropyCache  # cross_entropy's cache over the K kept rows
    keep: np.ndarray  # (B*T,) which positions take a loss
    shape: tuple[int, int, int]  # (B, T, V)


def sequence_cross_entropy_forward(
    logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX
) -> tuple[np.ndarray, SequenceCrossEntropyCache]:
    """The mean cross-entropy over the positions that take a loss: logits (B, T, V) -> 0-d."""
    logits = array_input(SEQ_PIECE, "logits", logits)
    keep, kept_targets = _kept_positions(logits.shape, targets, ignore_index)
    B, T, V = logits.shape
    loss, cache = cross_entropy_forward(logits.reshape(B * T, V)[keep], targets=kept_targets)  # (K, V) rows
    return loss, SequenceCrossEntropyCache(cache, keep, (B, T, V))


def sequence_cross_entropy_backward(dout: Any, cache: SequenceCrossEntropyCache) -> tuple[np.ndarray]:
    """dlogits (B, T, V): cross_entropy's (p - onehot) dout / K on the kept rows, 0 on the ignored ones
    (an ignored position is not in the sum, so the loss does not depend on its logits)."""
    (drows,) = cross_entropy_backward(_scalar_dout(SEQ_PIECE, dout), cache.rows)  # (K, V)
    B, T, V = cache.shape
    dlogits = np.zeros((B * T, V), dtype=drows.dtype)
    dlogits[cache.keep] = drows
    return (dlogits.reshape(B, T, V),)


# ------------------------------------------------------------------------------ registry
def _mse_case(shape: tuple[int, ...]) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"pred": rng.standard_normal(shape), "target": rng.standard_normal(shape)}, {}

    return make


def _ce_case(B: int, C: int, scale: float = 2.0) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"logits": scale * rng.standard_normal((B, C))}, {"targets": rng.integers(0, C, size=B)}

    return make


def _bce_case(shape: tuple[int, ...], hard: bool = False) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        z = 2.0 * rng.standard_normal(shape)
        y = rng.integers(0, 2, size=shape).astype(np.float64) if hard else rng.uniform(0.0, 1.0, shape)
        return {"logits": z}, {"targets": y}

    return make


def _mse_torch(torch: Any, pred: Any, target: Any) -> Any:
    """The torch referee (see `Piece`): F.mse_loss, mean reduction, gradients to both inputs."""
    return torch.nn.functional.mse_loss(pred, target)


def _cross_entropy_torch(torch: Any, logits: Any, *, targets: Any) -> Any:
    """The torch referee (see `Piece`): F.cross_entropy, mean over rows; targets an int64 tensor."""
    return torch.nn.functional.cross_entropy(logits, targets)


def _binary_cross_entropy_torch(torch: Any, logits: Any, *, targets: Any) -> Any:
    """The torch referee (see `Piece`): F.binary_cross_entropy_with_logits, mean; float64 targets."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


register(
    Piece(
        name="mse",
        loops=mse_loops,
        forward=mse_forward,
        backward=mse_backward,
        cases=(
            Case("batch 1: (1,)", _mse_case((1,))),
            Case("odd: (3, 5)", _mse_case((3, 5))),
            Case("3-d: (2, 3, 4)", _mse_case((2, 3, 4))),
        ),
        description="mean((pred - target)^2); both inputs differentiable",
        torch=_mse_torch,
        tags=("loss",),
    )
)

register(
    Piece(
        name="cross_entropy",
        loops=cross_entropy_loops,
        forward=cross_entropy_forward,
        backward=cross_entropy_backward,
        cases=(
            Case("batch 1: (1, 3)", _ce_case(1, 3)),
            Case("odd: (5, 7)", _ce_case(5, 7)),
            Case("two classes: (4, 2)", _ce_case(4, 2)),
            Case("large logits: (3, 4) x 30", _ce_case(3, 4, scale=30.0)),
        ),
        description="mean over rows of -log softmax(logits)[target]; integer targets static",
        torch=_cross_entropy_torch,
        tags=("loss",),
    )
)


def _seq_ce_case(B: int, T: int, V: int, n_ignored: int) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        targets = rng.integers(0, V, size=(B, T))
        targets.reshape(-1)[rng.permutation(B * T)[:n_ignored]] = IGNORE_INDEX
        return {"logits": 2.0 * rng.standard_normal((B, T, V))}, {"targets": targets, "ignore_index": IGNORE_INDEX}

    return make


def _sequence_cross_entropy_torch(torch: Any, logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX) -> Any:
    """The torch referee (see `Piece`): F.cross_entropy over (B*T, V) rows with ignore_index."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)


register(
    Piece(
        name=SEQ_PIECE,
        loops=sequence_cross_entropy_loops,
        forward=sequence_cross_entropy_forward,
        backward=sequence_cross_entropy_backward,
        cases=(
            Case("one sequence, nothing ignored: (1, 3, 5)", _seq_ce_case(1, 3, 5, 0)),
            Case("padded: (2, 4, 3), 3 ignored", _seq_ce_case(2, 4, 3, 3)),
            Case("one position kept: (2, 2, 4)", _seq_ce_case(2, 2, 4, 3)),
        ),
        description="mean cross-entropy over (B, T, V) logits; targets equal to ignore_index take no loss",
        torch=_sequence_cross_entropy_torch,
        tags=("loss",),
    )
)

register(
    Piece(
        name="binary_cross_entropy",
        loops=binary_cross_entropy_loops,
        forward=binary_cross_entropy_forward,
        backward=binary_cross_entropy_backward,
        cases=(
            Case("batch 1: (1,)", _bce_case((1,))),
            Case("odd: (5,)", _bce_case((5,))),
            Case("hard labels: (3, 4)", _bce_case((3, 4), hard=True)),
        ),
        description="binary cross-entropy from logits, mean; float targets in [0, 1] static",
        torch=_binary_cross_entropy_torch,
        tags=("loss",),
    )
)
