"""`twograd train --learner DIR`: the learner's pieces in the zoo (issue 19, item 5).

The workspaces here hold twograd's OWN solutions as the learner's files. Each file re-exports
nn's functions (`from nn.linear import linear_backward, linear_forward, linear_loops`), so a run
on "the learner's pieces" must give twograd's results; one test writes a linear layer by hand
(einsum, with a call counter) to see that the learner's code is what runs. progress.json records
each file passed with its sha256, as `twograd learn check` writes it (the contract in
models/learn/workspace.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import models
from engine.errors import InputError
from models.cli import main
from models.training.learner import load_pieces
from models.training.runs import load_run
from models.zoo.gpt import GPT, GPTConfig
from models.zoo.kernels import Kernel
from models.zoo.mlp import MLP, MLPConfig

#: the learner's pieces (here twograd's own) against twograd's default path, over the same steps: the
#: xor run is bit for bit the same (fused and composed MLP agree exactly); a GPT's composed pieces
#: against its fused step differ by float64 rounding (measured ~4e-16 relative over 30 steps).
TRAJECTORY_RTOL = 1e-12
#: the issue's target on reverse's held-out questions
REVERSE_EXACT_TARGET = 0.99

REEXPORTS = {
    "linear": "from nn.linear import linear_backward, linear_forward, linear_loops\n",
    "activations": (
        "from nn.activations import (relu_backward, relu_forward, relu_loops, sigmoid_backward, sigmoid_forward,\n"
        "                            sigmoid_loops, tanh_backward, tanh_forward, tanh_loops)\n"
    ),
    "mse": "from nn.losses import mse_backward, mse_forward, mse_loops\n",
    "cross_entropy": "from nn.losses import cross_entropy_backward, cross_entropy_forward, cross_entropy_loops\n",
    "attention": "from nn.attention import attention_backward, attention_forward, attention_loops\n",
    "mha": "from nn.mha import mha_backward, mha_forward, mha_loops\n",
    "layer_norm": "from nn.normalization import layer_norm_backward, layer_norm_forward, layer_norm_loops\n",
    "transformer_block": "from nn.transformer_block import transformer_block_backward, transformer_block_forward, transformer_block_loops\n",
}
MLP_EXERCISES = ("linear", "activations", "mse")
GPT_EXERCISES = ("attention", "mha", "layer_norm", "transformer_block")

#: a linear layer written by hand, differently from nn's, counting its calls
EINSUM_LINEAR = """
import numpy as np

CALLS = {"forward": 0, "backward": 0}


def linear_forward(x, W, b):
    CALLS["forward"] += 1
    x, W, b = (np.asarray(a, dtype=np.float64) for a in (x, W, b))
    return np.einsum("bi,io->bo", x, W) + b, (x, W)


def linear_backward(dout, cache):
    CALLS["backward"] += 1
    x, W = cache
    return np.einsum("bo,io->bi", dout, W), np.einsum("bi,bo->io", x, dout), dout.sum(axis=0)
"""

#: nn's linear with the classic mistake a forged progress.json could hide: dW twice too big
WRONG_LINEAR = """
from nn.linear import linear_forward, linear_backward as _right


def linear_backward(dout, cache):
    dx, dW, db = _right(dout, cache)
    return dx, 2.0 * dW, db
"""

#: the transformer block with its backward left as `learn start` writes a stub (the stretch exercise)
BLOCK_WITHOUT_BACKWARD = """
from nn.transformer_block import transformer_block_forward


def transformer_block_backward(dout, cache):
    raise NotImplementedError("the stretch exercise")
"""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_workspace(
    folder: Path, names: tuple[str, ...], texts: dict[str, str] | None = None, status: dict[str, str] | None = None
) -> Path:
    """DIR with NAME.py for each name (nn's re-exports unless `texts` gives one) and progress.json
    recording each as passed (or `status[name]`) with its file's sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    exercises = {}
    for name in names:
        path = folder / f"{name}.py"
        path.write_text((texts or {}).get(name, REEXPORTS[name]), encoding="utf-8")
        exercises[name] = {
            "status": (status or {}).get(name, "passed"),
            "sha256": sha256_of(path),
            "checked_at": "2026-12-06T17:00:00Z",
        }
    (folder / "progress.json").write_text(json.dumps({"version": 1, "exercises": exercises}), encoding="utf-8")
    return folder


def losses(report: models.TrainReport) -> np.ndarray:
    return np.array(report.outcome.state.losses)


def assert_same_trajectory(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    gap = np.max(np.abs(a - b) / np.abs(a))
    assert gap <= TRAJECTORY_RTOL, f"loss trajectories differ by {gap:.3g} relative"


# ---------------------------------------------------------------------------- xor: the MLP
def test_xor_on_the_learners_pieces_gives_twograds_results(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES)
    ours = models.train("xor", quiet=True)
    theirs = models.train("xor", learner=ws, quiet=True)
    assert theirs.metrics["train_accuracy"] == theirs.metrics["test_accuracy"] == 1.0
    assert_same_trajectory(losses(ours), losses(theirs))
    assert theirs.learner is not None and theirs.learner.yours == ["linear", "tanh", "mse"]
    assert theirs.learner.twograds == []
    assert "your pieces: linear, tanh, mse; twograd's: none" in theirs.text()
    assert theirs.model.kernels is not None and ours.model.kernels is None


def test_the_learners_own_code_is_what_trains(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", ("linear",), texts={"linear": EINSUM_LINEAR})
    ours = models.train("xor", quiet=True)
    theirs = models.train("xor", learner=ws, quiet=True)
    forward = theirs.model.kernels[
        "linear"
    ].forward.__wrapped__  # under the guard that turns their errors into one line
    assert forward.__module__ == "twograd_learner_linear"  # a private name: loaded by path, never from sys.path
    assert forward.__code__.co_filename == str(ws / "linear.py")
    assert not [
        name for name, m in list(sys.modules.items()) if str(getattr(m, "__file__", "") or "").startswith(str(ws))
    ]
    calls = forward.__globals__["CALLS"]
    steps = theirs.outcome.state.step
    assert calls["backward"] >= 2 * steps  # two layers a step (plus the re-check)
    assert calls["forward"] >= 2 * steps
    assert theirs.learner.yours == ["linear"] and theirs.learner.twograds == ["tanh", "mse"]
    assert theirs.metrics["test_accuracy"] == 1.0
    # einsum sums in another order: the same run to rounding, not bit for bit
    np.testing.assert_allclose(losses(theirs)[:100], losses(ours)[:100], rtol=1e-9)


def test_moons_takes_the_learners_linear_and_activation_and_twograds_cross_entropy(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES)
    report = models.train("moons", learner=ws, steps=50, quiet=True)
    assert report.learner.yours == ["linear", "tanh"] and report.learner.twograds == ["cross_entropy"]
    assert_same_trajectory(losses(models.train("moons", steps=50, quiet=True)), losses(report))


@pytest.mark.parametrize("task, activation", [("moons", "relu"), ("iris", "sigmoid"), ("spirals", "tanh")])
def test_every_mlp_piece_can_be_the_learners(tmp_path: Path, task: str, activation: str) -> None:
    ws = make_workspace(tmp_path / "ws", (*MLP_EXERCISES, "cross_entropy"))
    report = models.train(task, learner=ws, activation=activation, steps=30, quiet=True)
    assert report.learner.yours == ["linear", activation, "cross_entropy"] and report.learner.twograds == []
    assert_same_trajectory(losses(models.train(task, activation=activation, steps=30, quiet=True)), losses(report))


# ---------------------------------------------------------------------------- reverse: the GPT's composed path
#: each way the GPT's composed path takes the learner's pieces (models/zoo/kernels.py): (exercises, their texts)
GPT_WORKSPACES = {
    "every piece (the learner's block)": (GPT_EXERCISES, None),
    "attention and layer norm (twograd's heads around the learner's attention)": (("attention", "layer_norm"), None),
    "mha only": (("mha",), None),
    "a block without backward, and layer norm": (
        ("transformer_block", "layer_norm"),
        {"transformer_block": BLOCK_WITHOUT_BACKWARD},
    ),
}


@pytest.mark.parametrize("names, texts", list(GPT_WORKSPACES.values()), ids=list(GPT_WORKSPACES))
def test_the_gpt_with_the_learners_pieces_is_the_same_function(
    tmp_path: Path, names: tuple[str, ...], texts: dict[str, str] | None
) -> None:
    """Loss and every gradient at the same weights, the learner's kernels against the default path."""
    ws = make_workspace(tmp_path / "ws", names, texts=texts)
    config = GPTConfig(vocab_size=11, context=10, d_model=32, n_heads=2, n_layers=2, activation="gelu_tanh")
    pieces = load_pieces(ws, "reverse", {"gpt": config.to_dict()})
    default, learners = GPT(config), GPT(config, kernels=pieces.kernels)
    idx = np.random.default_rng(3).integers(0, 11, size=(4, 10))
    targets = np.random.default_rng(4).integers(0, 11, size=(4, 10))
    loss_default = default.loss_and_grad_composed(idx, targets)
    loss_learners = learners.loss_and_grad(idx, targets)  # a model with kernels trains on the composed path
    assert abs(loss_learners - loss_default) <= TRAJECTORY_RTOL * abs(loss_default)
    np.testing.assert_allclose(
        learners.flat_grads, default.flat_grads, rtol=0, atol=TRAJECTORY_RTOL * np.abs(default.flat_grads).max()
    )
    np.testing.assert_allclose(learners.logits(idx), default.logits(idx), rtol=0, atol=1e-12)


@pytest.mark.parametrize("names, texts", list(GPT_WORKSPACES.values()), ids=list(GPT_WORKSPACES))
def test_a_short_reverse_run_follows_twograds_trajectory(
    tmp_path: Path, names: tuple[str, ...], texts: dict[str, str] | None
) -> None:
    ws = make_workspace(tmp_path / "ws", names, texts=texts)
    ours = models.train("reverse", steps=20, quiet=True)
    theirs = models.train("reverse", steps=20, learner=ws, quiet=True)
    assert_same_trajectory(losses(ours), losses(theirs))
    assert theirs.metrics["val_loss"] == pytest.approx(ours.metrics["val_loss"], rel=TRAJECTORY_RTOL)


def test_the_report_names_whose_pieces_ran_in_the_gpt(tmp_path: Path) -> None:
    config = {"gpt": GPTConfig(activation="gelu_tanh").to_dict()}
    every = load_pieces(make_workspace(tmp_path / "every", GPT_EXERCISES), "reverse", config)
    assert every.yours == ["layer_norm", "transformer_block"] and every.twograds == []
    assert every.inside == {"attention": "transformer_block", "mha": "transformer_block"}
    assert (
        every.line()
        == "your pieces: layer_norm, transformer_block; twograd's: none; your attention, mha run inside your transformer_block"
    )
    heads = load_pieces(make_workspace(tmp_path / "heads", ("attention",)), "reverse", config)
    assert heads.line() == "your pieces: attention; twograd's: mha, layer_norm, transformer_block"
    for text in (
        BLOCK_WITHOUT_BACKWARD,
        "from nn.transformer_block import transformer_block_forward\n",
    ):  # a stub, or none
        stub = load_pieces(
            make_workspace(tmp_path / f"stub{len(text)}", ("transformer_block",), texts={"transformer_block": text}),
            "reverse",
            config,
        )
        assert stub.yours == [] and "transformer_block" in stub.twograds
        assert any("no backward yet" in note for note in stub.notes)


@pytest.mark.slow
def test_reverse_reaches_the_target_on_the_learners_pieces(tmp_path: Path) -> None:
    """The whole default recipe (600 steps) on the learner's pieces, as the issue's done-when asks."""
    ws = make_workspace(tmp_path / "ws", GPT_EXERCISES)
    report = models.train("reverse", learner=ws, quiet=True)
    assert report.metrics["test_exact_accuracy"] >= REVERSE_EXACT_TARGET


# ---------------------------------------------------------------------------- refusals, before training
def refused(capsys, *argv: str) -> str:
    code = main(["train", *argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines  # one line, no traceback
    return lines[0]


def test_a_failing_piece_is_refused_naming_it_and_its_check(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES, status={"linear": "failing"})
    line = refused(capsys, "xor", "--learner", str(ws), "--out", str(tmp_path / "run"))
    assert (
        "your linear" in line and "failed its last check" in line and f"twograd learn check linear --dir {ws}" in line
    )
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_piece_never_checked_is_refused(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", ("mse",))
    (ws / "linear.py").write_text(REEXPORTS["linear"], encoding="utf-8")  # started, no record in progress.json
    line = refused(capsys, "xor", "--learner", str(ws))
    assert "your linear" in line and "never checked" in line and "twograd learn check linear" in line


def test_a_piece_edited_after_it_passed_is_refused(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES)
    with open(ws / "mse.py", "a", encoding="utf-8") as f:
        f.write("# a comment is an edit too\n")
    line = refused(capsys, "xor", "--learner", str(ws))
    assert "your mse" in line and "edited since its last check" in line and "twograd learn check mse" in line


def test_a_wrong_backward_in_a_forged_progress_file_is_caught_by_the_recheck(tmp_path: Path, capsys) -> None:
    """progress.json says passed with the right sha256, but linear_backward's dW is twice too big.

    The pieces are trusted only after one small case against twograd's pair (milliseconds):
    training on a wrong gradient would cost the whole run and then show a model that did not learn."""
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES, texts={"linear": WRONG_LINEAR})
    line = refused(capsys, "xor", "--learner", str(ws), "--out", str(tmp_path / "run"))
    assert "your linear_backward's dW differs from twograd's" in line and "twograd learn check linear" in line
    assert "2x too big (factor)" in line  # in words, not a relative gap
    assert not (tmp_path / "run").exists()


def test_a_piece_that_breaks_on_import_is_one_line(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", ("linear",), texts={"linear": "import numpy as np\nraise SystemExit(3)\n"})
    line = refused(capsys, "xor", "--learner", str(ws))
    assert "your linear failed while being imported (SystemExit" in line


def test_pieces_not_started_are_twograds(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", ("mse",))
    report = models.train("xor", learner=ws, quiet=True)
    assert report.learner.line() == "your pieces: mse; twograd's: linear, tanh"
    assert report.metrics["test_accuracy"] == 1.0


def test_learner_is_refused_where_it_does_not_apply(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", MLP_EXERCISES)
    line = refused(capsys, "chars", "--learner", str(ws))
    assert "--learner is for the tasks xor, moons, spirals, iris, copy, reverse, not chars" in line
    assert "--engine graph" in refused(capsys, "xor", "--learner", str(ws), "--engine", "graph")
    assert "no such folder" in refused(capsys, "xor", "--learner", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="--learner is for the tasks"):
        models.train("lines", learner=ws, quiet=True)


# ---------------------------------------------------------------------------- the run folder
@pytest.mark.slow
def test_the_run_folder_records_the_learners_pieces_and_still_loads(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", GPT_EXERCISES)
    run = tmp_path / "run"
    assert main(["train", "reverse", "--steps", "5", "--learner", str(ws), "--out", str(run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["learner"]["yours"] == ["layer_norm", "transformer_block"]
    saved = load_run(run)
    record = saved.extra["learner"]
    assert record["dir"] == str(ws.resolve())
    assert record["files"] == {name: sha256_of(ws / f"{name}.py") for name in GPT_EXERCISES}
    assert saved.state.step == 5 and saved.status == "finished"
    assert main(["sample", "--run", str(run), "--n", "1"]) == 0  # the weights load into a plain GPT (twograd's pieces)
    capsys.readouterr()
    # --learner starts runs; it does not resume one
    line = refused(capsys, "--resume", str(run), "--steps", "8", "--learner", str(ws))
    assert "--learner starts a new run" in line
    # resumed without it, the run goes on on twograd's pieces, and says which steps were the learner's
    resumed = models.train(resume=run, steps=8, quiet=True)
    assert any("steps 1 to 5 of this run used your pieces (layer_norm, transformer_block)" in n for n in resumed.notes)
    assert load_run(run).extra["learner"]["until_step"] == 5


def test_the_mlp_and_gpt_refuse_a_piece_they_do_not_call() -> None:
    pair = Kernel(lambda x: (x, None), lambda d, c: (d,))
    with pytest.raises(InputError, match="no piece 'attention'"):
        MLP(MLPConfig(), kernels={"attention": pair})
    with pytest.raises(InputError, match="no piece 'linear'"):
        GPT(GPTConfig(), kernels={"linear": pair})


#: a linear layer that passed on the check's shapes but breaks on a batch of 4 rows
LINEAR_BREAKING_ON_FOUR_ROWS = """
from nn.linear import linear_backward, linear_forward as _right


def linear_forward(x, W, b):
    if len(x) == 4:
        raise IndexError("row 4 of 3")
    return _right(x, W, b)
"""


def test_a_piece_failing_during_the_run_is_one_line_at_exit_1(tmp_path: Path, capsys) -> None:
    ws = make_workspace(tmp_path / "ws", ("linear",), texts={"linear": LINEAR_BREAKING_ON_FOUR_ROWS})
    code = main(["train", "xor", "--learner", str(ws)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [
        "twograd train: error: your linear_forward failed during the run (IndexError: row 4 of 3)"
    ]


def test_pieces_passed_by_twograd_learn_check_train_xor(tmp_path: Path, monkeypatch, capsys) -> None:
    """The whole way, as a learner goes: files checked by `twograd learn check` (its sandbox writes
    progress.json), then `twograd train xor --learner` with the default workspace ./twograd-learn/."""
    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "twograd-learn"
    ws.mkdir()
    for name in MLP_EXERCISES:
        (ws / f"{name}.py").write_text(REEXPORTS[name], encoding="utf-8")
        assert main(["learn", "check", name]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["train", "xor", "--learner", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["learner"]["yours"] == ["linear", "tanh", "mse"] and printed["test_accuracy"] == 1.0
    assert printed["learner"]["files"]["linear"] == sha256_of(ws / "linear.py")


# ---------------------------------------------------------------------------- the guide
GUIDE = Path(__file__).resolve().parents[3] / "docs" / "guide" / "learn-zoo.md"
#: what may differ from run to run: wall times, and the digits of a loss trained down to rounding noise
#: (as tests/test_readme.py: below 1e-12 only "below the floor" is compared)
VARIES = [
    (re.compile(r"\d+\.\d+ s\)"), lambda m: "T s)"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?e-\d+"), lambda m: "<1e-12" if float(m.group()) < 1e-12 else m.group()),
]


def _normalized(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, repl in VARIES:
            line = pattern.sub(repl, line)
        out.append(line.rstrip())
    return out


def test_the_zoo_guide_prints_what_it_shows(tmp_path: Path) -> None:
    """docs/guide/learn-zoo.md's commands in order, in one folder, with the files the page describes
    written where it says: the learn session's state (linear passed, layer_norm with its mean path
    dropped), twograd's own solutions in own/ before each is checked, and the edit to own/mse.py."""
    from mistakes import LAYER_NORM_NO_MEAN_PATH

    env = {**os.environ, "PYTHONPATH": str(GUIDE.parents[2])}

    def twograd(*argv: str) -> list[str]:
        res = subprocess.run(
            [sys.executable, "-m", "models.cli", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return (res.stdout + res.stderr).splitlines()

    session = tmp_path / "twograd-learn"
    session.mkdir()
    (session / "linear.py").write_text(REEXPORTS["linear"], encoding="utf-8")
    (session / "layer_norm.py").write_text(LAYER_NORM_NO_MEAN_PATH, encoding="utf-8")
    assert twograd("learn", "check", "layer_norm")[0].startswith("layer_norm: FAILED")
    (tmp_path / "own").mkdir()
    sessions: list[tuple[str, list[str]]] = []  # each `$ twograd ...` line of the page, with the lines shown under it
    for block in re.findall(r"```text\n(.*?)```", GUIDE.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                sessions.append((line[2:], []))
            else:
                sessions[-1][1].append(line)
    assert len(sessions) >= 12, "the guide lost its commands"
    xor_own = 0
    for command, shown in sessions:
        argv = shlex.split(command)
        assert argv[0] == "twograd"
        if argv[1:3] == ["learn", "check"] and argv[-2:] == ["--dir", "own"]:
            (tmp_path / "own" / f"{argv[3]}.py").write_text(REEXPORTS[argv[3]], encoding="utf-8")
        if argv[1:] == ["train", "xor", "--learner", "own"]:
            xor_own += 1
            if xor_own == 2:  # "after an edit to own/mse.py"
                with open(tmp_path / "own" / "mse.py", "a", encoding="utf-8") as f:
                    f.write("# an edit\n")
        assert _normalized(twograd(*argv[1:])) == _normalized(shown), f"$ {command}"
    assert xor_own == 2
