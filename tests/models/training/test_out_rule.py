"""The one --out rule of train, distill, align and tour (issue 22, items 12 and 13): a folder that holds
a run, another command's output or the user's files is refused, --overwrite is offered, and an
overwrite removes what twograd wrote there before, and only that. The tour owns its folder: it
replaces its own files run after run (no stale .dot beside a new .svg) and stops only at files it
did not write. A lines/chars run resumes after its text moved, given the file with the same sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_damage import run_cli

from engine.errors import InputError
from models.training import runs
from models.training.runs import CLAIM, MANIFEST, RunExists, prepare_out, release_folder
from models.training.tasks import train

TINY = {"steps": 2}


def files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST, CLAIM)
    }


# ---------------------------------------------------------------------------- train
def test_train_out_does_not_overwrite_the_users_own_files(tmp_path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "loss.png").write_text("my own picture")
    code, _, err, tb = run_cli(["train", "xor", "--steps", "2", "--out", str(folder), "--quiet"])
    assert not tb and code == 2 and "did not write (loss.png)" in err and "--overwrite" in err, err
    assert (folder / "loss.png").read_text() == "my own picture" and files(folder) == {"loss.png"}


def test_overwrite_with_another_task_removes_what_the_old_run_wrote_and_only_that(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "run"
    train("moons", train_options=TINY, out=folder)
    old = files(folder)
    assert "decision_boundary.png" in old
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunExists, match="already holds a finished run of moons"):
        train("reverse", train_options=TINY, out=folder)
    assert files(folder) == old | {"notes.txt"}
    train("reverse", train_options=TINY, out=folder, overwrite=True)
    now = files(folder)
    assert "decision_boundary.png" not in now and "notes.txt" in now and (folder / "notes.txt").read_text() == "mine"
    assert {"loss.png", "checkpoint.json"} <= now and len([f for f in now if f.endswith(".npz")]) == 1
    listed = json.loads((folder / MANIFEST).read_text())
    assert listed["command"] == "train" and "notes.txt" not in listed["files"] and "loss.png" in listed["files"]


def test_a_resume_lists_its_new_pictures_too(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    folder = tmp_path / "run"
    train("xor", train_options=TINY, out=folder, plots=False)
    assert "loss.png" not in json.loads((folder / MANIFEST).read_text())["files"]
    train(resume=folder, train_options={"steps": 3})
    assert "loss.png" in json.loads((folder / MANIFEST).read_text())["files"]


# ---------------------------------------------------------------------------- distill, align: the same rule
@pytest.mark.parametrize("command", ["distill", "align"])
def test_distill_and_align_refuse_a_run_folder_and_offer_overwrite(tmp_path, command) -> None:
    folder = tmp_path / "run"
    train("xor", train_options=TINY, out=folder, plots=False)
    argv = ["distill", "spirals"] if command == "distill" else ["align"]
    code, _, err, tb = run_cli([*argv, "--out", str(folder), "--quiet"])
    assert not tb and code == 2 and "already holds a finished run of xor" in err and "--overwrite" in err, err


@pytest.mark.parametrize("first,second", [("distill", "align"), ("align", "distill"), ("train", "align")])
def test_one_commands_output_is_refused_by_another_and_replaced_on_overwrite(tmp_path, first, second) -> None:
    folder = prepare_out(tmp_path / "out", command=first)
    (folder / f"{first}.json").write_text("{}")
    (folder / "picture.png").write_text("png")
    release_folder(folder)
    if first != "train":
        with pytest.raises(RunExists, match=f"holds the output of twograd {first}.*--overwrite"):
            prepare_out(folder, command=second)
    (folder / "mine.txt").write_text("mine")
    with pytest.raises(RunExists, match="did not write \\(mine.txt\\)"):
        prepare_out(folder, command=second)
    prepare_out(folder, command=second, overwrite=True)
    assert files(folder) == {"mine.txt"}  # the first command's files gone, the user's kept
    release_folder(folder)


def test_a_forged_manifest_cannot_reach_outside_the_folder(tmp_path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / MANIFEST).write_text(
        json.dumps({"command": "train", "files": ["../precious.txt", "/etc/passwd", "a/../../x"]})
    )
    prepare_out(folder, overwrite=True)
    release_folder(folder)
    assert outside.read_text() == "keep"


# ---------------------------------------------------------------------------- the tour owns its folder
def _fake_stages(monkeypatch, suffix: str) -> None:
    """The tour with one quick stage that writes stage/graph.<suffix> (a .dot when dot is missing, an .svg when not)."""
    import types as pytypes

    from models.tour_stages import runner

    module = pytypes.ModuleType("fake_stage")

    def tour_stage(out_dir: Path, echo) -> bool:
        (out_dir / "stage").mkdir(exist_ok=True)
        (out_dir / "stage" / f"graph.{suffix}").write_text(suffix)
        echo(f"wrote graph.{suffix}")
        return True

    module.tour_stage = tour_stage
    monkeypatch.setitem(__import__("sys").modules, "fake_stage", module)
    monkeypatch.setattr(runner, "STAGES", (("a fake stage", "fake_stage"),))


def test_the_tour_replaces_its_own_files_run_after_run_without_stale_dot_files(tmp_path, monkeypatch) -> None:
    from models.tour_stages.runner import run_tour

    out = tmp_path / "twograd-out"
    (out / "runs" / "moons-1").mkdir(parents=True)  # an interrupted run kept there: not the tour's, never in its way
    (out / "runs" / "moons-1" / "checkpoint.json").write_text("{}")
    _fake_stages(monkeypatch, "dot")
    assert run_tour(out, echo=lambda _m: None).passed
    _fake_stages(monkeypatch, "svg")
    assert run_tour(out, echo=lambda _m: None).passed  # again into the same folder: no --overwrite needed
    assert files(out) == {"stage/graph.svg", "runs/moons-1/checkpoint.json"}


def test_the_tour_refuses_files_it_did_not_write_unless_overwrite(tmp_path, monkeypatch) -> None:
    from models.tour_stages.runner import run_tour

    out = tmp_path / "pictures"
    out.mkdir()
    (out / "holiday.jpg").write_text("mine")
    _fake_stages(monkeypatch, "svg")
    code, _, err, tb = run_cli(["tour", "--out", str(out)])
    assert not tb and code == 2 and "holiday.jpg" in err and "--overwrite" in err, err
    assert run_tour(out, echo=lambda _m: None, overwrite=True).passed
    assert files(out) == {"holiday.jpg", "stage/graph.svg"} and (out / "holiday.jpg").read_text() == "mine"


# ---------------------------------------------------------------------------- a moved data file (item 13)
def test_a_lines_run_resumes_after_its_data_moved_given_the_same_text(tmp_path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["anna", "bert", "carl", "dora", "emil", "fred", "gina", "hans"] * 10) + "\n")
    folder = tmp_path / "run"
    train(
        "lines",
        model_options={"data": str(names), "d_model": 8, "n_heads": 1, "n_layers": 1},
        train_options=TINY,
        out=folder,
        plots=False,
    )
    moved = tmp_path / "elsewhere.txt"
    names.rename(moved)
    code, _, err, tb = run_cli(["train", "--resume", str(folder), "--steps", "3", "--quiet"])
    assert not tb and code == 2 and "is missing (moved?)" in err and "--data FILE" in err, err
    report = train(resume=folder, model_options={"data": str(moved)}, train_options={"steps": 3}, plots=False)
    assert report.outcome.state.step == 3 and any("now read from" in n for n in report.notes)
    assert runs.load_run(folder).model_config["data"]["source"] == str(moved.resolve())
    moved.write_text(moved.read_text() + "zed\n")  # another text: refused, not trained on
    with pytest.raises(InputError, match="not the text this run was trained on"):
        train(resume=folder, model_options={"data": str(moved)}, train_options={"steps": 4}, plots=False)


def test_a_tour_of_some_stages_keeps_the_earlier_tours_other_files(tmp_path, monkeypatch) -> None:
    """`tour --stage N` adds to the tour's folder (a full tour replaces it): the other stages' pictures stay."""
    import sys
    import types as pytypes

    from models.tour_stages import runner
    from models.tour_stages.runner import run_tour

    def stage(name: str, suffix: str) -> pytypes.ModuleType:
        module = pytypes.ModuleType(name)

        def tour_stage(out_dir: Path, echo) -> bool:
            short = name.rsplit(".", 1)[1]
            (out_dir / short).mkdir(exist_ok=True)
            (out_dir / short / f"graph.{suffix}").write_text(suffix)
            return True

        module.tour_stage = tour_stage
        return module

    out = tmp_path / "twograd-out"
    for suffix in ("dot", "svg"):
        monkeypatch.setitem(sys.modules, "fake_stages.a", stage("fake_stages.a", suffix))
        monkeypatch.setitem(sys.modules, "fake_stages.b", stage("fake_stages.b", suffix))
        monkeypatch.setattr(runner, "STAGES", (("stage a", "fake_stages.a"), ("stage b", "fake_stages.b")))
        if suffix == "dot":
            assert run_tour(out, echo=lambda _m: None).passed
    assert run_tour(out, echo=lambda _m: None, stages=["b"]).passed  # only b, now drawing .svg
    assert files(out) == {"a/graph.dot", "b/graph.dot", "b/graph.svg"}
    assert run_tour(out, echo=lambda _m: None).passed  # a whole tour replaces every file of the tour's
    assert files(out) == {"a/graph.svg", "b/graph.svg"}
