"""Tests of engine.gradcheck: numeric gradients, graph gradients of loops-form code, the
comparison report and its table, and that `import engine` stays numpy-free."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import engine
from engine import (
    DEFAULT_EPS,
    EXACT,
    NUMERIC,
    GradientReport,
    Tolerance,
    Value,
    assert_gradients_close,
    compare_gradients,
    graph_gradients,
    numerical_gradient,
    numerical_gradient_arrays,
    to_values,
)

#: central differences (eps=1e-6) of smooth O(1) functions vs their closed form.
FD_ATOL = 1e-8
FD_RTOL_DTYPE = 1e-6  # float32 inputs are exact in float64 after the cast; eps=1e-6 differences are good to ~1e-9
#: graph gradients vs a closed form computed with the same float64 operations in another order.
CLOSED_FORM_RTOL = 1e-13
#: absolute floor for closed-form entries at or near 0, where CLOSED_FORM_RTOL alone means nothing.
CLOSED_FORM_ATOL = 1e-15
#: x^3 with eps = 1e-2: the central difference is 3x^2 + eps^2 exactly in real arithmetic; rounding
#: in (f(x+eps) - f(x-eps)) / (2 eps) is ~1e-16 * 8 / 1e-2 ~ 1e-13. 1e-10 is far below the eps^2 = 1e-4
#: the test looks for, so the wrong eps cannot pass.
EPS_PROBE_ATOL = 1e-10
#: a few float64 operations on O(1) numbers (e.g. -4.0 + 0.04, 1e-3 + 0.1 * 5): a handful of ulps.
ARITHMETIC_RTOL = 1e-14
#: a nudge d added to entries up to 4 (or 1000) is stored to ulp(4) = 8.9e-16 (ulp(1000) = 1.1e-13),
#: so (w + d) - w recovers d = 1e-9 (1e-4) to ~4.4e-7 (~5.7e-10) relative.
NUDGE_RTOL = 1e-6
#: the 0.04 error injected into -4.0 is recovered by subtraction to ~1e-14 relative; 1e-9 is ample.
INJECTED_ERROR_RTOL = 1e-9
#: the numeric set is W + 1e-9: its value at the worst index is -4.0 to within that nudge.
NUDGE_ATOL = 1e-8
#: tolerances of a sample Tolerance (test data for Tolerance.allowed, not a check of this file).
SAMPLE_ATOL = 1e-3
SAMPLE_RTOL = 0.1
#: a tolerance loose enough to pass the 1e-5 difference NUMERIC fails in the custom-sources test.
LOOSE_ATOL = 1e-4
#: pytest.approx adds abs=1e-12 when given only rel; the comparisons passing this are purely relative.
NO_ATOL = 0.0
#: central differences of O(1) closed forms: the absolute FD_ATOL alone bounds them.
NO_RTOL = 0.0


# ------------------------------------------------------------------ numerical_gradient
def test_numerical_gradient_of_a_polynomial() -> None:
    def f(x: float, y: float) -> float:
        return x * x * y + 3 * y

    g = numerical_gradient(f, [1.5, -2.0])
    assert g == pytest.approx([2 * 1.5 * -2.0, 1.5**2 + 3], abs=FD_ATOL)
    assert all(type(v) is float for v in g)


def test_numerical_gradient_uses_the_given_eps() -> None:
    """For x^3 the central difference is exactly 3x^2 + eps^2: the eps^2 term shows which eps ran."""
    eps = 1e-2
    (g,) = numerical_gradient(lambda x: x**3, [2.0], eps=eps)
    assert g == pytest.approx(3 * 4.0 + eps**2, abs=EPS_PROBE_ATOL)
    assert DEFAULT_EPS == 1e-6


def test_numerical_gradient_accepts_value_results() -> None:
    """f may return a Value (loops-form code run on floats inside Values): float() is taken."""
    g = numerical_gradient(lambda x: Value(x) * Value(x), [3.0])
    assert g == pytest.approx([6.0], abs=FD_ATOL)


# ------------------------------------------------------------------ numerical_gradient_arrays
def _loss(arrays: dict[str, np.ndarray]) -> float:
    """sum(tanh(W @ x) * r), with closed-form gradients below."""
    return float(np.sum(np.tanh(arrays["W"] @ arrays["x"]) * arrays["r"]))


def _closed_form(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    W, x, r = arrays["W"], arrays["x"], arrays["r"]
    dz = r * (1 - np.tanh(W @ x) ** 2)  # (n_out,)
    return {"W": np.outer(dz, x), "x": W.T @ dz, "r": np.tanh(W @ x)}


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(3, 2)), "x": rng.normal(size=2), "r": rng.normal(size=3)}


def test_numerical_gradient_arrays_matches_closed_form() -> None:
    arrays = _arrays()
    numeric = numerical_gradient_arrays(_loss, arrays)
    expected = _closed_form(arrays)
    assert set(numeric) == {"W", "x", "r"}
    for name in expected:
        assert numeric[name].shape == arrays[name].shape and numeric[name].dtype == np.float64
        np.testing.assert_allclose(numeric[name], expected[name], atol=FD_ATOL, rtol=NO_RTOL)


def test_numerical_gradient_arrays_leaves_the_callers_arrays_alone() -> None:
    arrays = _arrays()
    before = {k: v.copy() for k, v in arrays.items()}
    seen_by_f: list[bool] = []

    def spy(a: dict[str, np.ndarray]) -> float:
        # While f runs, the caller's arrays must not carry the nudge either.
        seen_by_f.append(all(np.array_equal(arrays[k], before[k]) for k in arrays))
        return _loss(a)

    numerical_gradient_arrays(spy, arrays)
    assert all(seen_by_f) and len(seen_by_f) == 2 * (6 + 2 + 3)
    for k in arrays:
        assert np.array_equal(arrays[k], before[k])


def test_numerical_gradient_arrays_only_named_inputs() -> None:
    arrays = _arrays()
    calls = []

    def counting(a: dict[str, np.ndarray]) -> float:
        calls.append(1)
        return _loss(a)

    numeric = numerical_gradient_arrays(counting, arrays, names=["x"])
    assert set(numeric) == {"x"}
    assert len(calls) == 2 * arrays["x"].size
    np.testing.assert_allclose(numeric["x"], _closed_form(arrays)["x"], atol=FD_ATOL, rtol=NO_RTOL)


def test_numerical_gradient_arrays_non_contiguous_and_0d() -> None:
    arrays = _arrays()
    arrays["W"] = np.asfortranarray(arrays["W"])  # the caller's memory order must not matter
    arrays["s"] = np.array(0.7)  # a 0-d input

    def f(a: dict[str, np.ndarray]) -> float:
        return _loss(a) * float(a["s"]) ** 2

    numeric = numerical_gradient_arrays(f, arrays)
    scale = 0.7**2
    expected = _closed_form(arrays)
    np.testing.assert_allclose(numeric["W"], expected["W"] * scale, atol=FD_ATOL, rtol=NO_RTOL)
    assert numeric["s"].shape == ()
    assert float(numeric["s"]) == pytest.approx(_loss(arrays) * 2 * 0.7, abs=FD_ATOL)


# ------------------------------------------------------------------ to_values and graph_gradients
def test_to_values_shapes_and_labels() -> None:
    nested = to_values(np.arange(6.0).reshape(2, 3), "W")
    assert len(nested) == 2 and len(nested[0]) == 3
    assert nested[1][2].data == 5.0 and nested[1][2].label == "W[1,2]"
    assert all(v.op == "" for row in nested for v in row)
    scalar = to_values(np.array(2.5), "s")
    assert isinstance(scalar, Value) and scalar.data == 2.5 and scalar.label == "s"
    assert to_values(1.5).data == 1.5
    ints = to_values(np.arange(4).reshape(2, 1, 2), "n")  # an integer array: float leaves
    assert type(ints[1][0][1].data) is float and ints[1][0][1].data == 3.0 and ints[1][0][1].label == "n[1,0,1]"
    assert to_values(np.zeros((2, 0)), "e") == [[], []]
    unnamed = to_values(np.ones((2, 2)))
    assert unnamed[1][1].label == "" and unnamed[0][0] is not unnamed[1][1]
    again = to_values(np.arange(6.0).reshape(2, 3), "W")  # labels are cached, leaves are new
    assert again[1][2].label == "W[1,2]" and again[1][2] is not nested[1][2]


def _loss_loops(inp: dict[str, Any]) -> Value:
    """The loops form of `_loss`: sum_i tanh(sum_j W[i][j] x[j]) * r[i]."""
    W, x, r = inp["W"], inp["x"], inp["r"]
    total = 0.0
    for i in range(len(W)):
        z = sum(W[i][j] * x[j] for j in range(len(x)))
        total = engine.tanh(z) * r[i] + total
    return total


def test_graph_gradients_match_closed_form_and_numeric() -> None:
    arrays = _arrays()
    value, grads = graph_gradients(_loss_loops, arrays)
    assert value == pytest.approx(_loss(arrays), rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
    expected = _closed_form(arrays)
    for name in arrays:
        assert grads[name].shape == arrays[name].shape and grads[name].dtype == np.float64
        np.testing.assert_allclose(grads[name], expected[name], rtol=CLOSED_FORM_RTOL, atol=CLOSED_FORM_ATOL)
    assert_gradients_close({"graph": grads, "numeric": numerical_gradient_arrays(_loss, arrays)})


def test_graph_gradients_treats_unnamed_inputs_as_constants() -> None:
    arrays = _arrays()
    kinds = {}

    def f(inp: dict[str, Any]) -> Value:
        kinds.update({k: type(v[0]).__name__ for k, v in inp.items()})
        return _loss_loops(inp)

    _, grads = graph_gradients(f, arrays, names=["W"])
    assert set(grads) == {"W"}
    assert kinds == {"W": "list", "x": "float", "r": "float"}
    np.testing.assert_allclose(grads["W"], _closed_form(arrays)["W"], rtol=CLOSED_FORM_RTOL, atol=CLOSED_FORM_ATOL)


def test_graph_gradients_requires_a_value_result() -> None:
    with pytest.raises(TypeError, match="scalar Value.*float"):
        graph_gradients(lambda inp: 1.0, {"x": np.ones(2)})


# ------------------------------------------------------------------ compare_gradients and the report
def _sets(manual_W: np.ndarray | None = None, numeric_W: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    W = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0]])
    return {
        "graph": {"W": W, "b": [0.1, 0.2]},
        "manual": {"W": W.copy() if manual_W is None else manual_W, "b": [0.1, 0.2]},
        "numeric": {"W": W + 1e-9 if numeric_W is None else numeric_W, "b": [0.1 + 1e-9, 0.2]},
    }


def test_tolerance_allowed() -> None:
    tol = Tolerance(atol=SAMPLE_ATOL, rtol=SAMPLE_RTOL, why="test")
    assert tol.allowed(2.0, -5.0) == pytest.approx(SAMPLE_ATOL + SAMPLE_RTOL * 5.0, rel=ARITHMETIC_RTOL, abs=NO_ATOL)
    assert EXACT.rtol < NUMERIC.rtol and EXACT.why and NUMERIC.why


def test_compare_default_pairs_and_passing_report() -> None:
    report = compare_gradients(_sets(), title="toy")
    assert isinstance(report, GradientReport) and report.passed and report.failures == []
    pairs = [(r.input, r.left, r.right) for r in report.rows]
    assert pairs == [
        ("W", "graph", "manual"),
        ("W", "graph", "numeric"),
        ("W", "manual", "numeric"),
        ("b", "graph", "manual"),
        ("b", "graph", "numeric"),
        ("b", "manual", "numeric"),
    ]
    assert [r.tolerance for r in report.rows[:3]] == [EXACT, NUMERIC, NUMERIC]
    row = report.rows[1]
    assert row.shape == (2, 3) and row.max_abs == pytest.approx(1e-9, rel=NUDGE_RTOL, abs=NO_ATOL)
    assert report.rows[4].shape == (2,)
    assert report.to_dict()["passed"] is True and len(report.to_dict()["rows"]) == 6


def test_compare_reports_max_abs_max_rel_worst_index_and_values() -> None:
    bad = _sets()["graph"]["W"].copy()
    bad[1, 2] += 0.04  # -4.0 -> -3.96: abs 0.04, rel 0.01
    bad[0, 0] += 0.002  # 1.0 -> 1.002: smaller abs, similar rel
    report = compare_gradients(_sets(manual_W=bad))
    row = report.rows[0]
    assert (row.input, row.left, row.right) == ("W", "graph", "manual")
    assert not row.passed and not report.passed
    assert row.max_abs == pytest.approx(0.04, rel=INJECTED_ERROR_RTOL, abs=NO_ATOL)
    assert row.max_rel == pytest.approx(0.04 / 4.0, rel=INJECTED_ERROR_RTOL, abs=NO_ATOL)
    assert row.worst_index == (1, 2)
    assert row.values["graph"] == -4.0 and row.values["manual"] == pytest.approx(
        -3.96, rel=ARITHMETIC_RTOL, abs=NO_ATOL
    )
    assert row.values["numeric"] == pytest.approx(-4.0, abs=NUDGE_ATOL)
    assert report.failures == [r for r in report.rows if not r.passed]
    assert {(r.left, r.right) for r in report.failures} == {("graph", "manual"), ("manual", "numeric")}


def test_worst_index_is_where_the_tolerance_is_exceeded_most() -> None:
    """A large gradient with a small relative error is not the worst: its allowance is larger."""
    left = {"g": [1000.0, 1e-3]}
    right = {"g": [1000.0 + 1e-4, 1e-3 + 1e-5]}  # rel 1e-7 (passes) vs rel 1e-2 (fails)
    row = compare_gradients({"graph": left, "numeric": right}).rows[0]
    assert row.worst_index == (1,) and not row.passed
    assert row.max_abs == pytest.approx(1e-4, rel=NUDGE_RTOL, abs=NO_ATOL)  # max_abs still comes from index 0


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_non_finite_gradient_fails(bad_value: float) -> None:
    W = _sets()["graph"]["W"].copy()
    W[0, 1] = bad_value
    report = compare_gradients(_sets(numeric_W=W))
    row = report.rows[1]  # W, graph vs numeric
    assert not row.passed and row.worst_index == (0, 1)
    assert math.isinf(row.max_abs)
    both = compare_gradients({"graph": {"x": [math.nan]}, "manual": {"x": [math.nan]}})
    assert not both.passed  # NaN == NaN is still a failure


def test_shape_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"'W'.*graph.*\(2, 3\).*numeric.*\(5,\)"):
        compare_gradients({"graph": {"W": np.zeros((2, 3))}, "numeric": {"W": np.zeros(5)}})


def test_same_size_different_shape_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare_gradients({"graph": {"W": np.arange(6.0).reshape(2, 3)}, "manual": {"W": np.arange(6.0).reshape(3, 2)}})


def test_empty_gradients_compare_as_passing() -> None:
    report = compare_gradients({"graph": {"e": np.zeros((0,))}, "numeric": {"e": np.zeros((0,))}})
    assert report.passed


def test_compare_argument_errors() -> None:
    with pytest.raises(ValueError, match="at least two"):
        compare_gradients({"graph": {"x": [1.0]}})
    with pytest.raises(ValueError, match="different inputs"):
        compare_gradients({"graph": {"x": [1.0]}, "numeric": {"y": [1.0]}})


def test_compare_custom_sources_pairs_and_mixed_containers() -> None:
    sets = {"engine": {"x": 2.0, "m": [[1.0, 2.0]]}, "torch": {"x": np.array(2.0), "m": np.array([[1.0, 2.0 + 1e-5]])}}
    report = compare_gradients(sets)  # unknown names: each later source against the first, NUMERIC
    assert [(r.left, r.right, r.tolerance) for r in report.rows] == [("engine", "torch", NUMERIC)] * 2
    assert report.rows[0].shape == () and report.rows[0].passed
    assert report.rows[1].shape == (1, 2) and not report.rows[1].passed and report.rows[1].worst_index == (0, 1)
    loose = Tolerance(atol=LOOSE_ATOL, rtol=NO_RTOL, why="loose")
    assert compare_gradients(sets, pairs=[("engine", "torch", loose)]).passed


def test_report_table_is_readable() -> None:
    bad = _sets()["graph"]["W"].copy()
    bad[1, 2] += 0.04
    text = str(compare_gradients(_sets(manual_W=bad), title="linear layer"))
    lines = text.splitlines()
    assert lines[0] == "linear layer"
    for column in [
        "input",
        "shape",
        "pair",
        "max abs",
        "max rel",
        "worst at",
        "graph there",
        "manual there",
        "numeric there",
        "ok",
    ]:
        assert column in lines[1]
    assert set(lines[2].replace(" ", "")) == {"-"}
    body = lines[3:-1]
    assert len(body) == 6
    first = body[0].split()
    assert first[:5] == ["W", "2x3", "graph", "vs", "manual"] and first[-1] == "FAIL"
    assert "[1, 2]" in body[0] and "4.00e-02" in body[0] and "-3.96" in body[0]
    assert body[3].split()[1] == "2" and body[3].split()[-1] == "ok"
    assert lines[-1] == "2 of 6 comparisons FAILED"
    # columns line up: every row is padded to the header's column starts
    assert body[0].index("graph vs") == lines[1].index("pair")
    ok_text = str(compare_gradients(_sets()))
    assert ok_text.splitlines()[-1] == "all 6 comparisons passed" and "FAIL" not in ok_text


def test_assert_gradients_close_passes_and_returns_the_report() -> None:
    report = assert_gradients_close(_sets())
    assert isinstance(report, GradientReport) and report.passed


def test_assert_gradients_close_raises_with_the_table() -> None:
    bad = _sets()["graph"]["W"].copy()
    bad[0, 2] = 3.5
    sets = _sets(manual_W=bad)
    with pytest.raises(AssertionError) as info:
        assert_gradients_close(sets, title="toy layer")
    message = str(info.value)
    assert "toy layer" in message and "'W'" in message and "[0, 2]" in message
    assert str(compare_gradients(sets, title="toy layer")) in message


# ------------------------------------------------------------------ numpy-free engine
def test_import_engine_does_not_import_numpy() -> None:
    code = "import engine, sys; assert 'numpy' not in sys.modules, 'engine imported numpy'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_engine_works_on_plain_lists_without_numpy() -> None:
    """The comparison path used without numpy: nested lists and numbers only."""
    code = (
        "import engine, sys\n"
        "g = engine.numerical_gradient(lambda a, b: a * b, [2.0, 3.0])\n"
        "r = engine.compare_gradients({'graph': {'ab': [3.0, 2.0]}, 'numeric': {'ab': g}})\n"
        "assert r.passed, str(r)\n"
        "assert 'numpy' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_numerical_gradient_arrays_works_in_float64_whatever_the_input_dtype() -> None:
    """An eps nudge written into an int or float32 array would be rounded away."""
    for x in (np.array([1, 2, 3]), np.array([1.1, 2.2, 3.3], dtype=np.float32)):
        numeric = numerical_gradient_arrays(lambda d: float((d["x"] ** 2).sum()), {"x": x})
        np.testing.assert_allclose(numeric["x"], 2 * x.astype(np.float64), rtol=FD_RTOL_DTYPE)
        assert numeric["x"].dtype == np.float64


def test_relative_error_is_not_reported_below_atol() -> None:
    report = compare_gradients({"graph": {"x": np.array([1.3e-17, 1.0])}, "manual": {"x": np.array([0.0, 1.0])}})
    assert report.rows[0].max_rel == 0.0 and report.rows[0].max_abs == pytest.approx(
        1.3e-17, rel=ARITHMETIC_RTOL, abs=NO_ATOL
    )
