"""Losses of alignment, each written two ways: Bradley-Terry, DPO, REINFORCE with a KL penalty,
and the token log-probabilities they are all functions of.

* `bradley_terry(r_chosen, r_rejected)`: a reward model's loss on preference pairs,
  mean_b -log sigmoid(r_chosen_b - r_rejected_b) (Bradley and Terry 1952; InstructGPT's RM loss).
* `dpo(logp_w, logp_l, ref_w, ref_l, *, beta)`: Direct Preference Optimization (Rafailov et al.
  2023), a function of the four sequence log-probabilities (policy and reference, chosen w and
  rejected l); all four are differentiable inputs (the reference's are constants in training,
  but the function is checked as what it is).
* `reinforce_kl(logp, *, ref_logp, rewards, mask, beta)`: the surrogate whose gradient is the
  REINFORCE estimate of -grad [E_pi r - beta KL(pi || pi_ref)], with a leave-one-out baseline.
* `token_logprobs(logits, *, targets, ignore_index)`: log softmax(logits_bt)[y_bt] at every
  position with a target, 0 elsewhere: the bridge from a loss of log-probabilities to a
  language model's logits (its backward gives dlogits, which models.zoo.gpt.gpt_backward_logits
  takes to the parameters).

Every scalar loss returns a 0-d float64 array from `NAME_forward` and a float or engine.Value
from `NAME_loops`; a backward takes dout = dL/dloss.
"""

# Shape legend: B pairs or sampled sequences, T positions, V vocabulary; logp, ref_logp and
# mask (B, T); r_chosen, r_rejected, logp_w, logp_l, ref_w, ref_l and rewards (B,).

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import exp, log
from nn._checks import array_input, as_float_array, dout_array, fail, nested_input, same_shape, shape_text
from nn.activations import stable_sigmoid
from nn.losses import IGNORE_INDEX
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register
from nn.softmax import _shifted_exps


def _scalar_dout(piece: str, dout: Any) -> float:
    return float(dout_array(piece, dout, ()))


def _softplus_neg(z: Any) -> Any:
    """-log sigmoid(z) = log(1 + e^(-z)) on a float or Value, never exponentiating a positive number:
    max(-z, 0) + log(1 + e^(-|z|))."""
    if z > 0:
        return log(1.0 + exp(-z))
    return log(1.0 + exp(z)) - z


def _softplus_neg_array(z: np.ndarray) -> np.ndarray:
    """-log sigmoid(z) elementwise, as `_softplus_neg`."""
    return np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _vectors(piece: str, names: tuple[str, ...], arrays: tuple[Any, ...]) -> list[np.ndarray]:
    """Equal-length non-empty 1-d float arrays, one per name."""
    out = [array_input(piece, n, a, ndims=(1,), layout="(B,)") for n, a in zip(names, arrays)]
    for n, a in zip(names[1:], out[1:]):
        same_shape(piece, names[0], out[0].shape, n, a.shape)
    if out[0].shape[0] == 0:
        raise fail(piece, f"{names[0]} is empty: a mean over no pairs is undefined")
    return out


def _loops_vectors(piece: str, names: tuple[str, ...], xs: tuple[Any, ...]) -> list[list[Any]]:
    out = []
    for n, x in zip(names, xs):
        x, shape = nested_input(piece, n, x, ndims=(1,), layout="(B,)")
        out.append((x, shape))
    for n, (_, shape) in zip(names[1:], out[1:]):
        same_shape(piece, names[0], out[0][1], n, shape)
    if out[0][1][0] == 0:
        raise fail(piece, f"{names[0]} is empty: a mean over no pairs is undefined")
    return [x for x, _ in out]


def _beta(piece: str, beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not np.isfinite(beta) or beta < 0:
        raise fail(piece, f"beta must be a finite number >= 0, got {beta!r}")
    return float(beta)


# ------------------------------------------------------------------------------ bradley_terry
BT = "bradley_terry"


def bradley_terry_loops(r_chosen: Any, r_rejected: Any) -> Any:
    """L = (1/B) sum_b -log sigmoid(r_chosen_b - r_rejected_b): the probability the Bradley-Terry
    model gives the observed preference is sigmoid(r_chosen - r_rejected)."""
    rc, rr = _loops_vectors(BT, ("r_chosen", "r_rejected"), (r_chosen, r_rejected))
    total = None
    for c, r in zip(rc, rr):
        term = _softplus_neg(c - r)
        total = term if total is None else total + term
    assert total is not None  # _loops_vectors refuses empty vectors
    return total / len(rc)


class BradleyTerryCache(NamedTuple):
    s: np.ndarray  # (B,) sigmoid(-(r_chosen - r_rejected)): the probability of the wrong order


def bradley_terry_forward(r_chosen: Any, r_rejected: Any) -> tuple[np.ndarray, BradleyTerryCache]:
    """L = mean_b softplus(-d_b), d = r_chosen - r_rejected (the stable form of -log sigmoid(d))."""
    rc, rr = _vectors(BT, ("r_chosen", "r_rejected"), (r_chosen, r_rejected))
    d = rc - rr  # (B,)
    return np.asarray(_softplus_neg_array(d).mean()), BradleyTerryCache(stable_sigmoid(-d))


def bradley_terry_backward(dout: Any, cache: BradleyTerryCache) -> tuple[np.ndarray, np.ndarray]:
    """With d = r_chosen - r_rejected and L_b = -log sigmoid(d_b):

        dL_b/dd_b = -sigmoid'(d_b)/sigmoid(d_b) = -(1 - sigmoid(d_b)) = -sigmoid(-d_b) = -s_b
        dL/dr_chosen_b = -(dout/B) s_b        dL/dr_rejected_b = +(dout/B) s_b

    A pair already ordered by a wide margin (s ~ 0) pushes nothing; a wrongly ordered one pushes
    the two rewards apart at up to dout/B each.
    """
    (s,) = cache
    g = _scalar_dout(BT, dout) / s.shape[0] * s  # (B,)
    return -g, g.copy()


# ------------------------------------------------------------------------------ dpo
DPO = "dpo"
DPO_NAMES = ("logp_w", "logp_l", "ref_w", "ref_l")


def dpo_loops(logp_w: Any, logp_l: Any, ref_w: Any, ref_l: Any, *, beta: float) -> Any:
    """L = (1/B) sum_b -log sigmoid(beta [(logp_w - ref_w) - (logp_l - ref_l)]_b): Bradley-Terry on the
    implicit reward beta log(pi / pi_ref) of the chosen (w) and the rejected (l) sequence."""
    beta = _beta(DPO, beta)
    lw, ll, rw, rl = _loops_vectors(DPO, DPO_NAMES, (logp_w, logp_l, ref_w, ref_l))
    total = None
    for a, b, c, d in zip(lw, ll, rw, rl):
        term = _softplus_neg(beta * ((a - c) - (b - d)))
        total = term if total is None else total + term
    assert total is not None  # _loops_vectors refuses empty vectors
    return total / len(lw)


class DPOCache(NamedTuple):
    s: np.ndarray  # (B,) sigmoid(-z), z = beta * margin: how much each pair still pushes
    beta: float


def dpo_forward(logp_w: Any, logp_l: Any, ref_w: Any, ref_l: Any, *, beta: float) -> tuple[np.ndarray, DPOCache]:
    """L = mean_b softplus(-z_b), z = beta [(logp_w - ref_w) - (logp_l - ref_l)]."""
    beta = _beta(DPO, beta)
    lw, ll, rw, rl = _vectors(DPO, DPO_NAMES, (logp_w, logp_l, ref_w, ref_l))
    z = beta * ((lw - rw) - (ll - rl))  # (B,)
    return np.asarray(_softplus_neg_array(z).mean()), DPOCache(stable_sigmoid(-z), beta)


def dpo_backward(dout: Any, cache: DPOCache) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """With z = beta m, m = (logp_w - ref_w) - (logp_l - ref_l), L_b = -log sigmoid(z_b):

        dL_b/dz_b = -sigmoid(-z_b) = -s_b           (as in bradley_terry)
        dz/dlogp_w = beta,  dz/dlogp_l = -beta,  dz/dref_w = -beta,  dz/dref_l = beta

    so with g_b = (dout/B) beta s_b:  dlogp_w = -g, dlogp_l = +g, dref_w = +g, dref_l = -g.
    The policy's chosen sequence is pushed up and its rejected one down, each in proportion to
    how wrongly the implicit reward still orders the pair (Rafailov et al., eq. 7).
    """
    s, beta = cache
    g = _scalar_dout(DPO, dout) / s.shape[0] * beta * s  # (B,)
    return -g, g.copy(), g.copy(), -g


# ------------------------------------------------------------------------------ token_logprobs
TLP = "token_logprobs"


def _token_targets(logits_shape: tuple[int, ...], targets: Any, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets (B, T) int64, keep (B, T) bool): checked against logits (B, T, V)."""
    if len(logits_shape) != 3 or 0 in logits_shape:
        raise fail(TLP, f"logits must have shape (B, T, V) with no empty axis, got {shape_text(logits_shape)}")
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise fail(TLP, f"targets must be integer token ids, got dtype {t.dtype}")
    if t.shape != tuple(logits_shape[:2]):
        raise fail(TLP, f"targets must have shape (B, T) = {shape_text(logits_shape[:2])}, got {shape_text(t.shape)}")
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= logits_shape[2]))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise fail(
            TLP, f"targets must be token ids in [0, {logits_shape[2]}) or {ignore_index}, got {t[i]} at index {i}"
        )
    return t.astype(np.int64, copy=False), keep


def token_logprobs_loops(logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX) -> list:
    """y_bt = log softmax(logits_bt)[targets_bt] = (z_y - m) - log sum_v e^(z_v - m), or 0 where the
    target is `ignore_index` (that position is not part of the sequence)."""
    logits, shape = nested_input(TLP, "logits", logits)
    t, keep = _token_targets(shape, targets, ignore_index)
    out = []
    for b, seq in enumerate(logits):
        row = []
        for i, z in enumerate(seq):
            if not keep[b, i]:
                row.append(0.0)
                continue
            shifted, _, total = _shifted_exps(z)
            row.append(shifted[int(t[b, i])] - log(total))
        out.append(row)
    return out


class TokenLogprobsCache(NamedTuple):
    p: np.ndarray  # (B, T, V) softmax(logits)
    targets: np.ndarray  # (B, T) int64
    keep: np.ndarray  # (B, T) bool


def token_logprobs_forward(
    logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX
) -> tuple[np.ndarray, TokenLogprobsCache]:
    """logp (B, T): the log-probability of each target token, 0 at ignored positions."""
    z = array_input(TLP, "logits", logits)
    t, keep = _token_targets(z.shape, targets, ignore_index)
    shifted = z - z.max(axis=-1, keepdims=True)  # (B, T, V), <= 0
    exps = np.exp(shifted)
    total = exps.sum(axis=-1, keepdims=True)  # (B, T, 1), >= 1
    picked = np.take_along_axis(shifted, np.where(keep, t, 0)[..., None], axis=-1)[..., 0]  # (B, T)
    logp = np.where(keep, picked - np.log(total[..., 0]), 0.0).astype(z.dtype, copy=False)
    return logp, TokenLogprobsCache(exps / total, t, keep)


def token_logprobs_backward(dout: Any, cache: TokenLogprobsCache) -> tuple[np.ndarray]:
    """y = z_t - log sum_v e^(z_v):  dy/dz_v = [v = t] - p_v.  With dy = dL/dy (B, T):

        dlogits_btv = dy_bt ([v = t_bt] - p_btv)    on kept positions, 0 on ignored ones

    which is the gradient of a per-token *weighted* cross-entropy sum_bt w_bt (-log p_bt[t_bt])
    with weights w = -dy: any loss of the token log-probabilities reaches the logits this way.
    """
    p, t, keep = cache
    dy = dout_array(TLP, dout, t.shape, p.dtype) * keep  # (B, T), 0 where ignored
    dlogits = p * (-dy)[..., None]  # -dy p, (B, T, V)
    np.put_along_axis(
        dlogits,
        np.where(keep, t, 0)[..., None],
        (np.take_along_axis(dlogits, np.where(keep, t, 0)[..., None], axis=-1) + dy[..., None]),
        axis=-1,
    )  # + dy at the target
    return (dlogits,)


# ------------------------------------------------------------------------------ reinforce_kl
RKL = "reinforce_kl"


def _rkl_static(
    shape: tuple[int, ...], sample_logp: Any, ref_logp: Any, rewards: Any, mask: Any, beta: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(A (B,) the advantages, mask (B, T)) from the constants of the surrogate, checked against logp's shape."""
    if len(shape) != 2 or 0 in shape:
        raise fail(RKL, f"logp must have shape (B, T) with no empty axis, got {shape_text(shape)}")
    if shape[0] < 2:
        raise fail(RKL, f"logp needs at least 2 sequences (the baseline leaves one out), got B = {shape[0]}")
    old = array_input(RKL, "sample_logp", sample_logp)
    same_shape(RKL, "logp", shape, "sample_logp", old.shape)
    ref = array_input(RKL, "ref_logp", ref_logp)
    same_shape(RKL, "logp", shape, "ref_logp", ref.shape)
    m = as_float_array(RKL, "mask", mask)
    same_shape(RKL, "logp", shape, "mask", m.shape)
    if not ((m == 0.0) | (m == 1.0)).all():
        raise fail(RKL, "mask must hold only 0 and 1 (1 where the sequence has a token)")
    r = array_input(RKL, "rewards", rewards, ndims=(1,), layout="(B,)")
    if r.shape[0] != shape[0]:
        raise fail(RKL, f"rewards must have one entry per sequence ({shape[0]}), got {r.shape[0]}")
    R = r - _beta(RKL, beta) * (m * (old - ref)).sum(axis=1)  # (B,) KL-penalised returns
    B = shape[0]
    return R - (R.sum() - R) / (B - 1), m


def reinforce_kl_loops(logp: Any, *, sample_logp: Any, ref_logp: Any, rewards: Any, mask: Any, beta: float) -> Any:
    """L = -(1/B) sum_b A_b sum_t mask_bt logp_bt, the advantages A constants (see the forward)."""
    logp, shape = nested_input(RKL, "logp", logp, ndims=(2,), layout="(B, T)")
    A, m = _rkl_static(shape, sample_logp, ref_logp, rewards, mask, beta)
    total = None
    for b, row in enumerate(logp):
        for t, x in enumerate(row):
            if m[b, t]:
                term = x * float(-A[b])
                total = term if total is None else total + term
    return (0.0 if total is None else total) / shape[0]


class ReinforceKLCache(NamedTuple):
    A: np.ndarray  # (B,) the advantages (constants of the surrogate)
    mask: np.ndarray  # (B, T)


def reinforce_kl_forward(
    logp: Any, *, sample_logp: Any, ref_logp: Any, rewards: Any, mask: Any, beta: float
) -> tuple[np.ndarray, ReinforceKLCache]:
    """The REINFORCE surrogate of the KL-penalised objective, on B sequences y_b sampled from pi:

        J(theta)  = E_{y ~ pi} [r(y)] - beta KL(pi || pi_ref),   KL = E_{y ~ pi} [log pi(y) - log pi_ref(y)]
        k_b       = sum_t mask_bt (sample_logp_bt - ref_logp_bt)   the sampled tokens' log-ratios, summed
        R_b       = r_b - beta k_b
        A_b       = R_b - (1/(B-1)) sum_{j != b} R_j                  (leave-one-out baseline)
        L         = -(1/B) sum_b A_b sum_t mask_bt logp_bt

    `sample_logp` holds the values of logp when the sequences were drawn (the caller passes the
    same numbers), so A is a constant of L: the stop-gradient is written into the signature,
    and L is an ordinary function of logp that the three ways can check. k_b is the
    single-sample ("k1") estimator of the sequence KL: its mean over samples from pi is
    unbiased for KL(pi || pi_ref), though one sample of it can be negative. The value of L is
    not the objective; its gradient is (see the backward).
    """
    logp = array_input(RKL, "logp", logp, ndims=(2,), layout="(B, T)")
    A, m = _rkl_static(logp.shape, sample_logp, ref_logp, rewards, mask, beta)
    loss = -(A[:, None] * m * logp).sum() / logp.shape[0]
    return np.asarray(loss), ReinforceKLCache(A, m)


def reinforce_kl_backward(dout: Any, cache: ReinforceKLCache) -> tuple[np.ndarray]:
    """dL/dlogp_bt = -(dout/B) A_b mask_bt.

    Why this is the gradient we want: with the score grad log pi(y) = sum_t grad logp_t,

        grad J = E_pi[(r(y) - beta (log pi(y) - log pi_ref(y))) grad log pi(y)] - beta E_pi[grad log pi(y)]

    (the second term is the KL's own log pi depending on theta), and E_pi[grad log pi] =
    grad sum_y pi(y) = grad 1 = 0, so it drops. A baseline that does not depend on y_b (the
    other samples' mean R) changes nothing in expectation for the same reason, and lowers the
    variance. Hence E[grad L] = -grad J at logp = sample_logp: descending L ascends J. Through
    `token_logprobs_backward` this is a per-token cross-entropy on the sampled tokens weighted
    by A_b / B (tokens of a better-than-baseline sequence become likelier, the others rarer).
    """
    A, m = cache
    B = m.shape[0]
    return (-(_scalar_dout(RKL, dout) / B) * A[:, None] * m,)


# ------------------------------------------------------------------------------ registry
def _pair_case(B: int, scale: float = 1.5) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"r_chosen": scale * rng.standard_normal(B), "r_rejected": scale * rng.standard_normal(B)}, {}

    return make


def _dpo_case(B: int, beta: float) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        inputs = {n: -np.abs(5.0 * rng.standard_normal(B)) - 1.0 for n in DPO_NAMES}  # log-probabilities < 0
        return inputs, {"beta": beta}

    return make


def _tlp_case(B: int, T: int, V: int, n_ignored: int) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        targets = rng.integers(0, V, size=(B, T))
        targets.reshape(-1)[rng.permutation(B * T)[:n_ignored]] = IGNORE_INDEX
        return {"logits": 2.0 * rng.standard_normal((B, T, V))}, {"targets": targets}

    return make


def _rkl_case(B: int, T: int, beta: float) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        lengths = rng.integers(1, T + 1, size=B)
        mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)  # (B, T): a prefix of each row
        logp = -np.abs(rng.standard_normal((B, T))) - 0.1
        static = {
            "sample_logp": logp.copy(),
            "ref_logp": -np.abs(rng.standard_normal((B, T))) - 0.1,
            "rewards": rng.standard_normal(B),
            "mask": mask,
            "beta": beta,
        }
        return {"logp": logp}, static

    return make


def _bt_torch(torch: Any, r_chosen: Any, r_rejected: Any) -> Any:
    """The torch referee (see `Piece`): -logsigmoid of the reward difference, mean."""
    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()


def _dpo_torch(torch: Any, logp_w: Any, logp_l: Any, ref_w: Any, ref_l: Any, *, beta: float) -> Any:
    """The torch referee: the DPO loss as the paper writes it."""
    return -torch.nn.functional.logsigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l))).mean()


def _tlp_torch(torch: Any, logits: Any, *, targets: Any, ignore_index: int = IGNORE_INDEX) -> Any:
    """The torch referee: log_softmax, gathered at the targets, zeroed where ignored."""
    keep = targets != ignore_index
    picked = torch.log_softmax(logits, dim=-1).gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, picked, torch.zeros_like(picked))


def _rkl_torch(torch: Any, logp: Any, *, sample_logp: Any, ref_logp: Any, rewards: Any, mask: Any, beta: float) -> Any:
    """The torch referee: the same surrogate, the advantages from the constants."""
    R = rewards - beta * (mask * (sample_logp - ref_logp)).sum(dim=1)
    B = R.shape[0]
    A = R - (R.sum() - R) / (B - 1)
    return -(A[:, None] * mask * logp).sum() / B


register(
    Piece(
        name=BT,
        loops=bradley_terry_loops,
        forward=bradley_terry_forward,
        backward=bradley_terry_backward,
        cases=(
            Case("one pair", _pair_case(1)),
            Case("7 pairs", _pair_case(7)),
            Case("wide margins", _pair_case(5, scale=6.0)),
        ),
        description="reward model loss on preference pairs: mean -log sigmoid(r_chosen - r_rejected)",
        tags=("loss", "alignment"),
        torch=_bt_torch,
    )
)

register(
    Piece(
        name=DPO,
        loops=dpo_loops,
        forward=dpo_forward,
        backward=dpo_backward,
        cases=(
            Case("one pair, beta 0.1", _dpo_case(1, 0.1)),
            Case("6 pairs, beta 0.5", _dpo_case(6, 0.5)),
            Case("4 pairs, beta 2", _dpo_case(4, 2.0)),
        ),
        description="DPO: mean -log sigmoid(beta [(logp_w - ref_w) - (logp_l - ref_l)]) of four sequence log-probabilities",
        tags=("loss", "alignment"),
        torch=_dpo_torch,
    )
)

register(
    Piece(
        name=TLP,
        loops=token_logprobs_loops,
        forward=token_logprobs_forward,
        backward=token_logprobs_backward,
        cases=(Case("B=2 T=3 V=5, two ignored", _tlp_case(2, 3, 5, 2)), Case("B=1 T=4 V=3", _tlp_case(1, 4, 3, 0))),
        description="log softmax(logits)[target] per position (0 where ignored): sequence log-probabilities of a language model",
        tags=("alignment",),
        torch=_tlp_torch,
    )
)

register(
    Piece(
        name=RKL,
        loops=reinforce_kl_loops,
        forward=reinforce_kl_forward,
        backward=reinforce_kl_backward,
        cases=(
            Case("B=2 T=3, beta 0.1", _rkl_case(2, 3, 0.1)),
            Case("B=5 T=4, beta 0", _rkl_case(5, 4, 0.0)),
            Case("B=4 T=2, beta 1", _rkl_case(4, 2, 1.0)),
        ),
        description="REINFORCE surrogate with a KL penalty on the sampled tokens and a leave-one-out baseline",
        tags=("loss", "alignment"),
        torch=_rkl_torch,
    )
)
