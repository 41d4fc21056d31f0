"""The generic trainer (models/training/trainer.py): config, schedule, minibatches, Ctrl-C, divergence, resume."""

from __future__ import annotations

import math
import os
import signal
import warnings

import numpy as np
import pytest
from real_sigint import needs_real_sigint

from engine.errors import InputError, RunError
from models.data.datasets import load_dataset
from models.training.tabular import ClassifierObjective
from models.training.trainer import Diverged, RowBatches, TrainConfig, Trainer, full_batch
from models.zoo.mlp import MLP, MLPConfig
from nn.optim import scheduled_lr

#: a minibatch run long enough to interrupt at several places, short enough for a unit test.
STEPS = 120
MINIBATCH = TrainConfig(steps=STEPS, batch_size=16, lr=0.01, seed=3)


def moons_setup(config: TrainConfig = MINIBATCH, **trainer_kwargs) -> Trainer:
    data = load_dataset("moons", seed=0)
    model = MLP(MLPConfig(sizes=[2, 8, 2], loss="cross_entropy", seed=0))
    objective = ClassifierObjective(model, data, "manual")
    return Trainer(objective, RowBatches(len(data.y_train), config.batch_size), config, **trainer_kwargs)


def straight_run() -> Trainer:
    t = moons_setup()
    assert t.run().status == "finished"
    return t


def resumed_from(stopped: Trainer) -> Trainer:
    """A fresh trainer restored from `stopped`'s state and parameters, run to the end."""
    fresh = moons_setup()
    fresh.model.load_state_dict(stopped.model.state_dict())
    fresh.restore(stopped.state())
    assert fresh.run().status == "finished"
    return fresh


def assert_bit_equal(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step
    assert a.losses == b.losses  # every loss, exactly
    assert np.array_equal(a.model.flat_params, b.model.flat_params)  # bit for bit, not approximately
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


# ---------------------------------------------------------------------------- config and schedule
@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("steps", 0, "steps must be a whole number >= 1"),
        ("batch_size", 0, "batch_size"),
        ("lr", -1.0, "lr must be a positive"),
        ("lr", math.nan, "lr"),
        ("optimizer", "adagrad", "unknown optimizer 'adagrad'"),
        ("decay", "step", "unknown decay"),
        ("grad_clip", 0.0, "grad_clip"),
        ("seed", -1, "seed"),
        ("min_lr", 1.0, "must not exceed lr"),
    ],
)
def test_config_names_the_bad_field(field, value, needle) -> None:
    with pytest.raises(InputError, match=needle):
        TrainConfig(**{field: value}).validate()


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    kw = dict(lr=1.0, total_steps=11, warmup_steps=2, min_lr=0.1)
    assert scheduled_lr(0, decay="cosine", **kw) == 0.5 and scheduled_lr(1, decay="cosine", **kw) == 1.0
    assert scheduled_lr(2, decay="cosine", **kw) == 1.0  # first update after warm-up: the peak
    assert scheduled_lr(10, decay="cosine", **kw) == pytest.approx(0.1, abs=1e-15)  # last update: the floor
    assert scheduled_lr(10, decay="linear", **kw) == pytest.approx(0.1, abs=1e-15)
    mid = 2 + 4  # halfway through the decay: cosine and linear agree at (lr + min_lr) / 2
    assert scheduled_lr(mid, decay="cosine", **kw) == pytest.approx(0.55, abs=1e-12)
    assert scheduled_lr(mid, decay="linear", **kw) == pytest.approx(0.55, abs=1e-12)
    assert scheduled_lr(50, decay="linear", **kw) == pytest.approx(0.1)  # past the end: stays at the floor
    assert scheduled_lr(7, decay="constant", **kw) == 1.0


def test_trainer_applies_the_schedule_to_the_optimizer() -> None:
    cfg = TrainConfig(steps=10, lr=0.02, warmup_steps=3, decay="linear", min_lr=0.001)
    seen = []
    t = moons_setup(cfg, callback=lambda step, loss: seen.append(t.optimizer.lr))
    t.run()
    expected = [
        scheduled_lr(k, lr=0.02, total_steps=10, warmup_steps=3, decay="linear", min_lr=0.001) for k in range(10)
    ]
    assert seen == expected


def test_gradient_clipping_bounds_the_update() -> None:
    """SGD with lr 1 and clip c moves the parameters by at most c (plus the clip's eps) in one step."""
    cfg = TrainConfig(steps=1, optimizer="sgd", lr=1.0, grad_clip=1e-3)
    t = moons_setup(cfg)
    before = t.model.flat_params.copy()
    t.run()
    assert np.linalg.norm(t.model.flat_params - before) <= 1e-3 * (1 + 1e-9)


def test_row_batches_draw_distinct_rows_and_full_batch_draws_nothing() -> None:
    rng = np.random.default_rng(0)
    batch = RowBatches(10, 4)(rng)
    assert batch.shape == (4,) and len(set(batch.tolist())) == 4 and batch.max() < 10
    state = rng.bit_generator.state
    assert RowBatches(10, None)(rng) is None and RowBatches(10, 10)(rng) is None and full_batch(rng) is None
    assert rng.bit_generator.state == state  # full batch draws no random numbers


def test_evaluations_are_recorded_at_their_steps() -> None:
    t = moons_setup(TrainConfig(steps=30, batch_size=16, eval_every=10))
    t.run()
    assert [e["step"] for e in t.evals] == [10, 20, 30]
    assert set(t.evals[-1]) == {"step", "loss", "train_accuracy", "test_accuracy"}


def test_checkpoints_are_handed_over_every_n_steps() -> None:
    got = []
    t = moons_setup(
        TrainConfig(steps=25, batch_size=16, checkpoint_every=10), on_checkpoint=lambda s: got.append(s.step)
    )
    t.run()
    assert got == [10, 20, 25]


# ---------------------------------------------------------------------------- Ctrl-C and resume
def _sigint_after(k: int, times: int = 1):
    """A callback that sends this process real SIGINTs after step k."""

    def callback(step: int, loss: float) -> None:
        if step == k:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    return callback


@pytest.mark.parametrize("k", [1, 37, 64, STEPS - 1])
@needs_real_sigint
def test_real_sigint_at_step_k_stops_there_and_resumes_bit_for_bit(k: int) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # so the trainer installs its latch
    stopped = moons_setup(callback=_sigint_after(k))
    outcome = stopped.run()
    assert outcome.status == "interrupted" and stopped.step == k and len(stopped.losses) == k
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the latch is gone
    assert_bit_equal(resumed_from(stopped), straight_run())


@needs_real_sigint
def test_second_sigint_stops_at_once_with_a_whole_state() -> None:
    stopped = moons_setup(callback=_sigint_after(20, times=2))
    assert stopped.run().status == "interrupted"
    assert stopped.step == 20
    assert_bit_equal(resumed_from(stopped), straight_run())


@needs_real_sigint
def test_second_sigint_inside_the_update_waits_for_it() -> None:
    t = moons_setup()
    real_step = t.optimizer.step

    def step_with_two_interrupts() -> None:
        if t.optimizer.step_count == 9:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real_step()

    t.optimizer.step = step_with_two_interrupts  # type: ignore[method-assign]
    assert t.run().status == "interrupted"
    assert t.step == 10 and t.optimizer.step_count == 10  # the update finished, then the run stopped
    assert_bit_equal(resumed_from(t), straight_run())


@needs_real_sigint
def test_interrupt_inside_the_gradient_rewinds_the_generator() -> None:
    """Ctrl-C twice while step 31 computes its gradient: its batch was drawn, but the saved
    generator is the one of step 30, so the resumed run draws that batch again."""
    t = moons_setup()
    real = t.objective.loss_and_grad

    def interrupted_gradient(batch):
        if t.step == 30:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(batch)

    t.objective.loss_and_grad = interrupted_gradient  # type: ignore[method-assign]
    assert t.run().status == "interrupted" and t.step == 30
    t.objective.loss_and_grad = real  # type: ignore[method-assign]
    assert_bit_equal(resumed_from(t), straight_run())


def test_a_host_sigint_handler_is_left_alone() -> None:
    calls = []
    previous = signal.signal(signal.SIGINT, lambda *a: calls.append(1))
    try:
        t = moons_setup(callback=_sigint_after(5))
        assert t.run().status == "finished"  # the host's handler took the signal, not the trainer
        assert calls == [1] and signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_restore_refuses_a_state_that_does_not_add_up() -> None:
    t = moons_setup()
    state = t.state()
    state.step = 3  # but no losses
    with pytest.raises(InputError, match="loss history has 0 entries for 3 steps"):
        moons_setup().restore(state)


# ---------------------------------------------------------------------------- divergence
def _diverging(lr: float, kept: list) -> Trainer:
    """A relu MLP under mse and plain SGD: the weights grow until the forward overflows."""
    data = load_dataset("moons", seed=0)
    model = MLP(MLPConfig(sizes=[2, 8, 1], loss="mse", activation="relu", seed=0))
    return Trainer(
        ClassifierObjective(model, data, "manual"),
        full_batch,
        TrainConfig(steps=200, optimizer="sgd", lr=lr),
        on_checkpoint=kept.append,
    )


def test_divergence_names_the_step_and_keeps_the_last_good_state() -> None:
    kept: list = []
    t = _diverging(10.0, kept)
    with pytest.raises(Diverged, match=r"training diverged at step 6 \(loss inf\); try a smaller --lr") as info:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no numpy overflow warning escapes: the one report is Diverged
            t.run()
    err = info.value
    assert isinstance(err, RunError) and err.state_is_good
    assert [s.step for s in kept] == [5] and err.state.step == 5  # the state before the failing step
    assert len(err.state.losses) == 5 and all(math.isfinite(x) for x in err.state.losses)
    assert np.isfinite(t.model.flat_params).all()  # step 6's update never ran


def test_an_update_that_overflows_the_parameters_is_not_kept_as_good() -> None:
    kept: list = []
    t = _diverging(1e308, kept)
    with pytest.raises(Diverged, match="the update made parameters non-finite") as info:
        t.run()
    assert not info.value.state_is_good and kept == []
