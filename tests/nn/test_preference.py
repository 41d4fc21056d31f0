"""nn.preference beyond the registry's three-way check: known values, signs, the estimator's
expectation, and bad input. (The three-way and torch checks come from the registry entries.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import InputError
from nn.preference import (
    bradley_terry_backward,
    bradley_terry_forward,
    dpo_forward,
    reinforce_kl_backward,
    reinforce_kl_forward,
    token_logprobs_forward,
)

#: closed-form values computed in float64: only rounding separates them.
CLOSED_FORM = 1e-12
#: the Monte Carlo check below: 200k draws give a standard error near 3e-3 on each coordinate.
MONTE_CARLO = 2e-2


def test_bradley_terry_is_log_2_for_a_tie_and_pushes_the_right_way() -> None:
    loss, cache = bradley_terry_forward(np.array([0.3, 2.0]), np.array([0.3, -1.0]))
    assert float(loss) == pytest.approx((math.log(2) + math.log1p(math.exp(-3.0))) / 2, abs=CLOSED_FORM)
    dc, dr = bradley_terry_backward(np.ones(()), cache)
    assert (dc < 0).all() and (dr > 0).all()  # descending raises the chosen reward, lowers the rejected
    assert dc[0] == pytest.approx(-0.25, abs=CLOSED_FORM)  # -(1/B) sigmoid(0)


def test_bradley_terry_stays_finite_for_huge_margins() -> None:
    loss, _ = bradley_terry_forward(np.array([-800.0]), np.array([800.0]))
    assert float(loss) == pytest.approx(1600.0, abs=CLOSED_FORM)


def test_dpo_at_the_reference_is_log_2() -> None:
    lw, ll = np.array([-3.0, -5.0]), np.array([-4.0, -2.0])
    loss, _ = dpo_forward(lw, ll, lw.copy(), ll.copy(), beta=0.5)
    assert float(loss) == pytest.approx(math.log(2), abs=CLOSED_FORM)


def test_token_logprobs_are_zero_where_ignored_and_sum_to_the_sequence() -> None:
    logits = np.random.default_rng(0).standard_normal((1, 3, 4))
    logp, _ = token_logprobs_forward(logits, targets=np.array([[2, 0, -1]]))
    z = logits[0] - np.log(np.exp(logits[0]).sum(axis=1, keepdims=True))
    assert logp[0, 2] == 0.0
    assert logp[0, :2] == pytest.approx([z[0, 2], z[1, 0]], abs=CLOSED_FORM)


def test_reinforce_kl_gradient_is_unbiased_for_the_kl_objective() -> None:
    """On a one-token policy pi = softmax(theta) over 3 outcomes, the mean of the surrogate's
    gradient over many batches equals the exact gradient of E_pi[r] - beta KL(pi || pi_ref)."""
    rng = np.random.default_rng(1)
    theta, theta_ref, r, beta = np.array([0.2, -0.5, 0.4]), np.array([0.0, 0.3, -0.2]), np.array([1.0, -0.5, 0.3]), 0.7
    pi, ref = np.exp(theta) / np.exp(theta).sum(), np.exp(theta_ref) / np.exp(theta_ref).sum()

    def J(t: np.ndarray) -> float:  # the exact objective E_pi[r] - beta KL(pi || pi_ref) at theta = t
        pi_t = np.exp(t) / np.exp(t).sum()
        return float((pi_t * (r - beta * np.log(pi_t / ref))).sum())

    h = 1e-6
    exact = np.array([(J(theta + h * e) - J(theta - h * e)) / (2 * h) for e in np.eye(3)])
    B, n_batches = 8, 25_000
    total = np.zeros(3)
    for _ in range(n_batches):
        y = rng.choice(3, size=B, p=pi)
        logp = np.log(pi[y])[:, None]
        loss, cache = reinforce_kl_forward(
            logp, sample_logp=logp, ref_logp=np.log(ref[y])[:, None], rewards=r[y], mask=np.ones((B, 1)), beta=beta
        )
        (dlogp,) = reinforce_kl_backward(np.ones(()), cache)
        total += ((np.eye(3)[y] - pi) * dlogp).sum(axis=0)  # dlogp_b d log pi(y_b) / dtheta
    assert -total / n_batches == pytest.approx(exact, abs=MONTE_CARLO)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: bradley_terry_forward(np.zeros(3), np.zeros(2)), "bradley_terry: r_chosen and r_rejected"),
        (lambda: dpo_forward(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), beta=-1.0), "dpo: beta"),
        (lambda: token_logprobs_forward(np.zeros((1, 2, 3)), targets=np.array([[0, 3]])), "token_logprobs: targets"),
        (
            lambda: reinforce_kl_forward(
                np.zeros((1, 2)),
                sample_logp=np.zeros((1, 2)),
                ref_logp=np.zeros((1, 2)),
                rewards=np.zeros(1),
                mask=np.ones((1, 2)),
                beta=0.1,
            ),
            "reinforce_kl: logp needs at least 2",
        ),
        (
            lambda: reinforce_kl_forward(
                np.zeros((2, 2)),
                sample_logp=np.zeros((2, 2)),
                ref_logp=np.zeros((2, 2)),
                rewards=np.zeros(2),
                mask=np.full((2, 2), 0.5),
                beta=0.1,
            ),
            "reinforce_kl: mask",
        ),
    ],
)
def test_bad_input_is_one_clear_error(call, words) -> None:
    with pytest.raises(InputError, match=words):
        call()
