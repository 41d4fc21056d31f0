"""models.zoo.reward and models.experiments.align: the toy world, the policy gradient through the GPT, a small run, the command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from models.data.sequences import LineDocuments
from models.experiments.align import (
    AlignConfig,
    add_policy_grad,
    encode,
    hacking_report,
    prepare_align_out,
    run_align,
    sample_names,
    save_align,
    token_logprobs_with_cache,
)
from models.training.runs import RunExists, release_folder
from models.zoo.gpt import GPT, GPTConfig
from models.zoo.reward import make_names, preference_pairs, true_reward, true_rewards

#: the GPT's manual gradient against central differences in float64 (as the gpt piece's check).
NUMERIC = 1e-6


def test_true_reward_is_the_stated_rule() -> None:
    assert [true_reward(s) for s in ("mara", "marak", "abcdeo", "abcdefa", "")] == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_names_are_seeded_and_pairs_prefer_the_truly_better() -> None:
    assert make_names(50, seed=3) == make_names(50, seed=3) != make_names(50, seed=4)
    pairs = preference_pairs(make_names(400, seed=0), np.random.default_rng(0))
    assert len(pairs) > 50
    assert (true_rewards(pairs.chosen) > true_rewards(pairs.rejected)).all()


def test_a_loss_of_token_logprobs_reaches_the_gpt_parameters_exactly() -> None:
    """L = sum_bt w_bt logp_bt through token_logprobs' and the GPT's manual backwards, against finite differences."""
    data = LineDocuments("\n".join(make_names(40, seed=0)), seed=0)
    model = GPT(GPTConfig(vocab_size=data.vocab.size, context=data.context, d_model=8, n_heads=2, n_layers=1, seed=1))
    batch = encode(data, ["mara", "tok", "a"], data.context)
    w = np.random.default_rng(2).standard_normal(batch.idx.shape) * batch.mask
    model.zero_grad()
    _, gpt_cache, tlp_cache = token_logprobs_with_cache(model, batch)
    add_policy_grad(model, w, gpt_cache, tlp_cache)
    flat, grads = model.flat_params, model.flat_grads.copy()

    def loss() -> float:
        logp, _, _ = token_logprobs_with_cache(model, batch)
        return float((w * logp).sum())

    h = 1e-6
    for i in np.random.default_rng(3).choice(flat.size, size=25, replace=False):
        keep = flat[i]
        flat[i] = keep + h
        up = loss()
        flat[i] = keep - h
        down = loss()
        flat[i] = keep
        assert grads[i] == pytest.approx((up - down) / (2 * h), rel=NUMERIC, abs=NUMERIC)


def test_samples_stop_at_the_boundary_and_fit_the_context() -> None:
    data = LineDocuments("\n".join(make_names(40, seed=0)), seed=0)
    model = GPT(GPTConfig(vocab_size=data.vocab.size, context=data.context, d_model=8, n_heads=2, n_layers=1))
    batch = sample_names(model, data, 20, np.random.default_rng(0))
    assert len(batch.texts) == 20 and all(len(t) <= data.context for t in batch.texts)
    assert all(set(t) <= set(data.vocab.tokens[1:]) for t in batch.texts)


def test_hacking_report_sees_a_widening_gap() -> None:
    curve = [
        {"true_reward": 0.5 - 0.01 * k, "learned_reward": 0.5 + 0.02 * k, "distinct_per_100": 90 - k} for k in range(20)
    ]
    report = hacking_report(curve)
    assert report["gap_widened"] and report["true_fell"] and report["distinct_end"] < report["distinct_start"]


SMALL = AlignConfig(method="all", steps=3, ref_steps=20, rm_steps=20, pair_samples=200, eval_samples=20, batch_size=8)


@pytest.mark.slow
def test_a_small_run_reports_every_policy_and_saves_once(tmp_path) -> None:
    result = run_align(SMALL)
    report = result.to_json()
    assert set(report["policies"]) == {"reference", "bestofn", "reinforce", "dpo"}
    for scores in report["policies"].values():
        assert set(scores) == {"true_reward", "learned_reward", "kl", "distinct_per_100"}
    assert report["policies"]["reference"]["kl"] == 0.0 and report["true_reward_max"] == 1.0
    assert 0.0 <= report["reward_model_accuracy"] <= 1.0
    folder = prepare_align_out(tmp_path / "run")
    files = save_align(result, folder, pictures=False)
    assert json.loads((folder / "align.json").read_text())["policies"] == json.loads(json.dumps(report["policies"]))
    assert set(files) == {"report"}
    release_folder(folder)  # the command's end: its manifest lists align.json
    with pytest.raises(RunExists, match="holds the output of twograd align \\(align.json\\).*--overwrite"):
        prepare_align_out(folder)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="align: unknown method"):
        AlignConfig(method="ppo").validate()
    with pytest.raises(ValueError, match="align: --kl"):
        AlignConfig(kl=-1.0).validate()


def test_the_command_refuses_a_used_folder_before_any_work(tmp_path) -> None:
    (tmp_path / "align.json").write_text("{}")
    out = subprocess.run(
        [sys.executable, "-m", "models.cli", "align", "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    error = json.loads(out.stdout)["error"]
    assert "did not write (align.json)" in error and "--overwrite" in error  # the one --out rule (models.training.runs)


@pytest.mark.slow
def test_quiet_drops_the_messages_not_the_results(capsys) -> None:
    from models.cli import main

    assert main(["align", "--method", "bestofn", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best-of-16" in out and "reference" in out  # the table
    assert "reference policy: GPT" not in out  # the message on the way, which --quiet drops
