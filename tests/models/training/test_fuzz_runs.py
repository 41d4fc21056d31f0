"""The fuzz test of issue 22: random edits of checkpoint.json, random damage to the npz, and random
command lines built from each command's own argparse spec. It must find no traceback and no silent
acceptance of a contradiction.

Every case is drawn from a seeded generator (FUZZ_SEED), so a failure names its case number and
repeats exactly; nothing depends on the machine's speed. The fast subset runs FAST_CASES of each
kind; `-m slow` runs FULL_CASES.

What counts as a contradiction (must be refused, exit 2):
* any edit of the JSON whose own hash is not recomputed (the edit is damage);
* with the hash recomputed: a field's JSON type changed (other than to or from null), a required
  key deleted, or an unknown key added: the schema (models/training/run_schema.py) names each;
* any change of the npz's bytes whose hashes are not updated.
Other edits (a number changed within its type) may be accepted or refused, never a traceback.

A command line may be accepted (exit 0), refused (2) or fail at run time (1); never a traceback.
The work behind a command line is kept short: training is cut to at most 2 steps, and the
commands that would run for minutes (tour, align, distill, check of every piece) stop at their
library call with the validated arguments (`Accepted`), after the whole input layer has run.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from run_damage import copy_run, npz_bytes, read_npz, record_of, replace_npz, run_cli, write_record

from models.cli import build_parser
from models.training.tasks import train

#: the seed of every fuzz case: change it to explore, keep it to repeat.
FUZZ_SEED = 22
FAST_CASES = {"json": 40, "npz": 15, "argv": 60}
FULL_CASES = {"json": 600, "npz": 200, "argv": 800}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzzruns")
    small = {"d_model": 8, "n_heads": 1, "n_layers": 1}
    train(
        "reverse", model_options=small, train_options={"steps": 2, "eval_every": 1}, out=root / "reverse", plots=False
    )
    train("chars", model_options=small, train_options={"steps": 2}, out=root / "chars", plots=False)
    train("moons", train_options={"steps": 2, "optimizer": "momentum"}, out=root / "moons", plots=False)
    return {p.name: p for p in root.iterdir()}


def _check_commands(folder: Path, name: str) -> list[list[str]]:
    """The commands a damaged folder is tried with: resume to the run's own step (no training) and sample."""
    step = record_of_safe(folder)
    commands = [["train", "--resume", str(folder), "--quiet", "--steps", str(step)]]
    if name != "moons":
        commands.append(["sample", "--run", str(folder), "--max-tokens", "3"])
    return commands


def record_of_safe(folder: Path) -> int:
    try:
        step = record_of(folder)["meta"]["step"]
        return step if isinstance(step, int) and 1 <= step <= 100 else 2
    except Exception:
        return 2


# ---------------------------------------------------------------------------- JSON edits
def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:8]):
            out += _paths(v, prefix + (i,))
    return out


def _kind(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    return type(x).__name__


def _random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2**31,
            2**64,
            -(2**70),
            10**30,
            0.5,
            -1e-300,
            1e308,
            float("nan"),
            float("inf"),
            "",
            "x",
            "/dev/zero",
            "../../etc/passwd",
            "a" * 5000,
            [],
            [1, 2],
            [None],
            {},
            {"k": 1},
            [[[[]]]],
        ]
    )


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


#: dict keys whose deletion is allowed (optional fields) and dicts that take free keys (metric rows)
OPTIONAL = {("meta", "extra", "engine"), ("meta", "extra", "vocab")}


def _free_keys(path: tuple) -> bool:
    return len(path) >= 3 and path[:2] == ("meta", "evals")


def _mutate(record: dict, rng: random.Random) -> tuple[str, bool]:
    """Change `record` in place; return (what was done, whether it is a contradiction the schema must refuse)."""
    path = rng.choice(
        [p for p in _paths(record) if p and p != ("record_sha256",)]
    )  # that one is recomputed or not, below
    parent, key = _get(record, path[:-1]), path[-1]
    old = parent[key]
    op = rng.choice(["value", "value", "delete", "add", "nudge"])
    if op == "delete" and isinstance(parent, dict):
        del parent[key]
        return f"delete {path}", path not in OPTIONAL and not _free_keys(path[:-1])
    if op == "add":
        target = old if isinstance(old, dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            where = path if isinstance(old, dict) else path[:-1]
            target["Fuzz-Key!"] = _random_value(rng)  # never a name the schema knows, never a metric name
            return f"add a key at {where}", True
    if op == "nudge" and _kind(old) == "number" and not isinstance(old, bool):
        parent[key] = rng.choice([old + 1, old * 10, -old, old / 3 if old else 0.25])
        return f"nudge {path} from {old!r}", False
    new = _random_value(rng)
    parent[key] = new
    contradiction = _kind(old) != _kind(new) and "null" not in (_kind(old), _kind(new)) and not _free_keys(path[:-1])
    if path[-1] == "vocab" or (len(path) > 2 and path[-2] == "vocab"):
        contradiction = contradiction or _kind(old) != _kind(new)
    return f"set {path} from {str(old)[:40]!r} to {str(new)[:40]!r}", contradiction


def _json_cases(runs: dict[str, Path], tmp_path: Path, n: int) -> Counter:
    """Run n JSON edits; return how often each exit status came (so a test can see the fuzz was not vacuous)."""
    seen: Counter = Counter()
    rng = random.Random(FUZZ_SEED)
    for case in range(n):
        name = rng.choice(sorted(runs))
        folder = copy_run(runs[name], tmp_path / f"json{case}")
        record = record_of(folder)
        original = copy.deepcopy(record)
        what, contradiction = _mutate(record, rng)
        rehash = rng.random() < 0.7
        if record == original:
            continue
        write_record(folder, record, rehash=rehash)
        must_refuse = contradiction or not rehash
        for argv in _check_commands(folder, name):
            code, _, err, tb = run_cli(argv)
            label = f"json case {case} ({name}: {what}, rehash {rehash}) with {argv[0]}"
            assert not tb, f"{label}: traceback\n{tb}"
            assert code in (0, 2), f"{label}: exit {code}: {err}"
            assert len(err.strip().splitlines()) <= 1 or code == 0, f"{label}: more than one line: {err}"
            if must_refuse:
                assert code == 2, f"{label}: a contradiction was accepted"
            seen[code] += 1
    return seen


# ---------------------------------------------------------------------------- npz damage
def _npz_cases(runs: dict[str, Path], tmp_path: Path, n: int) -> Counter:
    seen: Counter = Counter()
    rng = random.Random(FUZZ_SEED + 1)
    for case in range(n):
        name = rng.choice(sorted(runs))
        folder = copy_run(runs[name], tmp_path / f"npz{case}")
        npz = folder / record_of(folder)["npz"]
        data = bytearray(npz.read_bytes())
        kind = rng.choice(["flip", "truncate", "append", "member"])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            data = data[: rng.randrange(len(data))]
        elif kind == "append":
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
        else:  # one member replaced by an array of another shape or dtype
            arrays = read_npz(folder)
            member = rng.choice(sorted(arrays))
            arrays[member] = rng.choice(
                [
                    np.zeros(3),
                    np.zeros((2, 2), dtype=np.int64),
                    arrays[member].astype(np.float16),
                    np.full(arrays[member].shape, np.nan),
                    arrays[member][..., :0],
                ]
            )
            data = bytearray(npz_bytes(arrays))
        rehash = rng.random() < 0.6
        if rehash:
            replace_npz(folder, bytes(data))
        else:
            npz.write_bytes(bytes(data))
        changed = bytes(data) != (runs[name] / record_of(runs[name])["npz"]).read_bytes()
        for argv in _check_commands(folder, name):
            code, _, err, tb = run_cli(argv)
            label = f"npz case {case} ({name}: {kind}, rehash {rehash}) with {argv[0]}"
            assert not tb, f"{label}: traceback\n{tb}"
            assert code in (0, 2), f"{label}: exit {code}: {err}"
            if changed and (not rehash or kind == "member"):
                assert code == 2, f"{label}: damage was accepted"
            seen[code] += 1
    return seen


# ---------------------------------------------------------------------------- argv from the parsers
class Accepted(Exception):
    """A long-running command reached its library call with arguments the input layer accepted."""


def _spec() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)


def _values(rng: random.Random, action: argparse.Action, places: dict[str, str]) -> list[str]:
    pool = [
        "0",
        "1",
        "2",
        "-1",
        "3",
        "1e20",
        "1e308",
        "1e-320",
        "nan",
        "inf",
        "-0",
        "0.5",
        "abc",
        "",
        "10**3",
        str(2**70),
        "4,4",
        "none",
        "x=0.5,w=-1",
        "x=nan",
    ]
    paths = list(places.values())
    if action.choices:
        choices = [str(c) for c in action.choices]
        return [rng.choice(choices + ["no-such-choice"])]
    if action.nargs == 0:
        return []
    dest = action.dest
    if dest in ("out", "output", "run", "resume", "teacher", "data"):
        return [rng.choice(paths)]
    if dest in ("prompt", "expr", "explain", "names"):
        return [rng.choice(["3 1 4 1 5", "hello", "", "exp + x", "tanh(x*w + b)", "x1", "\n", "9 9", "x", "sqrt(-1)"])]
    return [rng.choice(pool)]


def _argv(rng: random.Random, name: str, parser: argparse.ArgumentParser, places: dict[str, str]) -> list[str]:
    argv = [name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:  # a positional
            if action.nargs in ("?", "*") and rng.random() < 0.3:
                continue
            argv += _values(rng, action, places)
        elif rng.random() < 0.35:
            argv += [rng.choice(action.option_strings), *_values(rng, action, places)]
    if rng.random() < 0.1:
        argv.append(rng.choice(["--no-such-flag", "--json", "--", "-x"]))
    return argv


def _argv_cases(runs: dict[str, Path], tmp_path: Path, n: int, monkeypatch) -> Counter:
    import models.cli.align as align_cli
    import models.cli.check as check_cli
    import models.cli.distill as distill_cli
    import models.cli.tour as tour_cli
    import models.cli.train as train_cli
    from models.training import tasks

    def accepted(*args: Any, **kwargs: Any) -> Any:
        raise Accepted(kwargs or args)

    real_train = tasks.train

    def short_train(*args: Any, **kwargs: Any) -> Any:
        options = dict(kwargs.get("train_options") or {})
        options["steps"] = min(options.get("steps") or 2, 2)
        for key in ("eval_every", "checkpoint_every"):
            if options.get(key):
                options[key] = 1
        kwargs["train_options"] = options
        return real_train(*args, **{**kwargs, "plots": False})

    monkeypatch.setattr(train_cli, "train", short_train)
    for module, attribute in ((align_cli, "align"), (distill_cli, "distill"), (tour_cli, "run_tour")):
        monkeypatch.setattr(module, attribute, accepted)
    real_check = check_cli.check

    class CheckProxy:  # only the command's own reference: a module that imported run_checks by name keeps the real one
        run_checks = staticmethod(accepted)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_check, name)

    monkeypatch.setattr(check_cli, "check", CheckProxy())
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "afile").write_text("a file of the user's")
    monkeypatch.chdir(tmp_path)
    spec = _spec()
    rng = random.Random(FUZZ_SEED + 2)
    seen: Counter = Counter()
    for case in range(n):
        places = {
            "new": str(tmp_path / f"new{case}"),
            "file": str(tmp_path / "afile"),
            "under": str(tmp_path / "afile" / "x"),
            "long": "b" * 300,
            "zero": "/dev/zero",
            "run": str(copy_run(runs[rng.choice(sorted(runs))], tmp_path / f"r{case}")),
            "missing": str(tmp_path / "missing" / "deep"),
            "svg": str(tmp_path / f"g{case}.svg"),
        }
        name = rng.choice(sorted(spec))
        argv = _argv(rng, name, spec[name], places)
        code, _, err, tb = run_cli(argv)
        if tb and "Accepted" in tb.strip().splitlines()[-1]:
            seen["accepted"] += 1
            continue  # the input layer accepted it; the work itself is tested elsewhere
        assert not tb, f"argv case {case}: twograd {' '.join(argv)[:300]}: traceback\n{tb}"
        assert code in (0, 1, 2, 130), f"argv case {case}: twograd {' '.join(argv)[:300]}: exit {code}"
        if code in (1, 2):
            assert len(err.strip().splitlines()) == 1, f"argv case {case}: twograd {' '.join(argv)[:300]}: {err}"
        assert (tmp_path / "afile").read_text() == "a file of the user's", (
            f"argv case {case} wrote over the user's file"
        )
        seen[code] += 1
    return seen


# ---------------------------------------------------------------------------- the tests
def test_fuzzed_checkpoint_json_edits_give_no_traceback_and_no_accepted_contradiction(runs, tmp_path) -> None:
    seen = _json_cases(runs, tmp_path, FAST_CASES["json"])
    assert seen[0] and seen[2], seen  # some edits were harmless and accepted, some refused: the fuzz reached both


def test_fuzzed_npz_damage_gives_no_traceback_and_is_refused(runs, tmp_path) -> None:
    seen = _npz_cases(runs, tmp_path, FAST_CASES["npz"])
    assert seen[2], seen


def test_fuzzed_command_lines_from_every_parser_give_no_traceback(runs, tmp_path, monkeypatch) -> None:
    seen = _argv_cases(runs, tmp_path, FAST_CASES["argv"], monkeypatch)
    assert seen[0] and seen[2] and seen["accepted"], seen  # commands ran, were refused, and reached their work


@pytest.mark.slow
def test_fuzz_full_count(runs, tmp_path, monkeypatch) -> None:
    seen = _json_cases(runs, tmp_path / "json", FULL_CASES["json"])
    seen += _npz_cases(runs, tmp_path / "npz", FULL_CASES["npz"])
    seen += _argv_cases(runs, tmp_path / "argv", FULL_CASES["argv"], monkeypatch)
    print(f"fuzz outcomes: {dict(seen)}")
    assert seen[0] and seen[2] and seen["accepted"], seen


def test_the_fuzz_is_deterministic() -> None:
    """The same seed draws the same cases (the fuzz names a case by its number)."""
    a, b = random.Random(FUZZ_SEED), random.Random(FUZZ_SEED)
    record = {"meta": {"x": 1, "y": [1, 2], "z": {"w": "s"}}}
    assert _mutate(copy.deepcopy(record), a) == _mutate(copy.deepcopy(record), b)
    assert json.dumps(record)
