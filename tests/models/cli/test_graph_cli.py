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


def test_graph_explain_json_has_the_path_table(capsys) -> None:
    """`graph --explain x1 --json` gave the count and the total but not the paths the text lists."""
    assert main(["graph", "--expr", "x*x + x", "--at", "x=3", "--explain", "x", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["explain"]
    assert result["leaf"] == "x" and result["paths"] == 3 and result["total"] == 7.0 and result["complete"]
    assert result["listed"] == [
        {"contribution": 3.0, "nodes": ["x", "x*x", "x*x + x"], "partials": [3.0, 1.0]},
        {"contribution": 3.0, "nodes": ["x", "x*x", "x*x + x"], "partials": [3.0, 1.0]},
        {"contribution": 1.0, "nodes": ["x", "x*x + x"], "partials": [1.0]},
    ]
    assert main(["graph", "--explain", "x1", "--json"]) == 0
    (path,) = json.loads(capsys.readouterr().out)["explain"]["listed"]
    assert path["nodes"][0] == "x1" and path["nodes"][-1] == "o" and len(path["partials"]) == len(path["nodes"]) - 1
