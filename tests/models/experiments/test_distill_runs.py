"""Distillation runs: alpha = 0 is the labels-only run bit for bit (MLP and GPT), the command reports
the three metrics as mean/std over seeds, and --out never overwrites a summary."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from real_sigint import needs_real_sigint

from models.cli import main
from models.data.datasets import load_dataset
from models.data.sequences import CharText
from models.experiments.distill import SETTINGS, LMDistillObjective, TabularDistillObjective, labelled_subset
from models.training.lm import LMObjective
from models.training.trainer import TrainConfig, Trainer, full_batch
from models.zoo.gpt import GPT, GPTConfig
from models.zoo.mlp import MLP, MLPConfig

#: steps of the quick runs: enough for the curves to move, a fraction of a second each
QUICK_STEPS = 40
#: the fused GPT step against the composed pieces in float64: the same terms summed in other
#: orders, about 1e-14 relative (tests/models/test_gpt_fast.py); 1e-10 asked, and the same
#: fraction of the largest gradient entry for entries near 0
FUSED_RTOL = 1e-10


def test_alpha_zero_tabular_run_is_exactly_the_labels_only_run() -> None:
    data = load_dataset("spirals", seed=0)
    labelled = labelled_subset(data.y_train, 15, np.random.default_rng(0))
    teacher = MLP(MLPConfig(sizes=[2, 32, 3], loss="cross_entropy", seed=1))
    config = MLPConfig(sizes=[2, 8, 3], loss="cross_entropy", seed=0)
    runs = []
    for logits in (None, teacher.forward(data.X_train)):
        objective = TabularDistillObjective(MLP(config), data, labelled, logits, temperature=4.0, alpha=0.0)
        outcome = Trainer(objective, full_batch, TrainConfig(steps=QUICK_STEPS, lr=0.01)).run()
        runs.append((outcome.state.losses, objective.model.flat_params.copy()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])


def test_alpha_zero_gpt_gradient_is_exactly_the_labels_only_gradient() -> None:
    data = CharText("the quick brown fox jumps over the lazy dog. " * 20, name="fox")
    config = GPTConfig(vocab_size=data.vocab.size, context=8, d_model=16, n_heads=2, n_layers=1)
    student, teacher = GPT(config), GPT(replace(config, seed=3))
    lm = LMObjective(student, data, "manual", 4)
    batch = lm.batches(np.random.default_rng(0))
    grads = []
    # labels only by the composed pieces (the path the distillation's gradient takes: gpt_forward,
    # then gpt_backward_logits), by the fused step lm.loss_and_grad runs, and distilled with alpha 0
    for step in (
        lambda: student.loss_and_grad_composed(*batch),
        lambda: lm.loss_and_grad(batch),
        lambda: LMDistillObjective(lm, teacher, temperature=2.0, alpha=0.0).loss_and_grad(batch),
    ):
        student.flat_grads.fill(0.0)
        loss = step()
        grads.append((loss, student.flat_grads.copy()))
    assert grads[0][0] == pytest.approx(grads[2][0], rel=1e-12)  # the same CE, summed in another order
    assert np.array_equal(grads[0][1], grads[2][1])
    # the fused step: the same math in another order of sums (tests/models/test_gpt_fast.py)
    assert grads[1][0] == pytest.approx(grads[0][0], rel=FUSED_RTOL)
    np.testing.assert_allclose(grads[1][1], grads[0][1], rtol=FUSED_RTOL, atol=FUSED_RTOL * np.max(np.abs(grads[0][1])))


def test_gpt_distillation_gradient_matches_finite_differences() -> None:
    """The soft term enters the GPT at its logits (`gpt_backward_logits`): checked on a few weights."""
    data = CharText("abcabcabd " * 30, name="abc")
    config = GPTConfig(vocab_size=data.vocab.size, context=6, d_model=8, n_heads=2, n_layers=1)
    student, teacher = GPT(config), GPT(replace(config, seed=5))
    objective = LMDistillObjective(LMObjective(student, data, "manual", 3), teacher, temperature=2.0, alpha=0.7)
    batch = objective.batches(np.random.default_rng(1))
    student.flat_grads.fill(0.0)
    objective.loss_and_grad(batch)
    analytic = student.flat_grads.copy()
    eps, tolerance = 1e-6, 1e-6  # central differences in float64: error ~ eps^2 plus rounding / eps
    for i in np.random.default_rng(2).choice(analytic.size, size=8, replace=False):
        values = []
        for sign in (1, -1):
            student.flat_params[i] += sign * eps
            values.append(objective.loss_and_grad(batch))
            student.flat_params[i] -= sign * eps
        numeric = (values[0] - values[1]) / (2 * eps)
        assert analytic[i] == pytest.approx(numeric, rel=tolerance, abs=tolerance)


@pytest.mark.slow
def test_distill_spirals_reports_three_metrics_over_seeds(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(SETTINGS, "spirals", replace(SETTINGS["spirals"], teacher_steps=300, eval_every=10))
    out = tmp_path / "run"
    assert main(["distill", "spirals", "--seeds", "2", "--steps", str(QUICK_STEPS), "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("teacher_metric", "student_metric", "distilled_metric"):
        assert set(report[key]) == {"mean", "std"} and 0.0 <= report[key]["mean"] <= 1.0
    assert report["parameters"]["teacher"] > report["parameters"]["student"]
    assert report["seeds"] == [0, 1] and len(report["per_seed"]) == 2
    assert (
        (out / "summary.json").exists()
        and (out / "learning_curves.png").exists()
        and (out / "soft_targets.png").exists()
    )
    assert not (
        out / ".twograd-writing"
    ).exists()  # the claim on the folder is released (models.training.runs.claim_folder)
    assert main(["distill", "spirals", "--steps", "5", "--out", str(out)]) == 2  # never overwritten
    assert "already holds" in capsys.readouterr().err


def test_distill_refuses_a_teacher_of_another_task(tmp_path, capsys) -> None:
    run = tmp_path / "moons"
    assert main(["train", "moons", "--steps", "5", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["distill", "spirals", "--teacher", str(run), "--steps", "5"]) == 2
    assert "a run of 'moons'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--alpha", "1.5"], ["--temperature", "0"]])
def test_distill_refuses_bad_settings(args: list[str], capsys) -> None:
    assert main(["distill", "spirals", "--steps", "5", *args]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["distill", "spirals", "--steps", "50"], ["align", "--steps", "20"]])
@needs_real_sigint
def test_ctrl_c_stops_the_experiment_instead_of_scoring_a_half_trained_model(
    tmp_path, monkeypatch, capsys, argv
) -> None:
    """A real SIGINT in the middle of one of the experiment's trainings: exit 130, one line, nothing written."""
    import os
    import signal

    from models.cli import main
    from models.training.trainer import Trainer

    real, calls = Trainer._one_step, []

    def step_then_ctrl_c(self, latch):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the trainer's latch turns it into a stop after this step
        return real(self, latch)

    monkeypatch.setattr(Trainer, "_one_step", step_then_ctrl_c)
    monkeypatch.chdir(tmp_path)  # an interrupted teacher (spirals) is kept under ./twograd-out/runs/
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted after step 3" in err[0] and "experiment stopped there" in err[0], err
    assert len(calls) == 3  # nothing trained after the interrupt
    assert not out.exists() or not any(out.iterdir())  # no summary of a half-done experiment
    if argv[0] == "distill":  # the teacher's own run is kept, to be resumed and given as --teacher
        assert "continue with: twograd train --resume" in err[0]
        assert len(list((tmp_path / "twograd-out" / "runs").glob("*/checkpoint.json"))) == 1


@pytest.mark.slow
def test_ctrl_c_in_a_students_training_stops_distill_too(tmp_path, monkeypatch, capsys) -> None:
    """Past the teacher (trained by `models.training.tasks.train`), in the labels-only student's training."""
    import models.experiments.distill
    from models.training.trainer import Interrupted

    def interrupted(*_args, **_kwargs):
        raise Interrupted(
            "labels only seed 0 interrupted after step 7 of 50: the experiment stopped there and wrote nothing"
        )

    monkeypatch.setattr(models.experiments.distill, "_train", interrupted)
    assert main(["distill", "spirals", "--steps", "50", "--out", str(tmp_path / "o"), "--quiet"]) == 130
    assert "wrote nothing" in capsys.readouterr().err
    assert not (tmp_path / "o" / "summary.json").exists()


@pytest.mark.parametrize(
    "metric,student,distilled,needle",
    [
        ("val_loss", 2.8819, 2.8867, "by +0.0048 (worse;"),
        ("val_loss", 2.9, 2.8, "by -0.1 (better;"),
        ("test_accuracy", 0.5, 0.9, "by +0.4 (better;"),
    ],
)
def test_the_one_seed_verdict_says_which_way_the_metric_moved(metric, student, distilled, needle) -> None:
    from models.experiments.distill import DistillReport, SeedResult

    result = SeedResult(0.99, student, distilled, 0.5, 0.9, {})
    report = DistillReport("chars", metric, 2.0, 0.5, 10, [0], {"teacher": 1, "student": 1}, [result], False)
    assert needle in report.verdict()
