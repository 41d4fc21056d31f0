"""Optimizers and gradient clipping: by-hand update rules, torch.optim (float64), state and resume."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.module import Module
from nn.optim import SGD, Adam, AdamW, clip_grad_norm

#: the same scalar formula evaluated elementwise in Python and vectorized in numpy; only
#: the order of a few roundings differs (e.g. (1 - lr wd) p vs p - lr wd p).
HAND_RTOL = 1e-13
HAND_ATOL = 1e-15
#: torch computes the same updates with different fused kernels (lerp for the first
#: moment, sqrt(v)/sqrt(bias2) instead of sqrt(v/bias2)): rounding differences only.
TORCH_RTOL = 1e-12
TORCH_ATOL = 1e-14

SHAPES = [(2, 3), (4,)]
N_STEPS = 3


def _start() -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Initial parameters and the gradient each parameter receives at steps 1..3."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(N_STEPS)]
    return params, grads


def _run_mine(make: Callable[[list], object]) -> list[list[np.ndarray]]:
    """Snapshots of every parameter after each of the steps."""
    p0, gseq = _start()
    params = [p.copy() for p in p0]
    grads = [np.zeros_like(p) for p in p0]
    opt = make(list(zip(params, grads)))
    snaps = []
    for step_grads in gseq:
        for g, new in zip(grads, step_grads):
            np.copyto(g, new)
        opt.step()
        snaps.append([p.copy() for p in params])
    return snaps


# ------------------------------------------------------------------------------ by hand
def _by_hand(rule: str, **hp) -> list[list[np.ndarray]]:
    """The update rules, element by element in plain Python floats."""
    p0, gseq = _start()
    flat_p = [p.reshape(-1).tolist() for p in p0]
    m = [[0.0] * len(fp) for fp in flat_p]
    v = [[0.0] * len(fp) for fp in flat_p]
    snaps = []
    for t, step_grads in enumerate(gseq, start=1):
        for k, g_arr in enumerate(step_grads):
            g_flat = g_arr.reshape(-1).tolist()
            for i, g in enumerate(g_flat):
                p = flat_p[k][i]
                if rule == "sgd":
                    p = p - hp["lr"] * g
                elif rule == "momentum":
                    m[k][i] = hp["momentum"] * m[k][i] + g
                    p = p - hp["lr"] * m[k][i]
                else:
                    b1, b2 = hp["betas"]
                    if rule == "adamw":
                        p = p - hp["lr"] * hp["weight_decay"] * p
                    else:
                        g = g + hp["weight_decay"] * p
                    m[k][i] = b1 * m[k][i] + (1 - b1) * g
                    v[k][i] = b2 * v[k][i] + (1 - b2) * g * g
                    m_hat = m[k][i] / (1 - b1**t)
                    v_hat = v[k][i] / (1 - b2**t)
                    p = p - hp["lr"] * m_hat / (math.sqrt(v_hat) + hp["eps"])
                flat_p[k][i] = p
        snaps.append([np.array(fp).reshape(s) for fp, s in zip(flat_p, SHAPES)])
    return snaps


CONFIGS = {
    "sgd": (lambda ps: SGD(ps, lr=0.1), {"lr": 0.1}),
    "momentum": (lambda ps: SGD(ps, lr=0.1, momentum=0.9), {"lr": 0.1, "momentum": 0.9}),
    "adam": (lambda ps: Adam(ps, lr=0.01), {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
    "adam_l2": (
        lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ),
    "adamw": (lambda ps: AdamW(ps, lr=0.01), {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
    "adamw_strong": (
        lambda ps: AdamW(ps, lr=0.05, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.3),
        {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-7, "weight_decay": 0.3},
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_first_three_steps_match_update_rule_by_hand(name: str) -> None:
    make, hp = CONFIGS[name]
    rule = name.split("_")[0]
    mine, hand = _run_mine(make), _by_hand(rule, **hp)
    for step, (ms, hs) in enumerate(zip(mine, hand), start=1):
        for k, (a, b) in enumerate(zip(ms, hs)):
            np.testing.assert_allclose(a, b, rtol=HAND_RTOL, atol=HAND_ATOL, err_msg=f"{name} step {step} param {k}")


def test_adam_first_step_is_lr_times_sign() -> None:
    # After one step mhat = g and vhat = g^2, so the update is lr g / (|g| + eps) ~ lr sign(g).
    p, g = np.array([1.0, -2.0, 0.5]), np.array([3.0, -0.25, 1e-3])
    start = p.copy()
    Adam([(p, g)], lr=0.1, eps=1e-8).step()
    np.testing.assert_allclose(p, start - 0.1 * g / (np.abs(g) + 1e-8), rtol=HAND_RTOL)


def test_sgd_does_not_touch_grads_and_zero_grad_zeroes() -> None:
    p, g = np.ones(3), np.full(3, 2.0)
    opt = Adam([(p, g)], lr=0.1, weight_decay=0.5)
    opt.step()
    np.testing.assert_array_equal(g, 2.0)  # L2 is added to a copy, not the caller's gradient
    opt.zero_grad()
    np.testing.assert_array_equal(g, 0.0)


# ------------------------------------------------------------------------------ clipping
def test_clip_grad_norm_by_hand() -> None:
    g1, g2 = np.array([[3.0, 0.0]]), np.array([4.0])  # global norm 5
    total = clip_grad_norm([g1, g2], max_norm=10.0)
    assert total == 5.0
    np.testing.assert_array_equal(g1, [[3.0, 0.0]])  # below the limit: untouched
    total = clip_grad_norm([g1, g2], max_norm=1.0)
    assert total == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(g1, [[3.0 * scale, 0.0]], rtol=HAND_RTOL)
    np.testing.assert_allclose(g2, [4.0 * scale], rtol=HAND_RTOL)
    assert math.sqrt(float((g1**2).sum() + (g2**2).sum())) < 1.0


def test_clip_grad_norm_rejects_non_finite() -> None:
    g = np.array([1.0, np.inf])
    with pytest.raises(ValueError, match="non-finite"):
        clip_grad_norm([np.ones(2), g], max_norm=1.0)


# ------------------------------------------------------------------------------ modules, errors
class Tiny(Module):
    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(3)
        self.add_param("W", rng.standard_normal((3, 2)))
        inner = self.add_module("inner", Module())
        inner.add_param("b", rng.standard_normal(2))


def _fake_grads(model: Module, step: int) -> None:
    """A deterministic gradient that depends on the current parameters (like a real loss)."""
    for _, p, g in model.named_parameters_and_grads():
        g += np.sin(p) + 0.1 * step


def test_optimizer_on_module_uses_dotted_names() -> None:
    model = Tiny()
    opt = AdamW(model, lr=0.01)
    before = model.state_dict()
    _fake_grads(model, 1)
    opt.step()
    state = opt.state_dict()
    assert state["meta"]["names"] == ["W", "inner.b"]
    assert sorted(state["arrays"]) == ["m.W", "m.inner.b", "v.W", "v.inner.b"]
    assert state["meta"]["step"] == 1
    assert all(not np.array_equal(before[n], p) for n, p in model.named_parameters())


def test_step_with_non_finite_grad_changes_nothing() -> None:
    p1, g1, p2, g2 = np.ones(2), np.ones(2), np.ones(3), np.array([1.0, np.nan, 0.0])
    opt = SGD([(p1, g1), (p2, g2)], lr=0.1)
    with pytest.raises(ValueError, match="'1'"):
        opt.step()
    np.testing.assert_array_equal(p1, 1.0)
    assert opt.step_count == 0


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: SGD([(np.ones(2), np.ones(3))], lr=0.1), "shape"),
        (
            lambda: SGD([(np.ones(2, dtype=np.float16), np.ones(2, dtype=np.float16))], lr=0.1),
            "float64 \\(or float32\\)",
        ),
        (
            lambda: SGD([(np.ones(2), np.ones(2, dtype=np.float32))], lr=0.1),
            "gradient .0. is float32, its parameter float64",
        ),
        (lambda: SGD([(np.ones(2), np.ones(2))], lr=-1.0), "lr"),
        (lambda: SGD([(np.ones(2), np.ones(2))], lr=0.1, momentum=1.0), "momentum"),
        (lambda: Adam([(np.ones(2), np.ones(2))], betas=(0.9, 1.0)), "betas"),
        (lambda: AdamW([], lr=0.1), "no parameters"),
    ],
)
def test_bad_arguments(make, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        make()


def test_duplicate_parameter_refused() -> None:
    p, g = np.ones(2), np.ones(2)
    with pytest.raises(ValueError, match="twice"):
        SGD([(p, g), (p, g)], lr=0.1)


def test_load_state_dict_checks_type_and_buffers() -> None:
    model = Tiny()
    adam_state = Adam(model, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="'Adam'"):
        AdamW(model, lr=0.1).load_state_dict(adam_state)
    del adam_state["arrays"]["m.W"]
    adam_state["arrays"]["v.inner.b"] = np.zeros(5)
    with pytest.raises(ValueError) as err:
        Adam(model, lr=0.1).load_state_dict(adam_state)
    assert "m.W" in str(err.value) and "v.inner.b" in str(err.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: SGD(m, lr=0.05, momentum=0.9),
        lambda m: Adam(m, lr=0.01, weight_decay=0.01),
        lambda m: AdamW(m, lr=0.02),
    ],
    ids=["momentum", "adam", "adamw"],
)
def test_checkpoint_and_resume_is_bit_for_bit(make, tmp_path: Path) -> None:
    steps, split = 6, 3

    def train(model: Module, opt, first: int, last: int) -> None:
        for step in range(first, last):
            opt.zero_grad()
            _fake_grads(model, step)
            clip_grad_norm(model, max_norm=1.0)
            opt.step()

    straight = Tiny()
    train(straight, make(straight), 0, steps)

    first = Tiny()
    opt = make(first)
    train(first, opt, 0, split)
    opt_state = opt.state_dict()
    arrays = {
        **{f"model.{k}": v for k, v in first.state_dict().items()},
        **{f"optim.{k}": v for k, v in opt_state["arrays"].items()},
    }
    save_checkpoint(tmp_path / "run", arrays, {"optim": opt_state["meta"]})

    loaded, meta = load_checkpoint(tmp_path / "run")
    resumed = Tiny()
    resumed.params["W"] += 1.0  # make sure the weights really come from the checkpoint
    resumed.load_state_dict({k[len("model.") :]: v for k, v in loaded.items() if k.startswith("model.")})
    opt2 = make(resumed)
    opt2.load_state_dict(
        {"meta": meta["optim"], "arrays": {k[len("optim.") :]: v for k, v in loaded.items() if k.startswith("optim.")}}
    )
    assert opt2.step_count == split
    train(resumed, opt2, split, steps)

    for (n, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert np.array_equal(a, b), n  # exactly equal, not just close


# ------------------------------------------------------------------------------ torch referee
def _run_torch(torch, make_torch) -> list[list[np.ndarray]]:
    p0, gseq = _start()
    tparams = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in p0]
    opt = make_torch(tparams)
    snaps = []
    for step_grads in gseq:
        for tp, g in zip(tparams, step_grads):
            tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        snaps.append([tp.detach().numpy().copy() for tp in tparams])
    return snaps


TORCH_CONFIGS = {
    "sgd": lambda torch, ps: torch.optim.SGD(ps, lr=0.1),
    "momentum": lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda torch, ps: torch.optim.Adam(ps, lr=0.01),
    "adam_l2": lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda torch, ps: torch.optim.AdamW(ps, lr=0.01),  # torch's default weight_decay is 0.01 too
    "adamw_strong": lambda torch, ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.5, 0.9), eps=1e-7, weight_decay=0.3),
}


@pytest.mark.parametrize("name", list(TORCH_CONFIGS))
def test_matches_torch_optim(name: str) -> None:
    torch = pytest.importorskip("torch")
    mine = _run_mine(CONFIGS[name][0])
    theirs = _run_torch(torch, lambda ps: TORCH_CONFIGS[name](torch, ps))
    for step, (ms, ts) in enumerate(zip(mine, theirs), start=1):
        for k, (a, b) in enumerate(zip(ms, ts)):
            np.testing.assert_allclose(a, b, rtol=TORCH_RTOL, atol=TORCH_ATOL, err_msg=f"{name} step {step} param {k}")


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(s) for s in [(3, 4), (5,), (1,)]]
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g, dtype=torch.float64)
    t_total = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    total = clip_grad_norm(grads, max_norm)
    assert math.isclose(total, float(t_total), rel_tol=TORCH_RTOL)
    for g, tp in zip(grads, tparams):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=TORCH_RTOL, atol=TORCH_ATOL)


#: Adam's update is elementwise, so stepping the flat vector once or each named array in
#: turn runs the same float64 operations on every entry: bit-identical.
FLAT_VS_NAMED_RTOL = 0.0


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.05), lambda ps: AdamW(ps, lr=0.05, weight_decay=0.1)])
def test_stepping_the_flat_vector_equals_stepping_each_named_array(make) -> None:
    """Module's contract: Adam([(flat_params, flat_grads)]) moves the named arrays (views)
    exactly as an optimizer over the named arrays one by one."""
    flat_model, named_model = Tiny(), Tiny()
    flat_opt = make([(flat_model.flat_params, flat_model.flat_grads)])
    named_opt = make(named_model)
    for step in range(1, N_STEPS + 1):
        for model, opt in ((flat_model, flat_opt), (named_model, named_opt)):
            opt.zero_grad()
            _fake_grads(model, step)
            opt.step()
    for (name, p_flat), (_, p_named) in zip(flat_model.named_parameters(), named_model.named_parameters()):
        assert np.shares_memory(p_flat, flat_model.flat_params), name
        np.testing.assert_allclose(p_flat, p_named, rtol=FLAT_VS_NAMED_RTOL, atol=0.0, err_msg=name)
    assert not np.array_equal(flat_model.flat_params, Tiny().flat_params)  # the steps did move them
