"""Tour stage 9: a small alignment run: a reward model from preferences, best-of-n, REINFORCE+KL and DPO."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.experiments.align import RESULT_FILE, AlignConfig, prepare_align_out, run_align, save_align
from models.training.runs import release_folder

#: the tour's small run: a shorter reference, reward model and policy training (about 15 s).
TOUR_CONFIG = AlignConfig(method="all", steps=25, ref_steps=300, rm_steps=300, pair_samples=2000, eval_samples=150)


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """A small alignment run into out_dir/align: passes when the reward model orders held-out pairs
    well (>= 0.8) and REINFORCE+KL and DPO both beat the reference on the true reward."""
    folder = Path(out_dir) / "align"
    if (folder / RESULT_FILE).exists():
        (folder / RESULT_FILE).unlink()  # the tour's own folder: a new run each tour
    folder = prepare_align_out(folder)
    try:
        result = run_align(TOUR_CONFIG)
        for line in result.summary():
            echo(line)
        for what, path in save_align(result, folder).items():
            echo(f"wrote {path}" if what != "pictures" else path)
    finally:
        release_folder(folder)
    ref = result.policies["reference"]["true_reward"]
    return (
        result.reward_model_accuracy >= 0.8
        and result.policies["reinforce"]["true_reward"] > ref
        and result.policies["dpo"]["true_reward"] > ref
    )
