"""`twograd train lines --preset micro`: the one-file scalar GPT's configuration, on both engines.

The graph engine (`--engine graph`) trains through the GPT's loops form on engine.Values; the
manual engine through the numpy pair. Same seed, same batches: the same losses and gradients.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from models.cli import main
from models.training.lm import PRESETS, LMObjective
from models.training.tasks import get_task, train
from models.training.trainer import TrainConfig, make_optimizer
from models.zoo.gpt import GPT, GPTConfig

#: the two engines do the same float64 math in a different order: rounding only, over a few steps.
ENGINE_RTOL = 1e-10
ENGINE_ATOL = 1e-12
NAMES = ["anna", "bob", "carla", "dmitri", "eve", "felix", "gus", "hanna", "ivo", "jules", "kai", "lena", "maximiliana"]


@pytest.fixture()
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def test_the_preset_is_the_one_file_gpt() -> None:
    recipe = PRESETS["micro"]
    g, t = recipe.gpt, recipe.train
    assert (g.n_layers, g.d_model, g.n_heads, g.context) == (1, 16, 4, 16)
    assert (g.norm, g.activation, g.bias, g.positions, g.tied) == ("rms", "relu", False, "learned", False)
    # the one-file GPT's norms: x / rms(x) with no gain, after the embedding and before each
    # sub-layer, and none before the head
    assert (g.norm_gain, g.embed_norm, g.final_norm, g.eps) == (False, True, False, 1e-5)
    assert not any("gamma" in n for n in GPT(g).names) and GPT(g).names[:2] == ["wte", "wpe"]
    assert (t.optimizer, t.lr, t.betas, t.decay, t.min_lr, t.batch_size) == (
        "adam",
        0.01,
        (0.85, 0.99),
        "linear",
        0.0,
        1,
    )
    assert TrainConfig().betas == (0.9, 0.999)  # Adam's own defaults elsewhere


def test_betas_reach_the_optimizer_and_bad_ones_are_refused() -> None:
    params, grads = np.zeros(3), np.zeros(3)
    assert make_optimizer(TrainConfig(betas=(0.85, 0.99)).validate(), params, grads).betas == (0.85, 0.99)
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "betas": [0.5, 0.6]}).betas == (
        0.5,
        0.6,
    )  # as read from JSON
    with pytest.raises(InputError, match=r"betas\[1\] must be in \[0, 1\)"):
        TrainConfig(betas=(0.9, 1.0)).validate()


def test_manual_and_graph_engines_agree_on_the_first_steps(names_file: Path) -> None:
    reports = {
        engine: train(
            "lines",
            model_options={"data": str(names_file)},
            train_options={"steps": 4},
            engine=engine,
            preset="micro",
            plots=False,
        )
        for engine in ("manual", "graph")
    }
    manual, graph = (np.array(reports[e].outcome.state.losses) for e in ("manual", "graph"))
    assert len(manual) == 4
    np.testing.assert_allclose(graph, manual, rtol=ENGINE_RTOL, atol=ENGINE_ATOL)
    np.testing.assert_allclose(
        reports["graph"].model.flat_params, reports["manual"].model.flat_params, rtol=ENGINE_RTOL, atol=ENGINE_ATOL
    )
    assert reports["graph"].model_config["gpt"]["context"] == 16


def test_one_step_gradients_agree_between_engines(names_file: Path) -> None:
    task = get_task("lines").with_preset("micro")
    config = task.model_config({"data": str(names_file)}, seed=0)
    data = task.load_data(config["data"], 0)
    grads = {}
    for engine in ("manual", "graph"):
        model = GPT(GPTConfig(**config["gpt"]))
        objective = LMObjective(model, data, engine, 1)
        batch = objective.batches(np.random.default_rng(3))
        model.flat_grads[:] = 0.0
        objective.loss_and_grad(batch)
        grads[engine] = model.flat_grads.copy()
    assert np.abs(grads["manual"]).max() > 0
    np.testing.assert_allclose(grads["graph"], grads["manual"], rtol=ENGINE_RTOL, atol=ENGINE_ATOL)


def test_the_command_line_takes_the_preset(names_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(
            [
                "train",
                "lines",
                "--data",
                str(names_file),
                "--preset",
                "micro",
                "--engine",
                "graph",
                "--steps",
                "2",
                "--quiet",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["train_config"]["betas"] == [0.85, 0.99] and report["train_config"]["batch_size"] == 1
    assert report["model_config"]["gpt"]["d_model"] == 16 and report["engine"] == "graph"
    assert main(["train", "xor", "--preset", "micro", "--json"]) == 2  # a preset of the lines task only
    assert "--preset is for the lines task" in capsys.readouterr().out


def test_the_graph_engine_warns_before_a_long_run_and_refuses_a_huge_step(names_file: Path) -> None:
    said: list[str] = []
    train(
        "lines",
        preset="micro",
        engine="graph",
        model_options={"data": str(names_file)},
        train_options={"steps": 1},
        echo=said.append,
        plots=False,
    )
    assert not any(s.startswith("warning:") for s in said)  # one step: nothing to warn about
    task = get_task("lines").with_preset("micro")
    config = task.model_config({"data": str(names_file)}, 0)
    (warning,) = task.check_size(config, replace(task.recipe.train, steps=100_000), "graph")
    assert warning.startswith("warning: a graph-engine step does up to ~") and "for 100000 steps" in warning
    assert task.check_size(config, task.recipe.train, "manual") == []
    with pytest.raises(InputError, match="multiply-adds, more than"):
        train(
            "lines", engine="graph", model_options={"data": str(names_file), "d_model": 128}, train_options={"steps": 1}
        )
