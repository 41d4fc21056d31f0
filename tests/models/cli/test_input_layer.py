"""One input layer for every path and number a command takes (issue 22, items 2 and 9): a number
out of its range and an unusable path are one line and exit 2, at once, and every cap is named in
the flag's --help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from run_damage import run_cli

from models.cli import build_parser

LONG = "a" * 300  # one name longer than the 255 bytes a file system takes


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["sample", "--run", "DIR", "--n", "1e20"], "at most 1,000"),
        (["sample", "--run", "DIR", "--max-tokens", "1e20"], "at most 10,000"),
        (["sample", "--run", "DIR", "--temperature", "-1"], "non-negative"),
        (["distill", "spirals", "--temperature", "1e-320"], "at least 1e-06"),
        (["sample", "--run", "DIR", "--temperature", "1e308"], "at most 100"),
        (["distill", "spirals", "--temperature", "1e308"], "at most 100"),
        (["distill", "spirals", "--alpha", "1.5"], "at most 1"),
        (["train", "xor", "--steps", "1e20"], "at most 10,000,000"),
        (["train", "xor", "--seed", str(2**64)], "at most 9,223,372,036,854,775,807"),
        (["train", "xor", "--hidden", "100000000"], "at most"),
        (["align", "--kl", "1e300"], "at most 1e+06"),
    ],
)
def test_a_number_past_its_cap_is_refused_at_once_naming_the_cap(argv, needle) -> None:
    code, _, err, tb = run_cli(argv)
    assert not tb and code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["graph", "-o", LONG + ".svg"],
        ["graph", "-o", "{file}/x.svg"],
        ["graph", "-o", "{file}/x.dot"],
        ["train", "xor", "--out", LONG],
        ["tour", "--out", LONG],
        ["distill", "spirals", "--out", LONG],
        ["align", "--out", LONG],
        ["sample", "--run", LONG],
        ["train", "--resume", LONG],
        ["train", "chars", "--data", LONG],
        ["distill", "spirals", "--teacher", LONG],
        ["train", "xor", "--out", "{file}/run"],
    ],
)
def test_a_too_long_name_or_a_path_under_a_file_exits_2_not_1(tmp_path, monkeypatch, argv) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    argv = [a.replace("{file}", "afile") for a in argv]
    code, _, err, tb = run_cli(argv)
    assert not tb and code == 2 and len(err.strip().splitlines()) == 1, (code, err)
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_os_name_error_past_the_converters_is_exit_2(tmp_path, monkeypatch) -> None:
    """Whatever the converters cannot see (a file system with shorter names) is mapped the same way."""
    import models.cli.graph as graph_cli

    def too_long(*args, **kwargs):
        raise OSError(36, "File name too long", "x" * 10)

    monkeypatch.setattr(graph_cli, "save_graph", too_long)
    code, _, err, tb = run_cli(["graph", "-o", str(tmp_path / "g.svg")])
    assert not tb and code == 2 and "File name too long" in err


def _actions():
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            yield sub.prog, action


def test_every_capped_number_names_its_cap_in_help() -> None:
    """A numeric flag whose converter has a range shows that range in its --help."""
    missing = []
    for prog, action in _actions():
        rng = getattr(action.type, "range_text", None)
        if rng and rng.split(" .. ")[-1] not in (action.help or ""):
            missing.append(f"{prog} {'/'.join(action.option_strings)}")
    assert not missing, missing


def test_every_number_flag_goes_through_a_capped_converter() -> None:
    """No flag takes a bare int or float: each number has a range (models/cli/types.py)."""
    bare = [f"{prog} {'/'.join(a.option_strings)}" for prog, a in _actions() if a.type in (int, float)]
    assert not bare, bare
    for prog, action in _actions():
        if action.type is not None and getattr(action.type, "__name__", "") in (
            "convert",
            "non_negative",
            "positive",
            "fraction",
            "seed",
        ):
            assert getattr(action.type, "range_text", None), f"{prog} {action.option_strings}: no range"
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_the_library_refuses_what_the_flags_refuse(tmp_path) -> None:
    from engine.errors import InputError
    from models.experiments.distill import distill
    from models.training.sampling import sample_run

    with pytest.raises(InputError, match="n must be a whole number in 1 .. 1,000"):
        sample_run(tmp_path, n=10**20)
    with pytest.raises(InputError, match="max_tokens"):
        sample_run(tmp_path, max_tokens=10**20)
    with pytest.raises(InputError, match="--temperature must be in"):
        distill("spirals", temperature=1e308)
    assert Path(tmp_path).is_dir()
