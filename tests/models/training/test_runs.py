"""Run folders (models/training/runs.py) through `models.training.tasks.train`: never lose a run, resume exactly, refuse damage."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
from real_sigint import needs_real_sigint

from engine.errors import InputError
from models.training import runs, tabular
from models.training.runs import RunExists, load_run, prepare_out
from models.training.tasks import train
from nn.checkpoint import CheckpointError, checkpoint_paths, record_digest

#: a short minibatch run of moons (batches drawn from the trainer's generator every step).
SHORT = {"steps": 60, "batch_size": 16}


def tree_bytes(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> sha256 of its bytes (and its mode)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def sigint_after(k: int):
    def callback(step: int, loss: float) -> None:
        if step == k:
            os.kill(os.getpid(), signal.SIGINT)

    return callback


@pytest.fixture
def finished_run(tmp_path) -> Path:
    folder = tmp_path / "moons"
    report = train("moons", train_options=SHORT, out=folder, plots=False)
    assert report.status == "finished"
    return folder


# ---------------------------------------------------------------------------- never lose a run
def test_a_folder_holding_a_run_is_refused_and_left_byte_for_byte(finished_run) -> None:
    before = tree_bytes(finished_run)
    with pytest.raises(RunExists) as info:
        train("moons", train_options={"steps": 5}, out=finished_run)
    message = str(info.value)
    assert (
        f"--resume {finished_run}" in message
        and "--overwrite" in message
        and "finished run of moons at step 60" in message
    )
    assert tree_bytes(finished_run) == before


def test_a_damaged_run_is_still_a_run_nobody_overwrites(finished_run) -> None:
    (finished_run / "checkpoint.json").write_text("{ damaged")
    before = tree_bytes(finished_run)
    with pytest.raises(RunExists, match="could not be read"):
        prepare_out(finished_run)
    assert tree_bytes(finished_run) == before


def test_overwrite_replaces_the_run_when_asked(finished_run) -> None:
    report = train("moons", train_options={"steps": 5}, out=finished_run, overwrite=True, plots=False)
    assert report.status == "finished" and load_run(finished_run).state.step == 5


def test_an_empty_folder_name_is_an_error() -> None:
    with pytest.raises(InputError, match="--out needs a folder name"):
        prepare_out("")


def test_out_that_is_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "f").write_text("mine")
    with pytest.raises(InputError, match="is a file, not a folder"):
        train("xor", out=tmp_path / "f")
    assert (tmp_path / "f").read_text() == "mine"


@needs_real_sigint
def test_interrupted_runs_without_out_each_get_a_new_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folders = []
    for _ in range(2):
        report = train("moons", train_options=SHORT, callback=sigint_after(10), plots=False)
        assert report.status == "interrupted"
        folders.append(report.folder)
        assert f"continue with: twograd train --resume {report.folder}" in report.notes[-1]
    assert folders[0] != folders[1]
    assert all(f.parent == runs.DEFAULT_ROOT and (tmp_path / f).is_dir() for f in folders)
    assert [load_run(f).state.step for f in folders] == [10, 10]


def test_a_finished_run_without_out_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = train("xor")
    assert report.folder is None and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- one writer per folder
@pytest.fixture
def other_process():
    """A live process that is not this one, whose id can stand in a claim file."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def claimed_by(folder: Path, pid: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.CLAIM).write_text(f"{pid}\n")
    return folder / runs.CLAIM


def test_a_folder_another_process_is_writing_into_is_refused(tmp_path, other_process) -> None:
    """Two commands started into one new folder both find it empty; the second must not write over the first later."""
    claim = claimed_by(tmp_path / "busy", other_process)
    for start in (
        lambda: train("moons", train_options=SHORT, out=tmp_path / "busy", plots=False),
        lambda: prepare_out(tmp_path / "busy", overwrite=True),
    ):
        with pytest.raises(
            RunExists, match=f"another twograd process \\(pid {other_process}\\) is writing a run there"
        ):
            start()
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [runs.CLAIM]  # nothing written, the claim kept
    assert claim.read_text() == f"{other_process}\n"


def test_a_resume_while_another_process_writes_the_run_is_refused(finished_run, other_process) -> None:
    before = tree_bytes(finished_run)
    claimed_by(finished_run, other_process)
    with pytest.raises(RunExists, match="is writing a run there"):
        train(resume=finished_run, train_options={"steps": 80})
    (finished_run / runs.CLAIM).unlink()
    assert tree_bytes(finished_run) == before


@needs_real_sigint
def test_a_claim_left_by_a_dead_process_is_taken_over_and_every_claim_is_released(tmp_path) -> None:
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claimed_by(tmp_path / "stale", int(gone.stdout))
    assert train("moons", train_options=SHORT, out=tmp_path / "stale", plots=False).status == "finished"
    assert not (tmp_path / "stale" / runs.CLAIM).exists()
    # released however the call ends: a refusal, a resume, an interrupted run
    with pytest.raises(RunExists):
        prepare_out(tmp_path / "stale")
    assert train(resume=tmp_path / "stale", train_options={"steps": 70}, plots=False).status == "finished"
    cut = train("moons", train_options=SHORT, out=tmp_path / "cut", plots=False, callback=sigint_after(5))
    assert cut.status == "interrupted"
    assert not any(p.name.startswith((runs.CLAIM, ".claim-")) for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------------------- resume
@pytest.mark.parametrize("k", [1, 23, 59])
@needs_real_sigint
def test_interrupted_minibatch_run_resumes_bit_for_bit(tmp_path, k) -> None:
    straight = train("moons", train_options=SHORT, out=tmp_path / "straight", plots=False)
    stopped = train("moons", train_options=SHORT, out=tmp_path / "stopped", callback=sigint_after(k), plots=False)
    assert stopped.status == "interrupted" and load_run(tmp_path / "stopped").status == "interrupted"
    assert load_run(tmp_path / "stopped").state.step == k
    resumed = train(resume=tmp_path / "stopped", plots=False)
    assert resumed.status == "finished" and resumed.outcome.resumed_from == k
    a, b = load_run(tmp_path / "straight"), load_run(tmp_path / "stopped")
    assert a.state.losses == b.state.losses and a.state.rng_state == b.state.rng_state
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
    assert np.array_equal(straight.model.flat_params, resumed.model.flat_params)


def test_resume_extends_the_target_and_keeps_the_settings(finished_run) -> None:
    report = train(resume=finished_run, train_options={"steps": 80}, plots=False)
    assert report.outcome.resumed_from == 60 and load_run(finished_run).state.step == 80
    with pytest.raises(InputError, match="the run's lr is 0.01, not 0.5; a resumed run keeps its settings"):
        train(resume=finished_run, train_options={"lr": 0.5})
    with pytest.raises(InputError, match=r"the run's hidden is \[16, 16\], not \[4\]"):
        train(resume=finished_run, model_options={"hidden": (4,)})
    with pytest.raises(InputError, match="the run is of 'moons', not 'iris'"):
        train("iris", resume=finished_run)


@pytest.mark.parametrize("steps", [None, 60, 30])
def test_a_resume_with_nothing_to_train_is_refused_and_the_folder_kept(finished_run, steps) -> None:
    """`--resume DIR --steps N` with N at or below the run's step rewrote the folder and said "(1200 steps, 0.00 s)"."""
    before = tree_bytes(finished_run)
    with pytest.raises(
        InputError,
        match=r"the run is already at step 60 and .*; give --steps above 60 to train further "
        r"\(the folder is left as it is\)$",
    ):
        train(resume=finished_run, train_options={} if steps is None else {"steps": steps}, plots=False)
    assert tree_bytes(finished_run) == before


def test_resume_needs_a_run_folder(tmp_path) -> None:
    with pytest.raises(InputError, match="no such run folder"):
        train(resume=tmp_path / "nothing")
    with pytest.raises(InputError, match="no run there"):
        train(resume=tmp_path)


# ---------------------------------------------------------------------------- damage
def _edit_meta(folder: Path, edit, rehash: bool = True) -> None:
    """Change the checkpoint's JSON metadata (the npz and its hash stay as they were); with `rehash`
    the record's own hash is recomputed, as someone set on the edit would, so the schema must see it."""
    path = folder / "checkpoint.json"
    record = json.loads(path.read_text())
    edit(record["meta"])
    if rehash:
        record["record_sha256"] = record_digest(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda m: m.update(format="something-else"), "not a twograd run"),
        (lambda m: m.update(step=7), "evals\\[0\\].step 60 is out of order \\(the run is at step 7\\)"),
        (lambda m: m["optimizer"].update(step=7), "optimizer's step 7 differs"),
        (lambda m: m.update(task="mnist"), "unknown task 'mnist'"),
        (lambda m: m["rng_state"].update(bit_generator="MT19937"), "bit_generator must be one of 'PCG64'"),
        (
            lambda m: m["train_config"].update(lr=-1),
            "train_config.lr must be a finite number in \\(0, 1e\\+06\\], got -1",
        ),
        (lambda m: m["model_config"].update(sizes=[2, 16, 2]), "arrays it records differ from what its settings need"),
    ],
)
def test_damaged_metadata_is_refused_naming_the_problem(finished_run, edit, needle) -> None:
    _edit_meta(finished_run, edit)
    before = tree_bytes(finished_run)
    with pytest.raises((CheckpointError, InputError), match=needle):
        train(resume=finished_run)
    assert tree_bytes(finished_run) == before


def test_a_tampered_network_size_is_refused_before_anything_is_built(finished_run, monkeypatch) -> None:
    _edit_meta(finished_run, lambda m: m["model_config"].update(sizes=[2, 100_000, 100_000, 2]))

    def refuse(*args, **kwargs):
        raise AssertionError("the model was built from unchecked metadata")

    monkeypatch.setattr(tabular.MLP, "__init__", refuse)
    with pytest.raises(CheckpointError, match="the recorded model does not fit.*parameters"):
        train(resume=finished_run)


def test_a_replaced_npz_is_caught_by_its_hash(finished_run, tmp_path) -> None:
    other = train("moons", train_options={"steps": 3, "batch_size": 16}, out=tmp_path / "other", plots=False)
    checkpoint_paths(finished_run / "checkpoint")[0].write_bytes(
        checkpoint_paths(other.folder / "checkpoint")[0].read_bytes()
    )
    with pytest.raises(CheckpointError, match="sha256"):
        train(resume=finished_run)


# ---------------------------------------------------------------------------- files
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_run_files_follow_the_umask(tmp_path, umask, mode) -> None:
    old = os.umask(umask)
    try:
        train("xor", out=tmp_path / "run", plots=False)
    finally:
        os.umask(old)
    for path in checkpoint_paths(tmp_path / "run" / "checkpoint"):
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_json_is_strict_and_says_what_was_trained(finished_run) -> None:
    text = (finished_run / "checkpoint.json").read_text()
    meta = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))["meta"]
    assert meta["model"] == "mlp" and meta["task"] == "moons" and meta["status"] == "finished"
    assert meta["train_config"]["batch_size"] == 16 and meta["extra"] == {"engine": "manual"}


@needs_real_sigint
def test_an_interrupted_run_draws_its_pictures_too(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    report = train("moons", train_options=SHORT, out=tmp_path / "run", callback=sigint_after(10))
    assert report.status == "interrupted"
    assert {"loss_curve", "decision_boundary"} <= set(report.files)
    assert all(Path(p).is_file() for p in report.files.values())
