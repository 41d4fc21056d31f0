"""A reader never sees a mismatched checkpoint pair while a writer replaces it (issue 22, item 7).

`twograd sample` during a resume that checkpoints every 2 steps failed once in 25 with "sha256 ...
does not match ... the pair is mismatched": the npz and the JSON were replaced one after the other.
Now the npz is named by its hash and the JSON, replaced last, names it (nn/checkpoint.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.training.runs import load_run
from models.training.sampling import sample_run
from models.training.tasks import train

ROOT = Path(__file__).resolve().parents[3]
#: the writer's steps (a checkpoint every 2: about 150 replacements of the pair)
WRITER_STEPS = 300
#: bounds on the reader: it stops when the writer exits, or after this many reads or seconds.
MAX_READS = 5000
MAX_SECONDS = 120.0


@pytest.mark.slow  # a writer process trains 300 steps (2-9 s); the deterministic test below is in the fast subset
def test_sample_during_a_resume_that_checkpoints_every_2_steps_never_sees_a_mismatched_pair(tmp_path) -> None:
    folder = tmp_path / "run"
    small = {"d_model": 8, "n_heads": 1, "n_layers": 1}
    train(
        "reverse",
        model_options=small,
        train_options={"steps": 2, "checkpoint_every": 2, "eval_every": 0},
        out=folder,
        plots=False,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from models.training.tasks import train\n"
            "print('started', flush=True)\n"
            f"train(resume=sys.argv[1], train_options={{'steps': {WRITER_STEPS}}}, plots=False)\n",
            str(folder),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "started"  # the event the reader waits for
        steps_seen: set[int] = set()
        reads = 0
        deadline = time.monotonic() + MAX_SECONDS
        while writer.poll() is None and reads < MAX_READS and time.monotonic() < deadline:
            saved = load_run(folder, "--run")  # a mismatched pair raises CheckpointError here
            assert len(saved.state.losses) == saved.state.step
            steps_seen.add(saved.state.step)
            reads += 1
            if reads % 10 == 0:
                sample_run(folder, n=1)  # the command's own path, now and then (it costs a forward pass)
        _, err = writer.communicate(timeout=MAX_SECONDS)
        assert writer.returncode == 0, err
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert len(steps_seen) >= 3, f"the reads did not overlap the writes (steps seen: {sorted(steps_seen)})"
    assert load_run(folder).state.step == WRITER_STEPS
    assert len(list(folder.glob("checkpoint*.npz"))) == 1  # every replaced npz was removed


def test_a_cleaner_running_between_a_writes_close_and_its_rename_does_not_remove_the_live_temp(
    tmp_path, monkeypatch
) -> None:
    """The race above, made deterministic: a reader's load_checkpoint removes dead writers' temporary
    files (engine.atomic.remove_stale_temps); atomic_write used to release its lock when it closed
    the file, before hashing and renaming it, so a cleaner in that window removed a live writer's
    file and the save failed with FileNotFoundError. The cleaner here runs exactly in that window."""
    from engine import atomic

    target = tmp_path / "checkpoint.pending.npz"
    real_hash = atomic.sha256_file
    removed: list = []

    def hash_after_a_cleaner(path):  # called between the close and the rename
        removed.extend(atomic.remove_stale_temps(target))
        return real_hash(path)

    monkeypatch.setattr(atomic, "sha256_file", hash_after_a_cleaner)
    atomic.atomic_write(target, b"the new checkpoint")
    assert removed == [] and target.read_bytes() == b"the new checkpoint"
