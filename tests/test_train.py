"""`twograd train`: defaults that work, one-line errors, checkpoints, resume, Ctrl-C, pictures."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine import topological_order
from models.mlp import MLP, MLPConfig
from models.progress import ProgressBar
from models.train import CHECKPOINT_NAME, add_parser, graph_nodes_per_step, load_run, run, tour_stage, train
from nn.checkpoint import CheckpointError, save_checkpoint

XOR_LOSS_TARGET = 0.01  # from the issue
MOONS_TEST_TARGET = 0.97
IRIS_TEST_TARGET = 0.93
NODE_ESTIMATE_RTOL = 0.1  # graph_nodes_per_step is a formula, not a count: within 10%


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="twograd")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = run(parse(*argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- defaults
def test_xor_json_default(capsys) -> None:
    code, out, _ = run_cli(capsys, "xor", "--json")
    assert code == 0
    result = json_line(out)
    assert result["loss"] < XOR_LOSS_TARGET and result["train_accuracy"] == 1.0
    assert result["steps"] == 500 and result["engine"] == "manual"
    assert {"loss", "train_accuracy", "test_accuracy", "steps", "seconds"} <= set(result)


def test_xor_graph_engine_json_matches_manual(capsys) -> None:
    _, out_manual, _ = run_cli(capsys, "xor", "--json", "--steps", "200")
    _, out_graph, _ = run_cli(capsys, "xor", "--json", "--steps", "200", "--engine", "graph")
    manual, graph = json_line(out_manual), json_line(out_graph)
    assert graph["engine"] == "graph" and graph["train_accuracy"] == 1.0
    assert abs(manual["loss"] - graph["loss"]) <= 1e-9


@pytest.mark.parametrize("name,target", [("moons", MOONS_TEST_TARGET), ("iris", IRIS_TEST_TARGET)])
def test_default_recipes_reach_their_targets(name: str, target: float) -> None:
    result = train(dataset=name)
    assert result.test_accuracy >= target
    assert result.seconds < 30.0  # seconds, not minutes (typically ~0.1 s)


def test_graph_engine_works_for_a_few_moons_steps() -> None:
    manual = train(dataset="moons", steps=2)
    graph = train(dataset="moons", steps=2, engine="graph")
    np.testing.assert_allclose(graph.losses, manual.losses, rtol=1e-12)
    assert np.max(np.abs(graph.model.theta - manual.model.theta)) < 1e-12


def test_graph_node_estimate_and_slow_warning(tmp_path) -> None:
    config = MLPConfig(sizes=[2, 16, 16, 2], loss="cross_entropy")
    model = MLP(config)
    X = np.random.default_rng(0).standard_normal((10, 2))
    loss, _ = model.graph_loss(X, np.zeros(10, dtype=np.int64), labels=False)
    actual = len(topological_order(loss))
    assert abs(graph_nodes_per_step(config, 10) - actual) <= NODE_ESTIMATE_RTOL * actual
    said: list[str] = []
    train(dataset="moons", steps=1, engine="graph", echo=said.append)
    assert not any(s.startswith("warning") for s in said)  # one step: a fraction of a second
    # A long graph run warns before it starts (stopped at once from the progress callback).
    def stop(step: int, loss: float) -> None:
        raise KeyboardInterrupt

    said.clear()
    r = train(dataset="xor", steps=10**7, engine="graph", echo=said.append, progress=stop, out_dir=tmp_path)
    assert r.interrupted and any(s.startswith("warning: the graph engine") for s in said)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "argv,needle",
    [
        (("mnist",), "unknown dataset 'mnist'; choose one of: xor, moons, spirals, iris"),
        (("xor", "--activation", "gelu"), "unknown activation 'gelu'"),
        (("xor", "--steps", "0"), "--steps must be a positive int"),
        (("xor", "--steps", "-5"), "--steps must be a positive int"),
        (("xor", "--lr", "0"), "--lr must be a positive float"),
        (("xor", "--lr", "-0.1"), "--lr must be a positive float"),
        (("xor", "--engine", "gpu"), "unknown engine 'gpu'"),
        (("xor", "--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'"),
        (("xor", "--resume", "/nonexistent/run"), "--resume /nonexistent/run: no such run folder"),
        ((), "name a data set"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, needle) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twograd train: error: ")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_resume_folder_without_checkpoint(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "--resume", str(tmp_path))
    assert code == 2 and f"expected {tmp_path / CHECKPOINT_NAME}.json" in err


# ---------------------------------------------------------------------------- checkpoints and resume
N_STEPS = 120


def _run_state(out_dir: Path) -> tuple[dict, dict]:
    loaded = load_run(out_dir)
    return loaded.arrays, loaded.meta


def test_resume_is_bit_for_bit(tmp_path) -> None:
    straight = train(dataset="moons", steps=N_STEPS, out_dir=tmp_path / "straight", plots=False)
    half = train(dataset="moons", steps=N_STEPS // 2, out_dir=tmp_path / "split", plots=False)
    assert half.steps == N_STEPS // 2
    resumed = train(steps=N_STEPS, resume=tmp_path / "split", plots=False)
    assert resumed.resumed_from == N_STEPS // 2 and resumed.steps == N_STEPS
    assert np.array_equal(resumed.model.theta, straight.model.theta)
    assert np.array_equal(np.array(resumed.losses), np.array(straight.losses))
    a, meta_a = _run_state(tmp_path / "straight")
    b, meta_b = _run_state(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:  # parameters, Adam's moments and the loss history, all bit for bit
        assert np.array_equal(a[k], b[k]), k
    assert meta_a["optimizer_state"] == meta_b["optimizer_state"]


def test_resume_through_the_cli(capsys, tmp_path) -> None:
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "xor", "--steps", "100", "--out", str(out), "--quiet")
    assert code == 0 and (out / "checkpoint.npz").is_file() and (out / "checkpoint.json").is_file()
    code, stdout, _ = run_cli(capsys, "--resume", str(out), "--steps", "500", "--json")
    result = json_line(stdout)
    assert code == 0 and result["resumed_from"] == 100 and result["steps"] == 500
    assert result["loss"] == json_line(run_cli(capsys, "xor", "--json")[1])["loss"]
    code, _, err = run_cli(capsys, "moons", "--resume", str(out))
    assert code == 2 and "the checkpoint's data set is 'xor', not 'moons'" in err
    code, _, err = run_cli(capsys, "--resume", str(out), "--lr", "0.5")
    assert code == 2 and "lr" in err


def test_interrupt_saves_the_last_finished_step_and_resumes_exactly(tmp_path) -> None:
    k = 37

    def interrupt_at_k(step: int, loss: float) -> None:
        if step == k:
            raise KeyboardInterrupt

    straight = train(dataset="moons", steps=N_STEPS, plots=False)
    stopped = train(dataset="moons", steps=N_STEPS, out_dir=tmp_path, progress=interrupt_at_k, plots=False)
    assert stopped.interrupted and stopped.steps == k
    assert any("interrupted after step 37 of 120" in n for n in stopped.notes)
    arrays, meta = _run_state(tmp_path)
    assert meta["step"] == k and arrays["losses"].shape == (k,)
    assert meta["optimizer_state"]["step"] == k
    resumed = train(resume=tmp_path, plots=False)  # goes on to the run's own target, N_STEPS
    assert resumed.steps == N_STEPS
    assert np.array_equal(resumed.model.theta, straight.model.theta)


def test_interrupt_through_the_cli_exits_130(capsys, tmp_path, monkeypatch) -> None:
    original = ProgressBar.update

    def update(self, step, loss):
        original(self, step, loss)
        if step == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBar, "update", update)
    code, _, err = run_cli(capsys, "xor", "--out", str(tmp_path))
    assert code == 130
    assert "interrupted after step 5 of 500; checkpoint saved to" in err
    assert load_run(tmp_path).meta["step"] == 5


def test_interrupt_without_out_saves_to_the_default_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    def stop(step: int, loss: float) -> None:
        raise KeyboardInterrupt

    r = train(dataset="xor", progress=stop)
    assert r.interrupted and r.steps == 1
    assert (tmp_path / "twograd-out" / "train-xor" / "checkpoint.json").is_file()


def test_damaged_and_foreign_checkpoints_are_refused(capsys, tmp_path) -> None:
    run_dir = tmp_path / "run"
    train(dataset="xor", steps=10, out_dir=run_dir, plots=False)
    npz = run_dir / "checkpoint.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated
    code, _, err = run_cli(capsys, "--resume", str(run_dir))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "checkpoint.npz" in err
    with pytest.raises(CheckpointError):
        load_run(run_dir)

    foreign = tmp_path / "foreign"
    save_checkpoint(foreign / CHECKPOINT_NAME, {"W": np.zeros(3)}, {"kind": "something-else"})
    code, _, err = run_cli(capsys, "--resume", str(foreign))
    assert code == 2 and "not a `twograd train` checkpoint" in err

    # An object array would need pickle to load; unpickling this one would create `marker`.
    # With a json that vouches for it (matching sha256), it is still refused, never unpickled.
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "code-ran"
    np.savez(evil / "checkpoint.npz", losses=np.array([_TouchOnUnpickle(marker)], dtype=object), allow_pickle=True)
    record = json.loads((foreign / "checkpoint.json").read_text())
    record["sha256"] = hashlib.sha256((evil / "checkpoint.npz").read_bytes()).hexdigest()
    record["arrays"] = {"losses": {"shape": [1], "dtype": "|O"}}
    (evil / "checkpoint.json").write_text(json.dumps(record))
    code, _, err = run_cli(capsys, "--resume", str(evil))
    assert code == 2 and "pickle" in err
    assert not marker.exists()


class _TouchOnUnpickle:
    """Unpickling this creates a file: the evidence that a loader executed code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# ---------------------------------------------------------------------------- pictures and progress
def test_out_writes_pictures_and_names_them(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    code, out, _ = run_cli(capsys, "moons", "--steps", "50", "--out", str(tmp_path))
    assert code == 0
    for name in ("checkpoint.npz", "loss.png", "decision_boundary.png"):
        assert (tmp_path / name).stat().st_size > 0
        assert str(tmp_path / name) in out
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_training_still_works(capsys, tmp_path, monkeypatch) -> None:
    import models.plots as plots

    def missing(*args, **kwargs):
        raise plots.PlotsUnavailable(f"pictures need matplotlib: {plots.INSTALL_HINT}")

    monkeypatch.setattr(plots, "_figure", missing)
    code, out, _ = run_cli(capsys, "xor", "--out", str(tmp_path))
    assert code == 0
    assert "pip install 'twograd[plot]'" in out
    assert (tmp_path / "checkpoint.npz").is_file() and not (tmp_path / "loss.png").exists()


def test_progress_bar_line_and_tty_detection() -> None:
    stream = io.StringIO()  # not a TTY: silent by default
    bar = ProgressBar(100, stream=stream)
    bar.update(50, 0.25)
    bar.close()
    assert stream.getvalue() == "" and not bar.enabled
    stream = io.StringIO()
    bar = ProgressBar(100, stream=stream, enabled=True, min_interval=0.0)
    bar.update(40, 0.125)
    line = bar.line()
    assert "40/100" in line and "loss 0.125" in line and "steps/s" in line and "40%" in line
    bar.close()
    assert stream.getvalue().endswith("\n") and "\r" in stream.getvalue()


def test_tour_stage(tmp_path) -> None:
    said: list[str] = []
    assert tour_stage(tmp_path, said.append) is True
    text = "\n".join(said)
    assert "manual engine" in text and "graph engine" in text and "|loss(manual) - loss(graph)|" in text
    drawn = list(tmp_path.glob("xor_example_graph.*"))
    assert len(drawn) == 1 and drawn[0].stat().st_size > 0
    assert str(drawn[0]) in text

