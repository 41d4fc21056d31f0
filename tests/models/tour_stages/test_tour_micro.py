"""The tour stage of the scalar-engine micro GPT (models/tour_stages/micro.py): it passes for a model that
learns, and its bar is one a model that learns nothing fails."""

from __future__ import annotations

from pathlib import Path

import pytest

import models.tour_stages.micro as demo
import models.training.lm


@pytest.mark.slow
def test_the_stage_trains_samples_and_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    assert demo.tour_stage(tmp_path, said.append) is True
    text = "\n".join(said)
    assert "steps on the graph engine" in text and "largest loss difference" in text
    # it says what it writes (the training text and the run folder), and quotes no "issue's number"
    assert (
        said[0].startswith(f"wrote {tmp_path / 'micro_gpt' / 'stand_in_words.txt'} ")
        and str(tmp_path / "micro_gpt" / "run") in said[0]
    )
    assert "issue" not in text
    samples = [line for line in said if line.startswith(f"{demo.N_SAMPLES} samples at temperature")]
    assert len(samples) == 1 and len(samples[0].split(": ", 1)[1].split(", ")) == demo.N_SAMPLES
    assert (tmp_path / "micro_gpt" / "run" / "checkpoint.json").is_file()


@pytest.mark.slow
def test_a_model_that_does_not_learn_fails_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    frozen = replace(
        models.training.lm.PRESETS["micro"], train=replace(models.training.lm.PRESETS["micro"].train, lr=1e-9)
    )  # too small to move
    monkeypatch.setitem(models.training.lm.PRESETS, "micro", frozen)
    monkeypatch.setattr(demo, "TOUR_STEPS", 100)
    assert demo.tour_stage(tmp_path, lambda _line: None) is False
