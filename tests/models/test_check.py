"""`twograd check`: one entry per (piece, parameter), exit status 1 on failure, failures located."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine import InputError
from models import check
from models.cli import main
from nn.registry import _REGISTRY


def test_json_has_one_entry_per_piece_parameter(capsys) -> None:
    assert main(["check", "linear", "tanh", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and "error" not in report
    assert (report["n_pieces"], report["n_failed"], report["n_checks"]) == (2, 0, 4)
    entries = report["entries"]
    keys = [(e["piece"], e["parameter"]) for e in entries]
    assert sorted(keys) == sorted({("linear", "x"), ("linear", "W"), ("linear", "b"), ("tanh", "x")})
    for e in entries:
        assert e["passed"] is True
        assert e["forward"]["passed"] is True
        for pair in ("graph_vs_manual", "manual_vs_numeric", "graph_vs_numeric"):
            assert e[pair]["passed"] is True and e[pair]["max_abs"] >= 0.0
        assert len(e["shapes"]) == len(check.pieces([e["piece"]])[0].cases)


def test_table_and_summary_line(capsys) -> None:
    assert main(["check", "relu"]) == 0
    out = capsys.readouterr().out
    assert "graph-manual" in out and "manual-numeric" in out and "worst at" in out
    assert "1 passed, 0 failed" in out


@pytest.fixture
def broken_tanh():
    """Swap a tanh whose backward is 0.01 off at its last element into the registry, then restore it."""
    good = _REGISTRY["tanh"]

    def backward(dout, cache):
        (dx,) = good.backward(dout, cache)
        dx = np.array(dx, copy=True)
        dx.reshape(-1)[-1] += 0.01
        return (dx,)

    _REGISTRY["tanh"] = dataclasses.replace(good, backward=backward)
    yield
    _REGISTRY["tanh"] = good


def test_a_wrong_backward_fails_with_exit_1_and_names_the_index(capsys, broken_tanh) -> None:
    assert main(["check", "tanh"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "0 passed, 1 failed" in out
    # The failing cases' full reports follow: all three values at the worst index.
    assert "graph there" in out and "manual there" in out and "numeric there" in out
    (entry,) = check.summarize(check.run_checks(["tanh"]))
    assert not entry["passed"] and not entry["graph_vs_manual"]["passed"]
    cases = [c.name for c in check.pieces(["tanh"])[0].cases]
    shape = entry["shapes"][cases.index(entry["graph_vs_manual"]["worst_case"])]
    # The broken element is the last in row-major order of whichever case is worst.
    assert entry["graph_vs_manual"]["worst_index"] == list(np.unravel_index(int(np.prod(shape)) - 1, shape))


def test_unknown_piece_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no_such_piece.*linear") as err:
        check.pieces(["no_such_piece"])
    assert isinstance(err.value, InputError)  # so `twograd check` reports it as a usage error, exit 2


def test_json_stays_strict_when_a_gradient_is_nan(capsys) -> None:
    """A NaN gradient fails the check, and --json still prints valid (strict) JSON."""
    good = _REGISTRY["tanh"]

    def nan_backward(dout, cache):
        (dx,) = good.backward(dout, cache)
        return (np.full_like(dx, np.nan),)

    _REGISTRY["tanh"] = dataclasses.replace(good, backward=nan_backward)
    try:
        assert main(["check", "tanh", "--json"]) == 1
    finally:
        _REGISTRY["tanh"] = good
    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    entries = report["entries"]
    assert entries[0]["passed"] is False and entries[0]["graph_vs_manual"]["max_abs"] is None
    assert report["passed"] is False and report["error"].startswith("1 of 1 (piece, parameter) checks failed: tanh x")


def test_a_misspelt_piece_gets_a_suggestion() -> None:
    with pytest.raises(KeyError, match=r"unknown piece 'softmx' \(did you mean 'softmax'\?\)"):
        check.pieces(["softmx"])
    with pytest.raises(KeyError, match=r"unknown pieces 'DOT' \(did you mean 'dot'\?\), 'zzz';"):
        check.pieces(["DOT", "zzz"])
