"""`twograd graph`: what a user types at --expr/--explain comes back as one usage error or a full answer."""

from __future__ import annotations

import json

import pytest

from models.cli import EXIT_USAGE, main


@pytest.mark.parametrize("as_json", [False, True])
def test_graph_a_function_name_as_a_variable_is_one_usage_error(as_json: bool, capsys) -> None:
    argv = ["graph", "--expr", "exp + x", "--at", "x=0.5", "--explain", "x"] + (["--json"] if as_json else [])
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    if as_json:
        expected = "--expr: 'exp' is a function, not a variable: call it as exp(...), or give the variable another name"
        assert json.loads(captured.out) == {"error": expected}
    else:
        assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "'exp' is a function, not a variable" in line
