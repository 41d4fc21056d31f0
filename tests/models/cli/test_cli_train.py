"""`twograd train` as a user runs it: results, exit codes, --json, run folders, a real Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from real_sigint import needs_real_sigint, skip_if_a_child_ignores_sigint

from models.cli import main
from models.training.runs import load_run

ROOT = Path(__file__).resolve().parents[3]
#: held-out accuracy the default recipes reach from the default seed (the README's claims).
MOONS_TEST_TARGET = 0.97
IRIS_TEST_TARGET = 0.93


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_of(out: str) -> dict:
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"--json prints one line, got {lines}"
    return json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_xor_learns_on_both_engines_with_the_same_loss(capsys) -> None:
    _, out, _ = run_cli(capsys, "xor", "--json")
    manual = json_of(out)
    _, out, _ = run_cli(capsys, "xor", "--json", "--engine", "graph")
    graph = json_of(out)
    assert manual["train_accuracy"] == graph["train_accuracy"] == 1.0
    assert manual["loss"] == pytest.approx(graph["loss"], rel=1e-6, abs=1e-25)  # rounding of the gradients only
    assert manual["status"] == "finished" and manual["steps"] == 500 and manual["folder"] is None


@pytest.mark.parametrize("task,target", [("moons", MOONS_TEST_TARGET), ("iris", IRIS_TEST_TARGET)])
def test_default_recipes_reach_their_held_out_targets(capsys, task, target) -> None:
    code, out, _ = run_cli(capsys, task, "--json")
    assert code == 0 and json_of(out)["test_accuracy"] >= target


def test_minibatch_flag_reaches_the_trainer(capsys, tmp_path) -> None:
    code, out, _ = run_cli(
        capsys, "moons", "--batch-size", "32", "--steps", "50", "--out", str(tmp_path / "r"), "--json"
    )
    assert code == 0 and json_of(out)["train_config"]["batch_size"] == 32
    assert load_run(tmp_path / "r").train_config.batch_size == 32


def test_list_shows_the_task_table(capsys) -> None:
    code, out, _ = run_cli(capsys, "--list")
    assert code == 0 and all(
        name in out for name in ("xor", "moons", "spirals", "iris", "copy", "reverse", "chars", "lines")
    )
    code, out, _ = run_cli(capsys, "--list", "--json")
    assert code == 0 and [t["task"] for t in json_of(out)["tasks"]] == [
        "xor",
        "moons",
        "spirals",
        "iris",
        "copy",
        "reverse",
        "chars",
        "lines",
    ]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["mnist"], "invalid choice: 'mnist'"),
        (["xor", "--steps", "0"], "must be >= 1"),
        (["xor", "--lr", "nan"], "positive finite"),
        (["xor", "--optimizer", "adagrad"], "invalid choice"),
        (["xor", "--out", ""], "needs a folder name"),
        (["xor", "--overwrite"], "--overwrite goes with --out"),
        ([], "name a task"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, needle) -> None:
    try:
        code = main(["train", *argv])
    except SystemExit as stop:  # argparse's own usage errors exit from inside the parser
        code = stop.code
    _, err = capsys.readouterr()
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_a_folder_holding_a_run_is_refused_in_one_line_and_kept(capsys, tmp_path) -> None:
    folder = tmp_path / "run"
    assert run_cli(capsys, "moons", "--steps", "20", "--out", str(folder))[0] == 0
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    code, out, err = run_cli(capsys, "spirals", "--steps", "5", "--out", str(folder))
    assert code == 2 and "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
    code, out, _ = run_cli(capsys, "moons", "--steps", "5", "--out", str(folder), "--json")
    assert code == 2 and "already holds" in json_of(out)["error"]


def test_divergence_exits_1_with_one_line_and_keeps_the_last_good_state(capsys, tmp_path) -> None:
    folder = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "moons",
        "--activation",
        "relu",
        "--loss",
        "mse",
        "--optimizer",
        "sgd",
        "--lr",
        "10",
        "--out",
        str(folder),
        "--quiet",
    )
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "training diverged at step" in lines[0] and str(folder) in lines[0]
    saved = load_run(folder)
    assert saved.status == "diverged" and all(np.isfinite(a).all() for a in saved.params.values())


@pytest.mark.slow
def test_human_output_names_what_it_wrote(capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "moons", "--out", str(tmp_path / "m"))
    assert code == 0
    assert "final loss" in out and "test accuracy" in out and f"wrote {tmp_path / 'm' / 'checkpoint.json'}" in out


@pytest.mark.slow
@needs_real_sigint
def test_a_real_ctrl_c_exits_130_and_resumes_bit_for_bit(tmp_path) -> None:
    """The command in its own process, stopped by a real SIGINT mid-run, then resumed."""
    skip_if_a_child_ignores_sigint()
    args = ["train", "moons", "--batch-size", "8", "--steps", "40000", "--seed", "2", "--checkpoint-every", "1000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "models.cli", *args, "--out", str(tmp_path / "cut"), "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for the first checkpoint (step 1000), not for a fixed time: on a fast machine a fixed
    # sleep let the whole run finish first. From step 1000 the run still has 39,000 steps to go.
    first = tmp_path / "cut" / "checkpoint.json"  # written last: the first checkpoint is whole
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first.exists(), "the run never wrote its first checkpoint"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    cut = load_run(tmp_path / "cut")
    assert cut.status == "interrupted" and 0 < cut.state.step < 40000
    assert f"twograd train --resume {tmp_path / 'cut'}" in out  # --quiet still prints the results and the notes
    assert "final loss" in out and "moons:" not in out  # but not the summary printed before training
    resumed = subprocess.run(
        [sys.executable, "-m", "models.cli", "train", "--resume", str(tmp_path / "cut"), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        [sys.executable, "-m", "models.cli", *args, "--out", str(tmp_path / "straight"), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert straight.returncode == 0, straight.stderr
    a, b = load_run(tmp_path / "cut"), load_run(tmp_path / "straight")
    assert a.state.step == b.state.step == 40000 and a.state.losses == b.state.losses
    assert all(np.array_equal(a.params[n], b.params[n]) for n in b.params)


@pytest.mark.slow
def test_json_reports_step_time_and_the_mean_of_the_last_100_losses(capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "moons", "--steps", "130", "--out", str(tmp_path / "r"), "--json")
    report = json_of(out)
    losses = load_run(tmp_path / "r").state.losses
    assert code == 0 and len(losses) == 130
    assert report["last100_loss"] == pytest.approx(np.mean(losses[-100:]), rel=1e-5)  # 6 significant digits
    assert report["last100_loss"] != pytest.approx(np.mean(losses), rel=1e-3)  # the tail, not the whole run
    # the mean step time: positive, and no more than the loop's wall time spread over the steps.
    # Both are rounded in the JSON (ms_per_step to 3 decimals, seconds to 4), so allow for that.
    rounding_ms = 0.0005 + 1000 * 0.00005 / 130
    assert 0 < report["ms_per_step"] <= 1000 * report["seconds"] / 130 + rounding_ms


@pytest.mark.slow
def test_checkpointing_every_n_steps_writes_the_final_state_once(capsys, tmp_path, monkeypatch) -> None:
    import models.training.tasks

    writes: list[tuple[int, str]] = []
    real = models.training.tasks.save_run

    def counting(folder, **kw):
        writes.append((kw["state"].step, kw["status"]))
        return real(folder, **kw)

    monkeypatch.setattr(models.training.tasks, "save_run", counting)
    code, _, _ = run_cli(
        capsys, "xor", "--steps", "50", "--checkpoint-every", "20", "--out", str(tmp_path / "r"), "--json"
    )
    assert code == 0
    assert writes == [(20, "running"), (40, "running"), (50, "finished")]
    assert load_run(tmp_path / "r").status == "finished"
