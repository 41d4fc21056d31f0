"""GPT tasks (models/training/lm.py), sampling (models/training/sampling.py) and `twograd sample`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from real_sigint import needs_real_sigint

from engine.errors import InputError
from models.cli import main
from models.training.runs import load_run
from models.training.sampling import sample_run
from models.training.tasks import train

#: the issue's bar for copy and reverse from the default seed, on the 500 held-out questions.
EXACT_TARGET = 0.99
NAMES = "\n".join(
    [
        "anna",
        "bob",
        "carla",
        "dave",
        "eve",
        "frank",
        "gina",
        "hugo",
        "iris",
        "jack",
        "kim",
        "lena",
        "max",
        "nina",
        "otto",
        "paul",
        "rosa",
        "sam",
        "tina",
        "uwe",
        "vera",
        "walt",
        "xena",
        "yuri",
        "zoe",
    ]
    * 4
)


def json_of(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return json.loads(out[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "reverse"
    report = train("reverse", out=folder, plots=False)
    assert report.status == "finished"
    return folder, report


@pytest.mark.slow
def test_reverse_reaches_the_target_and_answers_a_prompt(reverse_run, capsys) -> None:
    folder, report = reverse_run
    assert report.metrics["test_exact_accuracy"] >= EXACT_TARGET
    assert main(["sample", "--run", str(folder), "--prompt", "3 1 4 1 5"]) == 0
    assert capsys.readouterr().out == "5 1 4 1 3\n"
    assert main(["sample", "--run", str(folder), "--prompt", "9 9 0 1 2", "--json"]) == 0
    assert json_of(capsys)["samples"] == ["2 1 0 9 9"]


@pytest.mark.slow
def test_copy_reaches_the_target_through_the_cli(capsys) -> None:
    assert main(["train", "copy", "--json"]) == 0
    result = json_of(capsys)
    assert result["test_exact_accuracy"] >= EXACT_TARGET and result["val_loss"] < 0.05


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--prompt", "3 1 4"], "answers exactly 5 symbols"),
        (["--prompt", "3 1 x 1 5"], "'x' is not in the vocabulary"),
        (["--prompt", "3 1 4 1 5", "--temperature", "-1"], "non-negative"),
    ],
)
@pytest.mark.slow
def test_bad_prompts_are_one_line_and_exit_2(reverse_run, capsys, argv, needle) -> None:
    folder, _ = reverse_run
    try:
        code = main(["sample", "--run", str(folder), *argv])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_sampling_an_mlp_run_is_refused(tmp_path, capsys) -> None:
    train("xor", out=tmp_path / "xor", plots=False)
    assert main(["sample", "--run", str(tmp_path / "xor")]) == 2
    assert "sampling needs a GPT task" in capsys.readouterr().err


def test_sampling_a_diverged_run_whose_weights_overflow_is_one_line(tmp_path, capsys) -> None:
    import warnings

    argv = [
        "train",
        "reverse",
        "--lr",
        "1e6",
        "--optimizer",
        "sgd",
        "--clip",
        "1e300",
        "--out",
        str(tmp_path / "bad"),
        "--quiet",
    ]
    assert main(argv) == 1 and load_run(tmp_path / "bad").status == "diverged"
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow warnings must not reach the user
        assert main(["sample", "--run", str(tmp_path / "bad"), "--prompt", "1 2 3 4 5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged run" in err[0] and "non-finite logits" in err[0], err


@pytest.mark.slow
def test_lines_learns_documents_from_a_file_and_writes_new_ones(tmp_path) -> None:
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    report = train(
        "lines", model_options={"data": str(names)}, train_options={"steps": 150}, out=tmp_path / "run", plots=False
    )
    assert report.metrics["val_loss"] < np.log(27)  # better than uniform over the letters and the boundary
    assert report.metrics["val_loss"] < report.metrics["unigram_val_loss"] < np.log(27)  # and than letter frequencies
    samples = sample_run(tmp_path / "run", n=5, seed=1).samples
    assert len(samples) == 5 and all("\n" not in s for s in samples)
    with pytest.raises(InputError, match="lines needs --data FILE"):
        train("lines")


def test_chars_reports_the_unigram_floor_and_notices_a_changed_file(tmp_path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 200)
    report = train(
        "chars",
        model_options={"data": str(text), "context": 16, "d_model": 16, "n_heads": 2},
        train_options={"steps": 60, "eval_every": 30},
        out=tmp_path / "run",
        plots=False,
    )
    m = report.metrics
    assert m["unigram_val_loss"] > m["val_loss"] > 0
    assert sample_run(tmp_path / "run", prompt="the ", max_tokens=20, seed=0).samples[0].startswith("the ")
    with pytest.raises(InputError, match="prompt has 17 characters; the model reads at most 16"):
        sample_run(tmp_path / "run", prompt="t" * 17)
    text.write_text("something else entirely " * 100)
    with pytest.raises(InputError, match="not the one this run was trained on"):
        train(resume=tmp_path / "run", train_options={"steps": 80})


@pytest.mark.slow
@needs_real_sigint
def test_an_interrupted_gpt_run_resumes_bit_for_bit(tmp_path) -> None:
    settings = {"steps": 40, "eval_every": 10}
    straight = train("copy", train_options=settings, out=tmp_path / "a", plots=False)

    def stop_at_17(step: int, loss: float) -> None:
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    cut = train("copy", train_options=settings, out=tmp_path / "b", callback=stop_at_17, plots=False)
    assert cut.status == "interrupted" and load_run(tmp_path / "b").state.step == 17
    train(resume=tmp_path / "b", plots=False)
    a, b = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    assert a.state.losses == b.state.losses
    # the same evaluations at the same steps (the cut run also has one at step 17, where it stopped)
    assert [e for e in b.state.evals if e["step"] != 17] == a.state.evals
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
    assert np.array_equal(
        straight.model.flat_params, np.concatenate([b.params[n].ravel() for n in straight.model.names])
    )


def test_gpt_options_go_to_gpt_tasks_only(capsys) -> None:
    assert main(["train", "moons", "--context", "5"]) == 2
    assert "context" in capsys.readouterr().err
    assert main(["train", "reverse", "--hidden", "4"]) == 2
    assert "hidden" in capsys.readouterr().err


@pytest.mark.slow
def test_float32_trains_the_same_task(capsys) -> None:
    assert main(["train", "reverse", "--dtype", "float32", "--steps", "300", "--json"]) == 0
    result = json_of(capsys)
    assert result["model_config"]["gpt"]["dtype"] == "float32" and result["test_exact_accuracy"] >= 0.9


def test_a_long_line_is_refused_before_the_attention_is_allocated(tmp_path, capsys) -> None:
    """The attention's (B, H, T, T) arrays grow with the square of the longest line."""
    path = tmp_path / "long.txt"
    path.write_text(NAMES + "\n" + "x" * 5000 + "\n", encoding="utf-8")
    assert main(["train", "lines", "--data", str(path), "--steps", "1", "--json"]) == 2
    error = json_of(capsys)["error"]
    assert "activations, more than" in error and "context 5001, the longest line" in error


def test_a_run_samples_after_its_text_file_moved_or_changed(tmp_path, capsys) -> None:
    data = tmp_path / "names.txt"
    data.write_text(NAMES + "\n", encoding="utf-8")
    folder = tmp_path / "run"
    train("lines", model_options={"data": str(data)}, train_options={"steps": 5}, out=folder, plots=False)
    before = sample_run(folder, n=3, seed=1).samples
    data.write_text(NAMES + "\nquentin\n", encoding="utf-8")  # changed: its sha256 differs
    assert sample_run(folder, n=3, seed=1).samples == before
    data.unlink()  # moved away
    assert main(["sample", "--run", str(folder), "--n", "3", "--seed", "1", "--json"]) == 0
    assert json_of(capsys)["samples"] == before


def test_a_run_without_a_recorded_vocabulary_names_its_missing_text(tmp_path, capsys) -> None:
    from models.training.runs import load_run, save_run

    data = tmp_path / "names.txt"
    data.write_text(NAMES + "\n", encoding="utf-8")
    folder = tmp_path / "run"
    train("lines", model_options={"data": str(data)}, train_options={"steps": 2}, out=folder, plots=False)
    saved = load_run(folder)
    save_run(
        folder,
        model_kind=saved.model_kind,
        task=saved.task,
        model_config=saved.model_config,
        train_config=saved.train_config,
        params=saved.params,
        state=saved.state,
        status=saved.status,
        extra={"engine": "manual"},
    )  # as runs were saved before the vocabulary was recorded
    data.unlink()
    assert main(["sample", "--run", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--run {folder}: its training text is needed for the vocabulary" in err[0], err


def test_a_run_whose_record_lost_its_text_source_is_refused_in_one_line(tmp_path, capsys) -> None:
    """A checkpoint.json without the data's source (damaged or edited by hand) once ended in a
    TypeError traceback; the run schema (models/training/run_schema.py) now names the missing field,
    with the record's hash recomputed or not. (A run whose text file merely moved still samples from
    its recorded vocabulary: test_a_run_samples_after_its_text_file_moved_or_changed.)"""
    from models.training.runs import save_run

    data = tmp_path / "names.txt"
    data.write_text(NAMES + "\n", encoding="utf-8")
    folder = tmp_path / "run"
    train("lines", model_options={"data": str(data)}, train_options={"steps": 2}, out=folder, plots=False)
    saved = load_run(folder)
    model_config = {
        **saved.model_config,
        "data": {k: v for k, v in saved.model_config["data"].items() if k != "source"},
    }
    for extra in (saved.extra, {"engine": "manual"}):  # with, then without, the recorded vocabulary
        save_run(
            folder,
            model_kind=saved.model_kind,
            task=saved.task,
            model_config=model_config,
            train_config=saved.train_config,
            params=saved.params,
            state=saved.state,
            status=saved.status,
            extra=extra,
        )
        assert main(["sample", "--run", str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "damaged checkpoint" in err[0] and "missing fields 'source'" in err[0], err


def test_sample_text_shows_a_default_question_and_separates_chars_samples() -> None:
    from models.training.sampling import Samples

    assert Samples("reverse", "5 8 9", ["9 8 5"], prompt_given=False).text() == "5 8 9 -> 9 8 5"
    assert Samples("reverse", "5 8 9", ["9 8 5"]).text() == "9 8 5"  # the user's own prompt: the answer alone
    assert Samples("lines", "", ["ann", ""]).text() == "ann\n(empty)"
    assert (
        Samples("chars", "\n", ["\nab\nc", "\nd"]).text()
        == "--- sample 1 of 2 ---\n\nab\nc\n--- sample 2 of 2 ---\n\nd"
    )
    assert Samples("chars", "\n", ["\nab"]).text() == "\nab"


def test_a_tiny_temperature_draws_the_argmax_without_a_numpy_warning() -> None:
    """`sample --temperature 1e-320` printed numpy's "overflow encountered in divide" RuntimeWarning."""
    import warnings

    from models.training.sampling import next_token

    logits = np.array([0.5, 2.0, -1.0, 1.999])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert next_token(logits, 1e-320, None, np.random.default_rng(0)) == 1


@pytest.mark.slow
def test_a_tiny_temperature_samples_the_argmax_without_a_numpy_warning(reverse_run, capsys) -> None:
    """The same through `twograd sample`: nothing on stderr."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder, _ = reverse_run
        assert main(["sample", "--run", str(folder), "--prompt", "3 1 4 1 5", "--temperature", "1e-320"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "5 1 4 1 3\n" and captured.err == ""
