"""The first half of nn's pieces (matmul, linear, activations, softmax, losses) beyond the
registry's three-way check: bad input, numerical stability at extreme logits, special cases.

One test here covers every registered piece (nn's and the models'): each backward refuses a
non-finite upstream gradient, naming "dout".
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from engine import Value
from models.check import pieces
from nn import activations, linear, losses, softmax
from nn.activations import erf_array
from nn.registry import check_piece, get_piece

CORE_PIECES = (
    "matmul",
    "linear",
    "sigmoid",
    "relu",
    "tanh",
    "gelu",
    "gelu_tanh",
    "softmax",
    "log_softmax",
    "mse",
    "cross_entropy",
    "binary_cross_entropy",
)

#: loops vs manual on the same inputs: the same float64 math, summed in a different order.
SAME_MATH_RTOL = 1e-12
#: erf_array vs math.erf: the Taylor tables are built to ~1 ulp; 2 ulp of 1.0 is 4.4e-16.
ERF_ATOL = 4.5e-16
#: |GELU(x) - GELU_tanh(x)| is at most ~4.7e-4 over the reals (the tanh form's known error).
GELU_APPROX_ATOL = 1e-3
#: Identities such as sum(softmax) = 1 or softmax(x + c) = softmax(x): a few roundings per row.
IDENTITY_ATOL = 1e-14
#: log(softmax) vs log_softmax: values down to about -20 here, a few ulps of 20 (3.6e-15 each).
LOG_IDENTITY_ATOL = 1e-13
#: GELU(x) - GELU(-x) = x for |x| <= 6: a difference of two O(6) values, each a few ulps
#: (8.9e-16 each) off.
ODD_PART_ATOL = 1e-13


def _manual(name: str, inputs: dict, static: dict | None = None, dout=None):
    """(output, gradients) of a piece's manual pair; dout defaults to ones of the output's shape."""
    piece = get_piece(name)
    out, cache = piece.forward(*inputs.values(), **(static or {}))
    grads = piece.backward(np.ones(np.shape(out)) if dout is None else dout, cache)
    return out, grads


def _graph(name: str, inputs: dict, static: dict | None = None):
    """(output data as nested lists / float, gradients) of the loops form on Values, backward from the sum."""
    piece = get_piece(name)
    values = {k: _to_values(v.tolist()) for k, v in inputs.items()}
    out = piece.loops(*values.values(), **(static or {}))
    leaves = _flatten(out)
    total = leaves[0]
    for leaf in leaves[1:]:
        total = total + leaf
    total.backward()
    data = _map_nested(lambda v: v.data, out)
    grads = tuple(np.array(_map_nested(lambda v: v.grad, vals)) for vals in values.values())
    return data, grads


def _to_values(x):
    return [_to_values(v) for v in x] if isinstance(x, list) else Value(x)


def _map_nested(f, x):
    return [_map_nested(f, v) for v in x] if isinstance(x, list) else f(x)


def _flatten(x):
    return [leaf for v in x for leaf in _flatten(v)] if isinstance(x, list) else [x]


# ------------------------------------------------------------------------------ registration
def test_every_core_piece_is_registered_with_small_and_odd_cases() -> None:
    for name in CORE_PIECES:
        piece = get_piece(name)
        assert len(piece.cases) >= 3, name
        shapes = [next(iter(c.make(np.random.default_rng(0))[0].values())).shape for c in piece.cases]
        assert any(s == () or s[0] == 1 for s in shapes), f"{name}: no batch-size-1 case in {shapes}"
        assert any(any(n % 2 == 1 and n >= 3 for n in s) for s in shapes), f"{name}: no odd size in {shapes}"


@pytest.mark.parametrize("name", CORE_PIECES)
def test_three_way(name: str) -> None:
    for report in check_piece(get_piece(name)):
        assert report.passed, str(report)


@pytest.mark.parametrize("name", CORE_PIECES)
def test_forward_and_backward_leave_their_inputs_alone(name: str) -> None:
    """The manual pair works in place on its own buffers only: the caller's arrays are unchanged."""
    piece = get_piece(name)
    for case in piece.cases:
        inputs, static = case.make(np.random.default_rng(3))
        before = {k: v.copy() for k, v in inputs.items()}
        static_before = {k: np.array(v, copy=True) for k, v in static.items()}
        out, cache = piece.forward(*inputs.values(), **static)
        dout = np.random.default_rng(4).standard_normal(np.shape(out))
        dout_before = dout.copy()
        piece.backward(dout, cache)
        for k in inputs:
            assert np.array_equal(inputs[k], before[k]), f"{name}[{case.name}] modified input {k}"
        for k in static:
            assert np.array_equal(static[k], static_before[k]), f"{name}[{case.name}] modified {k}"
        assert np.array_equal(dout, dout_before), f"{name}[{case.name}] modified dout"


# ------------------------------------------------------------------------------ bad input
def _both_forms(name: str):
    """The forward and the loops form of a piece, for bad-input tests that must hold for both."""
    piece = get_piece(name)
    return [("forward", piece.forward), ("loops", piece.loops)]


SHAPE_ERRORS = [
    # (piece, inputs, static, the exact message, or its start followed by "...")
    ("matmul", (np.ones((2, 3)), np.ones((4, 5))), {}, "matmul: A has 3 columns but B has 4 rows: A (2, 3), B (4, 5)"),
    ("matmul", (np.ones(3), np.ones((3, 2))), {}, "matmul: A must have shape (n, k), got shape (3,)"),
    ("matmul", (np.ones((2, 3)), np.ones((3, 2, 1))), {}, "matmul: B must have shape (k, m), got shape (3, 2, 1)"),
    (
        "linear",
        (np.ones((3, 5)), np.ones((4, 2)), np.ones(2)),
        {},
        "linear: x has 5 features but W expects 4: x (3, 5), W (4, 2)",
    ),
    (
        "linear",
        (np.ones((2, 3, 5)), np.ones((4, 2)), np.ones(2)),
        {},
        "linear: x has 5 features but W expects 4: x (2, 3, 5), W (4, 2)",
    ),
    (
        "linear",
        (np.ones((3, 4)), np.ones((4, 2)), np.ones(3)),
        {},
        "linear: b must have shape (n_out,) = (2,) to match W, got b (3,), W (4, 2)",
    ),
    (
        "linear",
        (np.ones(4), np.ones((4, 2)), np.ones(2)),
        {},
        "linear: x must have shape (B, n_in) or (B, T, n_in), got shape (4,)",
    ),
    (
        "linear",
        (np.ones((1, 2, 3, 4)), np.ones((4, 2)), np.ones(2)),
        {},
        "linear: x must have shape (B, n_in) or (B, T, n_in), got shape (1, 2, 3, 4)",
    ),
    (
        "linear",
        (np.ones((3, 4)), np.ones(4), np.ones(2)),
        {},
        "linear: W must have shape (n_in, n_out), got shape (4,)",
    ),
    (
        "softmax",
        (np.ones((3, 0)),),
        {},
        "softmax: x needs at least one entry along its last axis (C), got shape (3, 0)",
    ),
    (
        "log_softmax",
        (np.float64(2.0),),
        {},
        "log_softmax: x needs at least one entry along its last axis (C), got shape ()",
    ),
    ("mse", (np.ones(3), np.ones(4)), {}, "mse: pred and target must have the same shape: pred (3,), target (4,)"),
    (
        "mse",
        (np.ones((2, 3)), np.ones((3, 2))),
        {},
        "mse: pred and target must have the same shape: pred (2, 3), target (3, 2)",
    ),
    ("mse", (np.ones((0, 2)), np.ones((0, 2))), {}, "mse: pred is empty (shape ..."),
    (
        "cross_entropy",
        (np.ones(5),),
        {"targets": np.array([1])},
        "cross_entropy: logits must have shape (B, C), got shape (5,)",
    ),
    (
        "cross_entropy",
        (np.ones((3, 5)),),
        {"targets": np.array([0, 1, 2, 3])},
        "cross_entropy: targets has shape (4,) but logits has 3 rows: logits (3, 5), targets (4,)",
    ),
    (
        "cross_entropy",
        (np.ones((3, 5)),),
        {"targets": np.array([0, 7, 2])},
        "cross_entropy: targets must be class indices in [0, 5), got 7 at index 1",
    ),
    (
        "cross_entropy",
        (np.ones((3, 5)),),
        {"targets": np.array([0, 1, -1])},
        "cross_entropy: targets must be class indices in [0, 5), got -1 at index 2",
    ),
    (
        "cross_entropy",
        (np.ones((3, 5)),),
        {"targets": np.array([0.0, 1.0, 2.0])},
        "cross_entropy: targets must be integer class indices, got dtype float64",
    ),
    (
        "cross_entropy",
        (np.ones((2, 5)),),
        {"targets": np.array([True, False])},
        "cross_entropy: targets must be integer class indices, got dtype bool",
    ),
    (
        "binary_cross_entropy",
        (np.ones(3),),
        {"targets": np.ones(4)},
        "binary_cross_entropy: logits and targets must have the same shape: logits (3,), targets (4,)",
    ),
    (
        "binary_cross_entropy",
        (np.zeros(3),),
        {"targets": np.array([0.0, 1.5, 1.0])},
        "binary_cross_entropy: targets must be finite probabilities in [0, 1], got 1.5 at index (1,)",
    ),
    (
        "binary_cross_entropy",
        (np.zeros(3),),
        {"targets": np.array([0.0, np.nan, 1.0])},
        "binary_cross_entropy: targets must be finite probabilities in [0, 1], got nan at index (1,)",
    ),
]


@pytest.mark.parametrize("name,args,static,message", SHAPE_ERRORS, ids=[f"{e[0]}:{e[3][:48]}" for e in SHAPE_ERRORS])
def test_bad_shapes_and_targets_name_the_piece_argument_and_shapes(name, args, static, message) -> None:
    for form, fn in _both_forms(name):
        with pytest.raises(ValueError) as err:
            fn(*args, **static)
        if message.endswith("..."):  # the loops form sees [] for an empty (0, 2) array: shapes differ
            assert str(err.value).startswith(message[:-3]), f"{form}: {err.value}"
        else:
            assert str(err.value) == message, f"{form}: {err.value}"


@pytest.mark.parametrize("name", CORE_PIECES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_inputs_are_refused_naming_the_argument(name: str, bad: float) -> None:
    piece = get_piece(name)
    inputs, static = piece.cases[1].make(np.random.default_rng(0))
    for arg in inputs:
        poisoned = {k: v.copy() for k, v in inputs.items()}
        poisoned[arg].reshape(-1)[-1] = bad
        index = np.unravel_index(poisoned[arg].size - 1, poisoned[arg].shape)
        for form, fn in _both_forms(name):
            with pytest.raises(ValueError) as err:
                fn(*poisoned.values(), **static)
            text = str(err.value)
            assert text.startswith(f"{name}: {arg} has non-finite values ({bad}"), f"{form}: {text}"
            if index:
                assert str(tuple(int(i) for i in index)) in text, f"{form}: {text}"


def test_loops_form_refuses_ragged_and_non_numeric_input() -> None:
    with pytest.raises(
        ValueError, match=r"^matmul: A is ragged: expected shape \(2, 2\), but entry \(1,\) has length 1$"
    ):
        linear.matmul_loops([[1.0, 2.0], [3.0]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match=r"^relu: x must hold numbers or Values, got str at index \(1,\)$"):
        activations.relu_loops([1.0, "2"])
    with pytest.raises(ValueError, match=r"^tanh: x must be an array of real numbers, got list"):
        activations.tanh_forward([1.0, "a"])


def test_the_bulk_check_of_nested_input_defers_every_doubtful_case_to_the_exact_walk() -> None:
    """nested_input's bulk pass (a sum over all leaves) may only say "all fine"; whatever it
    cannot vouch for goes through the leaf-by-leaf walk, which accepts or names the entry."""
    from nn._checks import nested_input

    huge = [[1e308, 1e308], [-1e308, 1.0]]  # finite entries whose sum overflows: still accepted
    assert nested_input("p", "x", huge) == (huge, (2, 2))
    mixed = [[Value(1.0), 2.0], [3, Value(4.0)]]  # Values and numbers mixed: accepted
    assert nested_input("p", "x", mixed)[1] == (2, 2)
    assert nested_input("p", "x", np.float64(2.5))[1] == ()
    assert nested_input("p", "x", [[], []])[1] == (2, 0)
    bad = [
        (
            [[Value(1.0), Value(2.0)], [Value(2.0), Value(-math.inf)]],
            r"x has non-finite values \(-inf at index \(1, 1\)\)",
        ),
        (
            [[Value(1.0), Value(2.0)], [Value(math.inf), Value(-math.inf)]],
            r"x has non-finite values \(-?inf at index \(1, [01]\)\)",
        ),
        ([[Value(1.0), Value(math.nan)]], r"x has non-finite values \(nan at index \(0, 1\)\)"),
        ([1.0, True], r"x must hold numbers or Values, got bool at index \(1,\)"),
        ([[1.0, 2.0], (3.0, [4.0])], r"x must hold numbers or Values, got list at index \(1, 1\)"),
        ([[], [1.0]], r"x is ragged: expected shape \(2, 0\), but entry \(1,\) has length 1"),
        ([[1.0], np.array([2.0])], r"x is ragged: expected shape \(2, 1\), but entry \(1,\) has ndarray"),
    ]
    for x, message in bad:
        with pytest.raises(ValueError, match="^p: " + message + "$"):
            nested_input("p", "x", x)


def test_backward_refuses_an_upstream_gradient_of_the_wrong_shape() -> None:
    _, cache = linear.linear_forward(np.ones((3, 4)), np.ones((4, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"^linear: dout has shape \(3, 3\) but the output has shape \(3, 2\)$"):
        linear.linear_backward(np.ones((3, 3)), cache)
    _, cache = softmax.softmax_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^softmax: dout has shape \(3,\) but the output has shape \(2, 3\)$"):
        softmax.softmax_backward(np.ones(3), cache)
    _, cache = losses.mse_forward(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"^mse: dout has shape \(3,\) but the output has shape \(\)$"):
        losses.mse_backward(np.ones(3), cache)


ALL_CASES = [(p, c) for p in pieces() for c in p.cases]


@pytest.mark.parametrize("piece,case", ALL_CASES, ids=[f"{p.name}-{c.name}" for p, c in ALL_CASES])
@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_every_registered_backward_refuses_a_non_finite_dout(piece, case, bad: float) -> None:
    """A NaN or inf in dout would spread into every gradient it reaches: refused by name."""
    inputs, static = case.make(np.random.default_rng(0))
    out, cache = piece.forward(*inputs.values(), **static)
    dout = np.ones(np.shape(out))
    dout.reshape(-1)[-1] = bad  # a view: the last entry (the only one of a scalar output)
    with pytest.raises(ValueError) as err:
        piece.backward(dout, cache)
    text = str(err.value)
    assert f"dout has non-finite values ({bad}" in text
    if "model" not in piece.tags:
        # nn pieces name themselves; a model names the nn piece whose backward met dout first
        assert text.startswith(f"{piece.name}: dout"), text


def test_integer_inputs_are_accepted_as_float64() -> None:
    y, _ = linear.matmul_forward(np.array([[1, 2]]), np.array([[3], [4]]))
    assert y.dtype == np.float64 and y.tolist() == [[11.0]]
    assert linear.matmul_loops([[1, 2]], [[3], [4]]) == [[11]]


# ------------------------------------------------------------------------------ stability
EXTREME = 1e4


def test_sigmoid_saturates_exactly_without_overflow() -> None:
    x = np.array([EXTREME, -EXTREME, 800.0, -800.0, 0.0])
    with np.errstate(over="raise", under="ignore"):
        s, (dx,) = _manual("sigmoid", {"x": x})
    assert s.tolist() == [1.0, 0.0, 1.0, 0.0, 0.5]
    assert dx.tolist() == [0.0, 0.0, 0.0, 0.0, 0.25]
    data, (gx,) = _graph("sigmoid", {"x": x})
    assert data == [1.0, 0.0, 1.0, 0.0, 0.5]
    assert gx.tolist() == [0.0, 0.0, 0.0, 0.0, 0.25]


def test_softmax_of_extreme_logits_is_exact_and_finite() -> None:
    x = np.array([[EXTREME, -EXTREME, 0.0], [-EXTREME, -EXTREME, -EXTREME]])
    dout = np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 0.5]])
    with np.errstate(over="raise"):
        y, (dx,) = _manual("softmax", {"x": x}, dout=dout)
    assert y[0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=0, atol=IDENTITY_ATOL)
    assert np.isfinite(dx).all()
    assert dx[0].tolist() == [0.0, 0.0, 0.0]  # a saturated softmax has zero Jacobian
    data, (gx,) = _graph("softmax", {"x": x})
    assert data[0] == [1.0, 0.0, 0.0]
    assert np.isfinite(gx).all() and gx[0].tolist() == [0.0, 0.0, 0.0]
    assert softmax.softmax_loops([EXTREME, -EXTREME, 0.0]) == [1.0, 0.0, 0.0]


def test_log_softmax_of_extreme_logits_is_exact_and_finite() -> None:
    x = np.array([[EXTREME, -EXTREME, 0.0]])
    dout = np.array([[1.0, 2.0, 3.0]])
    y, (dx,) = _manual("log_softmax", {"x": x}, dout=dout)
    assert y.tolist() == [[0.0, -2 * EXTREME, -EXTREME]]
    # dx = dout - softmax * sum(dout) = [1, 2, 3] - [1, 0, 0] * 6
    assert dx.tolist() == [[-5.0, 2.0, 3.0]]
    data, (gx,) = _graph("log_softmax", {"x": x})
    assert data == [[0.0, -2 * EXTREME, -EXTREME]]
    assert gx.tolist() == [[-2.0, 1.0, 1.0]]  # dout = ones: 1 - [1, 0, 0] * 3


def test_cross_entropy_of_extreme_logits_is_exact_and_finite() -> None:
    logits = np.array([[EXTREME, -EXTREME, 0.0], [EXTREME, -EXTREME, 0.0]])
    targets = np.array([0, 1])
    loss, (dlogits,) = _manual("cross_entropy", {"logits": logits}, {"targets": targets})
    # row 0: the target holds all the mass, -log 1 = 0; row 1: -log softmax = 2e4; mean 1e4.
    assert float(loss) == EXTREME and loss.shape == ()
    assert dlogits.tolist() == [[0.0, 0.0, 0.0], [0.5, -0.5, 0.0]]  # (p - onehot) / B
    data, (glogits,) = _graph("cross_entropy", {"logits": logits}, {"targets": targets})
    assert data == EXTREME
    assert glogits.tolist() == [[0.0, 0.0, 0.0], [0.5, -0.5, 0.0]]


def test_binary_cross_entropy_of_extreme_logits_is_exact_and_finite() -> None:
    z = np.array([EXTREME, -EXTREME, EXTREME, -EXTREME])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    with np.errstate(over="raise"):
        loss, (dz,) = _manual("binary_cross_entropy", {"logits": z}, {"targets": y})
    # right and confident: 0; wrong and confident: |z|. Mean of [0, 0, 1e4, 1e4].
    assert float(loss) == EXTREME / 2
    assert dz.tolist() == [0.0, 0.0, 0.25, -0.25]  # (sigmoid(z) - y) / N
    data, (gz,) = _graph("binary_cross_entropy", {"logits": z}, {"targets": y})
    assert data == EXTREME / 2
    assert gz.tolist() == [0.0, 0.0, 0.25, -0.25]


@pytest.mark.parametrize("name", ["tanh", "gelu", "gelu_tanh", "relu"])
def test_activations_at_extreme_inputs_are_finite(name: str) -> None:
    x = np.array([EXTREME, -EXTREME])
    y, (dx,) = _manual(name, {"x": x})
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    data, (gx,) = _graph(name, {"x": x})
    np.testing.assert_allclose(data, y, rtol=SAME_MATH_RTOL, atol=0)
    np.testing.assert_allclose(gx, dx, rtol=SAME_MATH_RTOL, atol=0)


# ------------------------------------------------------------------------------ special cases
def test_erf_array_matches_math_erf() -> None:
    x = np.concatenate([np.linspace(-7.0, 7.0, 20001), np.geomspace(1e-300, 7.0, 2001), [0.0, 6.0, -6.0, 0.125, 5.999]])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf_array(x), expected, rtol=0, atol=ERF_ATOL)
    assert np.array_equal(erf_array(-x), -erf_array(x))  # odd, exactly
    assert erf_array(np.array([6.5, -30.0, 1e300])).tolist() == [1.0, -1.0, 1.0]
    assert erf_array(np.float64(0.5)).shape == ()


def test_gelu_special_values_and_the_tanh_approximation() -> None:
    x = np.linspace(-6.0, 6.0, 241)
    exact, _ = _manual("gelu", {"x": x})
    approx, _ = _manual("gelu_tanh", {"x": x})
    assert np.max(np.abs(exact - approx)) < GELU_APPROX_ATOL
    zero, (dzero,) = _manual("gelu", {"x": np.zeros(1)})
    assert zero.tolist() == [0.0] and dzero.tolist() == [0.5]  # GELU'(0) = Phi(0) = 1/2
    # GELU(x) - GELU(-x) = x (Phi(x) + Phi(-x) - 1) + x = x
    plus, _ = _manual("gelu", {"x": x})
    minus, _ = _manual("gelu", {"x": -x})
    np.testing.assert_allclose(plus - minus, x, rtol=0, atol=ODD_PART_ATOL)


def test_relu_gradient_at_zero_is_zero_in_both_forms() -> None:
    y, (dx,) = _manual("relu", {"x": np.array([0.0, -0.0, 2.0])})
    assert y.tolist() == [0.0, 0.0, 2.0] and dx.tolist() == [0.0, 0.0, 1.0]
    _, (gx,) = _graph("relu", {"x": np.array([0.0, -0.0, 2.0])})
    assert gx.tolist() == [0.0, 0.0, 1.0]


def test_activations_of_a_scalar_keep_shape_zero_d() -> None:
    for name in ("sigmoid", "relu", "tanh", "gelu", "gelu_tanh"):
        y, (dx,) = _manual(name, {"x": np.array(0.7)})
        assert isinstance(y, np.ndarray) and y.shape == () and dx.shape == (), name
        assert get_piece(name).loops(0.7) == pytest.approx(float(y), rel=SAME_MATH_RTOL), name


def test_softmax_identities() -> None:
    x = np.random.default_rng(1).standard_normal((4, 6)) * 3.0
    y, _ = _manual("softmax", {"x": x})
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=IDENTITY_ATOL)
    shifted, _ = _manual("softmax", {"x": x + 123.0})
    np.testing.assert_allclose(shifted, y, rtol=0, atol=IDENTITY_ATOL)
    logy, _ = _manual("log_softmax", {"x": x})
    np.testing.assert_allclose(logy, np.log(y), rtol=0, atol=LOG_IDENTITY_ATOL)
    one, (d_one,) = _manual("softmax", {"x": np.array([[5.0], [-2.0]])}, dout=np.array([[3.0], [4.0]]))
    assert one.tolist() == [[1.0], [1.0]] and d_one.tolist() == [[0.0], [0.0]]


def test_cross_entropy_agrees_with_log_softmax_and_known_values() -> None:
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    loss, _ = _manual("cross_entropy", {"logits": logits}, {"targets": targets})
    logp, _ = _manual("log_softmax", {"x": logits})
    assert float(loss) == pytest.approx(-logp[np.arange(5), targets].mean(), rel=SAME_MATH_RTOL)
    uniform, _ = _manual("cross_entropy", {"logits": np.zeros((3, 7))}, {"targets": np.array([0, 6, 2])})
    assert float(uniform) == pytest.approx(math.log(7), rel=SAME_MATH_RTOL)
    # targets given as a Python list work in both forms
    as_list, _ = _manual("cross_entropy", {"logits": logits}, {"targets": targets.tolist()})
    assert float(as_list) == float(loss)
    assert losses.cross_entropy_loops(logits.tolist(), targets=targets.tolist()) == pytest.approx(
        float(loss), rel=SAME_MATH_RTOL
    )


def test_binary_cross_entropy_agrees_with_the_textbook_formula() -> None:
    rng = np.random.default_rng(5)
    z, y = rng.standard_normal((3, 4)), rng.uniform(0, 1, (3, 4))
    loss, _ = _manual("binary_cross_entropy", {"logits": z}, {"targets": y})
    s = 1 / (1 + np.exp(-z))
    assert float(loss) == pytest.approx(float(np.mean(-(y * np.log(s) + (1 - y) * np.log(1 - s)))), rel=SAME_MATH_RTOL)


def test_binary_cross_entropy_slope_at_zero_logit_is_half_minus_target_in_both_forms() -> None:
    z, y = np.zeros(2), np.array([0.0, 1.0])
    _, (dz,) = _manual("binary_cross_entropy", {"logits": z}, {"targets": y})
    _, (gz,) = _graph("binary_cross_entropy", {"logits": z}, {"targets": y})
    assert dz.tolist() == [0.25, -0.25] and gz.tolist() == [0.25, -0.25]  # (0.5 - y) / 2


def test_mse_special_cases() -> None:
    x = np.random.default_rng(6).standard_normal((2, 3))
    zero, (dp, dt) = _manual("mse", {"pred": x, "target": x.copy()})
    assert float(zero) == 0.0 and not dp.any() and not dt.any()
    loss, (dp, dt) = _manual("mse", {"pred": np.array([3.0, 0.0]), "target": np.array([1.0, 0.0])})
    assert float(loss) == 2.0 and loss.shape == ()  # (2^2 + 0) / 2
    assert dp.tolist() == [2.0, 0.0] and dt.tolist() == [-2.0, 0.0]
    assert losses.mse_loops([3.0, 0.0], [1.0, 0.0]) == 2.0


def test_linear_on_sequences_equals_linear_on_rows() -> None:
    rng = np.random.default_rng(7)
    x, W, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((2, 3, 5))
    y3, (dx3, dW3, db3) = _manual("linear", {"x": x, "W": W, "b": b}, dout=dout)
    y2, (dx2, dW2, db2) = _manual("linear", {"x": x.reshape(6, 4), "W": W, "b": b}, dout=dout.reshape(6, 5))
    assert y3.shape == (2, 3, 5) and dx3.shape == (2, 3, 4)
    assert np.array_equal(y3.reshape(6, 5), y2) and np.array_equal(dx3.reshape(6, 4), dx2)
    assert np.array_equal(dW3, dW2) and np.array_equal(db3, db2)
    loops = np.array(linear.linear_loops(x.tolist(), W.tolist(), b.tolist()))
    np.testing.assert_allclose(loops, y3, rtol=SAME_MATH_RTOL, atol=0)


def test_matmul_loops_is_the_matrix_product() -> None:
    rng = np.random.default_rng(8)
    A, B = rng.standard_normal((3, 5)), rng.standard_normal((5, 2))
    np.testing.assert_allclose(
        np.array(linear.matmul_loops(A.tolist(), B.tolist())), A @ B, rtol=SAME_MATH_RTOL, atol=0
    )
    assert linear.matmul_loops(A, B) == linear.matmul_loops(A.tolist(), B.tolist())  # arrays are accepted too
    assert re.fullmatch(r"C = A @ B.*", get_piece("matmul").description)
