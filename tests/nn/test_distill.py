"""The distillation loss: alpha = 0 is cross-entropy exactly, large T flattens the soft targets,
alpha = 1 and T = 1 give softmax(z_s) - softmax(z_t), huge logits and underflowing teacher
probabilities stay finite, bad settings are refused. The three-way and torch checks come from the
registry (tests/nn/test_registry.py, tests/nn/test_torch_referee.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import InputError, Value
from nn.distill import distillation_backward, distillation_forward, distillation_loops
from nn.losses import (
    IGNORE_INDEX,
    cross_entropy_backward,
    cross_entropy_forward,
    sequence_cross_entropy_backward,
    sequence_cross_entropy_forward,
)
from nn.softmax import softmax_forward

#: float64 rounding of a handful of operations on values of order 1
ROUNDING = 1e-12
#: at T = 1e4 the logits (of order 3) move the soft targets off 1/C by about |z| / (C T) ~ 1e-4
UNIFORM_AT_LARGE_T = 1e-3


def _case(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        scale * rng.standard_normal(shape),
        scale * rng.standard_normal(shape),
        rng.integers(0, shape[-1], size=shape[:-1]),
    )


def test_alpha_zero_is_exactly_cross_entropy() -> None:
    z_s, z_t, y = _case(np.random.default_rng(0), (6, 5))
    loss, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=3.0, alpha=0.0)
    ce, ce_cache = cross_entropy_forward(z_s, targets=y)
    assert float(loss) == float(ce)
    (dz,) = distillation_backward(1.0, cache)
    (dce,) = cross_entropy_backward(1.0, ce_cache)
    assert np.array_equal(dz, dce)


def test_alpha_zero_over_sequences_is_exactly_sequence_cross_entropy() -> None:
    z_s, z_t, y = _case(np.random.default_rng(1), (2, 4, 6))
    y[0, 1] = y[1, 3] = IGNORE_INDEX
    loss, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=2.0, alpha=0.0)
    ce, ce_cache = sequence_cross_entropy_forward(z_s, targets=y)
    assert float(loss) == float(ce)
    (dz,) = distillation_backward(1.0, cache)
    (dce,) = sequence_cross_entropy_backward(1.0, ce_cache)
    assert np.array_equal(dz, dce)
    assert not dz[0, 1].any() and not dz[1, 3].any()  # an ignored position takes no gradient


def test_soft_targets_tend_to_uniform_as_temperature_grows() -> None:
    z_s, z_t, y = _case(np.random.default_rng(2), (4, 5))
    gaps = []
    for T in (1.0, 10.0, 100.0, 1e4):
        _, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=T, alpha=1.0)
        gaps.append(float(np.abs(cache.q_t - 1.0 / 5).max()))
    assert all(a > b for a, b in zip(gaps, gaps[1:]))  # flatter at every step up in T
    assert gaps[-1] < UNIFORM_AT_LARGE_T


def test_alpha_one_temperature_one_gradient_is_the_difference_of_softmaxes() -> None:
    B = 5
    z_s, z_t, y = _case(np.random.default_rng(3), (B, 7))
    _, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=1.0, alpha=1.0)
    (dz,) = distillation_backward(1.0, cache)
    expected = (softmax_forward(z_s)[0] - softmax_forward(z_t)[0]) / B
    np.testing.assert_allclose(dz, expected, rtol=0, atol=ROUNDING)


def test_temperature_squared_keeps_the_soft_gradient_at_one_scale() -> None:
    """Without T^2 the soft gradient would shrink 100-fold from T = 10 to T = 100; with it, it stays put."""
    z_s, z_t, y = _case(np.random.default_rng(4), (8, 6))
    norms = []
    for T in (10.0, 100.0):
        _, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=T, alpha=1.0)
        norms.append(float(np.linalg.norm(distillation_backward(1.0, cache)[0])))
    assert norms[1] / norms[0] == pytest.approx(1.0, rel=0.05)  # the O(1/T) correction at T = 10 is a few %


def test_huge_logits_and_an_underflowing_teacher_probability_stay_finite() -> None:
    """Teacher logits [0, -2000, -1000]: q_t = (1, 0, 0) exactly (e^-1000 underflows), so with
    alpha = 1, T = 1 the loss is KL = -log q_s[0], the cross-entropy of class 0 (0 log 0 = 0)."""
    z_s = np.array([[1000.0, -1000.0, 999.0], [-1000.0, 1000.0, 0.0]])
    z_t = np.array([[0.0, -2000.0, -1000.0], [0.0, -2000.0, -1000.0]])
    y = np.array([2, 1])
    loss, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=1.0, alpha=1.0)
    assert (cache.q_t[:, 1:] == 0.0).all()  # the underflow really happens
    ce, _ = cross_entropy_forward(z_s, targets=np.array([0, 0]))
    assert np.isfinite(float(loss)) and float(loss) == pytest.approx(float(ce), rel=ROUNDING)
    (dz,) = distillation_backward(1.0, cache)
    assert np.isfinite(dz).all()
    loops = distillation_loops(z_s, teacher_logits=z_t, targets=y, temperature=1.0, alpha=1.0)
    assert float(loops) == pytest.approx(float(loss), rel=ROUNDING)
    mixed, _ = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=4.0, alpha=0.5)
    assert np.isfinite(float(mixed))


def test_torch_agrees_on_huge_logits_and_an_underflowing_teacher() -> None:
    torch = pytest.importorskip("torch")
    from nn.distill import _distillation_torch

    z_s = np.array([[1000.0, -1000.0, 999.0], [-1000.0, 1000.0, 0.0]])
    z_t = np.array([[0.0, -2000.0, -1000.0], [500.0, -700.0, 0.0]])
    y = np.array([2, 1])
    zs = torch.tensor(z_s, dtype=torch.float64, requires_grad=True)
    out = _distillation_torch(
        torch,
        zs,
        teacher_logits=torch.tensor(z_t, dtype=torch.float64),
        targets=torch.tensor(y),
        temperature=2.0,
        alpha=0.6,
    )
    out.backward()
    loss, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=2.0, alpha=0.6)
    assert float(loss) == pytest.approx(out.item(), rel=ROUNDING)
    np.testing.assert_allclose(distillation_backward(1.0, cache)[0], zs.grad.numpy(), rtol=0, atol=ROUNDING)


def test_loops_form_runs_on_values() -> None:
    z_s, z_t, y = _case(np.random.default_rng(5), (2, 3, 4))
    y[1, 0] = IGNORE_INDEX
    leaves = [[[Value(v) for v in row] for row in seq] for seq in z_s.tolist()]
    out = distillation_loops(leaves, teacher_logits=z_t, targets=y, temperature=2.0, alpha=0.3)
    out.backward()
    _, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=2.0, alpha=0.3)
    (dz,) = distillation_backward(1.0, cache)
    graph = np.array([[[v.grad for v in row] for row in seq] for seq in leaves])
    np.testing.assert_allclose(graph, dz, rtol=0, atol=ROUNDING)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"teacher_logits": np.zeros((3, 5))}, "teacher_logits"),
        ({"targets": np.array([0, 1])}, "targets"),
        ({"targets": np.array([0, 1, 9])}, "targets"),
        ({"targets": np.full(3, IGNORE_INDEX)}, "ignore index"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs: dict, words: str) -> None:
    z = np.zeros((3, 4))
    args = {
        "teacher_logits": np.zeros((3, 4)),
        "targets": np.array([0, 1, 2]),
        "temperature": 2.0,
        "alpha": 0.5,
        **kwargs,
    }
    for f in (distillation_forward, distillation_loops):
        with pytest.raises(InputError, match=f"distillation: .*{words}"):
            f(z, **args)
