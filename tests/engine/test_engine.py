"""Unit tests of the scalar engine: every op against finite differences, the chain rule on
toy functions with known derivatives, error messages, deep graphs, gradient accumulation,
and the node's public structure (repr, parents, partials, op)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import pytest

import engine
from engine import Value, numerical_gradient, topological_order, zero_grad

#: graph vs central differences (eps=1e-6) on smooth functions of O(1) inputs: truncation
#: O(eps^2) ~ 1e-12 plus rounding ~1e-10 * |f|; 1e-8 absolute leaves room for |f| up to ~100.
FD_ATOL = 1e-8
#: relative part for gradients of larger size (the NUMERIC rtol of engine.gradcheck).
FD_RTOL = 1e-6
#: closed-form derivative vs the engine: the same formula up to a few roundings.
CLOSED_FORM_RTOL = 1e-13
#: the 100k-op chain multiplies 50,000 rounded products; the error grows ~ sqrt(n) * 1e-16
#: (measured 2.2e-15 for dy/dx and 1.1e-15 for dy/dd: the geometric sum is computed with the
#: same float c, and c - 1 is exact by Sterbenz's lemma, so it loses nothing).
DEEP_CHAIN_RTOL = 1e-10
POWER_RTOL = 1e-14  # p * (y / x) against the closed form: two roundings
#: Values vs floats on the same expression: identical ops except division, which the engine does
#: as a * (1/b): one extra rounding (1.1e-16 relative), so ~5 ulps relative, or absolute near 0.
VALUE_VS_FLOAT_RTOL = 1e-15
VALUE_VS_FLOAT_ATOL = 1e-15
#: tanh built as (exp(2x) - 1) / (exp(2x) + 1): the subtraction cancels a few digits of exp(2x)
#: (measured 7.8e-15 relative at x = 2.2), so 1e-12 rather than CLOSED_FORM_RTOL.
TANH_VIA_EXP_RTOL = 1e-12
#: an absolute floor only for a derivative that underflows to 0.0: far below any real gradient here.
UNDERFLOW_ATOL = 1e-300
#: pytest.approx adds abs=1e-12 when given only rel; the comparisons passing this are purely relative.
NO_ATOL = 0.0


def _graph_grad(f: Callable[..., Any], xs: list[float]) -> tuple[float, list[float]]:
    leaves = [Value(x, f"x{i}") for i, x in enumerate(xs)]
    out = f(*leaves)
    out.backward()
    return out.data, [v.grad for v in leaves]


def _assert_matches_finite_differences(f: Callable[..., Any], xs: list[float]) -> None:
    value, grads = _graph_grad(f, xs)
    on_floats = pytest.approx(f(*xs), rel=VALUE_VS_FLOAT_RTOL, abs=VALUE_VS_FLOAT_ATOL)
    assert value == on_floats, "forward on Values != forward on floats"
    numeric = numerical_gradient(f, xs)
    for i, (g, n) in enumerate(zip(grads, numeric)):
        assert abs(g - n) <= FD_ATOL + FD_RTOL * abs(n), f"d/dx{i}: graph {g!r}, numeric {n!r}"


# ------------------------------------------------------------------ every op vs finite differences
# (name, f, point). f runs on floats and on Values; a float operand on either side is a constant.
OP_CASES: list[tuple[str, Callable[..., Any], list[float]]] = [
    ("v+v", lambda a, b: a + b, [0.7, -1.3]),
    ("v+float", lambda a: a + 2.5, [0.7]),
    ("float+v", lambda a: 2.5 + a, [0.7]),
    ("v-v", lambda a, b: a - b, [0.7, -1.3]),
    ("v-float", lambda a: a - 2.5, [0.7]),
    ("float-v", lambda a: 2.5 - a, [0.7]),
    ("v*v", lambda a, b: a * b, [0.7, -1.3]),
    ("v*float", lambda a: a * -2.5, [0.7]),
    ("float*v", lambda a: -2.5 * a, [0.7]),
    ("v*v same node", lambda a: a * a, [-1.3]),
    ("v/v", lambda a, b: a / b, [0.7, -1.3]),
    ("v/float", lambda a: a / 2.5, [0.7]),
    ("float/v", lambda a: 2.5 / a, [0.7]),
    ("v**2", lambda a: a**2, [-1.3]),
    ("v**3 negative base", lambda a: a**3, [-1.3]),
    ("v**-2 negative base", lambda a: a**-2, [-1.3]),
    ("v**0.5", lambda a: a**0.5, [0.7]),
    ("v**-1.5", lambda a: a**-1.5, [0.7]),
    ("v**1", lambda a: a**1, [0.7]),
    ("v**v", lambda a, b: a**b, [0.7, -1.3]),
    ("v**v base above 1", lambda a, b: a**b, [2.3, 1.7]),
    ("2**v", lambda a: 2**a, [0.7]),
    ("float**v", lambda a: 0.3**a, [-1.3]),
    ("-v", lambda a: -a, [0.7]),
    ("exp", engine.exp, [0.7]),
    ("exp negative", engine.exp, [-2.1]),
    ("log", engine.log, [0.7]),
    ("tanh", engine.tanh, [0.7]),
    ("tanh negative", engine.tanh, [-1.9]),
    ("sigmoid", engine.sigmoid, [0.7]),
    ("sigmoid negative", engine.sigmoid, [-3.1]),
    ("relu positive", engine.relu, [0.7]),
    ("relu negative", engine.relu, [-0.7]),
    ("sqrt", engine.sqrt, [0.7]),
    ("erf", engine.erf, [0.7]),
    ("erf negative", engine.erf, [-1.2]),
    ("sum(values)", lambda a, b, c: sum([a, b, c]), [0.7, -1.3, 2.1]),
    ("sum(values) with repeats", lambda a, b: sum([a, b, a, a]), [0.7, -1.3]),
]


@pytest.mark.parametrize("name,f,xs", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_op_against_finite_differences(name: str, f: Callable[..., Any], xs: list[float]) -> None:
    _assert_matches_finite_differences(f, xs)


def test_unary_methods_match_free_functions() -> None:
    for name in ("exp", "log", "tanh", "sigmoid", "relu", "sqrt", "erf"):
        x = Value(0.7)
        assert getattr(x, name)().data == getattr(engine, name)(x).data == getattr(engine, name)(0.7)


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "relu", "sqrt", "erf"])
@pytest.mark.parametrize("x", [0.3, 1.0, 2.5, 17.0])
def test_free_function_same_data_on_floats_and_values(name: str, x: float) -> None:
    f = getattr(engine, name)
    for point in (x, -x) if name not in ("log", "sqrt") else (x,):
        on_float = f(point)
        on_value = f(Value(point))
        assert type(on_float) is float
        assert isinstance(on_value, Value) and on_value.op == name
        assert on_value.data == on_float


def test_free_functions_reference_values() -> None:
    assert engine.exp(1.0) == math.e
    assert engine.log(math.e) == 1.0
    assert engine.sqrt(2.25) == 1.5
    assert engine.tanh(0.0) == 0.0
    assert engine.sigmoid(0.0) == 0.5
    assert engine.relu(-2.0) == 0.0 and engine.relu(3) == 3.0
    assert engine.erf(0.0) == 0.0
    # sigmoid of large |x| neither overflows nor loses its value
    assert engine.sigmoid(-800.0) == 0.0 and engine.sigmoid(800.0) == 1.0
    assert Value(-800.0).sigmoid().data == 0.0
    assert engine.data_of(Value(2.5)) == 2.5 and engine.data_of(3) == 3.0


def test_relu_and_sqrt_at_their_special_points_follow_pytorch() -> None:
    x = Value(0.0)
    y = x.relu()
    y.backward()
    assert y.data == 0.0 and x.grad == 0.0  # subgradient 0 at the kink
    x = Value(0.0)
    y = x.sqrt()
    y.backward()
    assert y.data == 0.0 and x.grad == math.inf  # infinite slope at 0
    x = Value(0.0)
    y = x**0.5
    y.backward()
    assert x.grad == math.inf
    x = Value(0.0)
    y = x**2
    y.backward()
    assert x.grad == 0.0


def test_numpy_scalars_are_constants_on_either_side() -> None:
    np = pytest.importorskip("numpy")
    x = Value(2.0)
    y = np.float64(3.0) * x + x * np.float32(0.5) - np.int64(1) / x + np.float64(2.0) ** x
    assert isinstance(y, Value) and type(y.data) is float
    y.backward()
    assert x.grad == pytest.approx(3.0 + 0.5 + 1 / 4.0 + 4.0 * math.log(2.0), rel=CLOSED_FORM_RTOL, abs=NO_ATOL)


def test_zeroth_power_at_zero_has_zero_gradient() -> None:
    x = Value(0.0)
    y = x**0
    y.backward()
    assert y.data == 1.0
    assert x.grad == 0.0


def test_value_subclass_works_as_right_operand() -> None:
    class Parameter(Value):
        __slots__ = ()

    w = Parameter(2.0, "w")
    y = Value(3.0) * w + Value(1.0) - w
    y.backward()
    assert y.data == 5.0
    assert w.grad == 2.0


# ------------------------------------------------------------------ chain rule on toy functions
def _assert_closed_form(f: Callable[[Value], Value], df: Callable[[float], float], x: float) -> None:
    v = Value(x)
    f(v).backward()
    assert v.grad == pytest.approx(df(x), rel=CLOSED_FORM_RTOL, abs=UNDERFLOW_ATOL)


@pytest.mark.parametrize("x", [-1.7, 0.4, 2.2])
def test_chain_rule_polynomial(x: float) -> None:
    _assert_closed_form(lambda v: v * v * v, lambda t: 3 * t * t, x)
    _assert_closed_form(lambda v: (v * v + 1) * (v - 2), lambda t: 3 * t * t - 4 * t + 1, x)


@pytest.mark.parametrize("x", [0.4, 2.2])
def test_chain_rule_exp_of_log_is_identity(x: float) -> None:
    _assert_closed_form(lambda v: engine.exp(engine.log(v)), lambda t: 1.0, x)
    _assert_closed_form(lambda v: engine.log(engine.exp(v)), lambda t: 1.0, x)


@pytest.mark.parametrize("x", [-1.7, 0.4, 2.2])
def test_chain_rule_tanh_built_from_exp(x: float) -> None:
    def tanh_via_exp(v: Value) -> Value:
        e = engine.exp(2 * v)
        return (e - 1) / (e + 1)

    v, w = Value(x), Value(x)
    built, native = tanh_via_exp(v), engine.tanh(w)
    built.backward()
    native.backward()
    assert built.data == pytest.approx(native.data, rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
    assert v.grad == pytest.approx(1 - math.tanh(x) ** 2, rel=TANH_VIA_EXP_RTOL, abs=NO_ATOL)
    assert w.grad == pytest.approx(1 - math.tanh(x) ** 2, rel=CLOSED_FORM_RTOL, abs=NO_ATOL)


@pytest.mark.parametrize("x", [-1.7, 0.4, 2.2])
def test_chain_rule_sigmoid_built_from_exp(x: float) -> None:
    s = 1 / (1 + math.exp(-x))
    _assert_closed_form(lambda v: 1 / (1 + engine.exp(-v)), lambda t: s * (1 - s), x)


@pytest.mark.parametrize("x", [0.4, 2.2])
def test_chain_rule_x_to_the_x(x: float) -> None:
    _assert_closed_form(lambda v: v**v, lambda t: t**t * (math.log(t) + 1), x)


def test_chain_rule_shared_node_sums_paths() -> None:
    """y = x*x used twice: z = y + y*y, dz/dx = (1 + 2y) * 2x."""
    x = Value(1.5)
    y = x * x
    z = y + y * y
    z.backward()
    assert x.grad == (1 + 2 * 2.25) * 3.0
    assert y.grad == 1 + 2 * 2.25


# ------------------------------------------------------------------ error messages
def test_non_number_data_is_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="str"):
        Value("a")
    with pytest.raises(TypeError, match="NoneType"):
        Value(None)
    with pytest.raises(TypeError, match="bool"):
        Value(True)
    with pytest.raises(TypeError, match="list"):
        Value([1.0])
    with pytest.raises(TypeError, match="label must be a str, not int"):
        Value(1.0, 3)


def test_non_number_operand_is_a_type_error() -> None:
    """A non-number operand gets its reflected op (NotImplemented), then Python's own one-line TypeError."""
    with pytest.raises(TypeError, match="str"):
        Value(1.0) + "a"
    with pytest.raises(TypeError, match="'Value' and 'str'"):
        Value(1.0) ** "a"
    with pytest.raises(TypeError, match="not bool"):  # a bool is a number to Python, refused by name here
        Value(1.0) * True


@pytest.mark.parametrize("bad", [0.0, -2.5])
def test_log_outside_domain_names_value_and_label(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"log.*positive.*{bad!r}.*'w'"):
        Value(bad, "w").log()
    with pytest.raises(ValueError, match=rf"log.*{bad!r}.*'w'"):
        engine.log(Value(bad, "w"))
    with pytest.raises(ValueError, match=rf"log.*{bad!r}"):
        engine.log(bad)


def test_unlabelled_node_is_named_by_its_op() -> None:
    x = Value(-1.0)
    with pytest.raises(ValueError, match=r"unlabelled \+ node"):
        (x + 0.5).log()
    with pytest.raises(ValueError, match="unlabelled leaf node"):
        x.log()


def test_sqrt_outside_domain() -> None:
    with pytest.raises(ValueError, match=r"sqrt.*-1\.0.*'s'"):
        Value(-1.0, "s").sqrt()
    with pytest.raises(ValueError, match=r"sqrt.*-1\.0"):
        engine.sqrt(-1.0)


def test_power_outside_domain_names_value_and_label() -> None:
    with pytest.raises(ValueError, match=r"0\.5.*-2\.0.*'b'"):
        Value(-2.0, "b") ** 0.5
    with pytest.raises(ValueError, match=r"-1\.0.*0\.0.*'z'"):
        Value(0.0, "z") ** -1
    with pytest.raises(ValueError, match=r"-2\.0.*'b'"):
        Value(-2.0, "b") ** Value(2.0, "p")
    with pytest.raises(ValueError, match=r"0\.0.*'z'"):
        Value(0.0, "z") ** Value(-1.0)
    with pytest.raises(ValueError, match=r"-2\.0"):
        (-2.0) ** Value(0.5)  # __rpow__


def test_division_by_zero_names_the_divisor() -> None:
    with pytest.raises(ZeroDivisionError, match=r"division by zero.*'d'.*0\.0"):
        Value(1.0) / Value(0.0, "d")
    with pytest.raises(ZeroDivisionError, match="division by zero.*unlabelled leaf"):
        Value(1.0) / 0
    with pytest.raises(ZeroDivisionError, match=r"division by zero.*'d'"):
        1.0 / Value(0.0, "d")


def test_exp_overflow_names_value_and_label() -> None:
    with pytest.raises(OverflowError, match=r"exp\(1000\.0\).*'big'"):
        Value(1000.0, "big").exp()


# ------------------------------------------------------------------ deep graphs
def test_100k_op_chain_under_the_default_recursion_limit() -> None:
    """y = ((x*c + d)*c + d)... 50,000 times: dy/dx = c^50000, whatever the recursion limit."""
    assert sys.getrecursionlimit() <= 10_000, "this test must run with a default-sized recursion limit"
    n = 50_000
    c_value = 1.00001
    x, c, d = Value(0.3, "x"), Value(c_value, "c"), Value(1e-6, "d")
    y = x
    for _ in range(n):
        y = y * c + d
    nodes = topological_order(y)
    assert len(nodes) == 2 * n + 3  # 100,000 op nodes + 3 leaves
    y.backward()
    assert x.grad == pytest.approx(c_value**n, rel=DEEP_CHAIN_RTOL, abs=NO_ATOL)
    assert d.grad == pytest.approx((c_value**n - 1) / (c_value - 1), rel=DEEP_CHAIN_RTOL, abs=NO_ATOL)  # geometric sum


# ------------------------------------------------------------------ accumulation semantics (PyTorch's)
def test_backward_twice_accumulates_leaves_not_interior() -> None:
    x = Value(2.0, "x")
    y = x * x  # interior
    z = y * 3.0
    z.backward()
    assert (x.grad, y.grad, z.grad) == (12.0, 3.0, 1.0)
    z.backward()
    assert x.grad == 24.0  # leaf: accumulated
    assert y.grad == 3.0  # interior: this call's gradient only
    assert z.grad == 1.0
    zero_grad([x])
    assert x.grad == 0.0
    z.backward()
    assert x.grad == 12.0


def test_two_roots_accumulate_into_shared_leaves() -> None:
    w = Value(0.5, "w")
    loss_a = w * 4.0
    loss_b = w * w
    loss_a.backward()
    loss_b.backward()
    assert w.grad == 4.0 + 1.0
    zero_grad([w, Value(1.0)])
    assert w.grad == 0.0


def test_backward_of_a_leaf_accumulates_one() -> None:
    x = Value(3.0)
    x.backward()
    x.backward()
    assert x.grad == 2.0


# ------------------------------------------------------------------ structure and display
def test_repr_shows_label_data_and_grad() -> None:
    x = Value(2.0, "x")
    (x * x).backward()
    assert repr(x) == "Value(label='x', data=2.0, grad=4.0)"
    assert repr(Value(1.5)) == "Value(data=1.5, grad=0.0)"


def test_leaf_structure() -> None:
    x = Value(3, "x")
    assert type(x.data) is float and x.data == 3.0
    assert (x.op, x.parents, x.partials, x.label, x.grad) == ("", (), (), "x", 0.0)
    with pytest.raises(TypeError, match=r"engine\.exp"):
        float(x)  # the number is x.data; see test_engine_conversions.py
    assert Value(1.0).label == ""


def test_node_structure_of_each_op() -> None:
    a, b = Value(3.0, "a"), Value(-2.0, "b")
    cases = [
        (a + b, "+", (a, b), (1.0, 1.0)),
        (a - b, "-", (a, b), (1.0, -1.0)),
        (a * b, "*", (a, b), (-2.0, 3.0)),
        (a / b, "/", (a, b), (-0.5, -0.75)),  # 1/b, -a/b^2
        (a**2, "**2", (a,), (6.0,)),
        (a**0.5, "**0.5", (a,), (0.5 / math.sqrt(3.0),)),
        (-a, "neg", (a,), (-1.0,)),
        (a.exp(), "exp", (a,), (math.exp(3.0),)),
        (a.log(), "log", (a,), (1 / 3.0,)),
        (a.tanh(), "tanh", (a,), (1 - math.tanh(3.0) ** 2,)),
        (b.relu(), "relu", (b,), (0.0,)),
        (a.relu(), "relu", (a,), (1.0,)),
        (a.erf(), "erf", (a,), (2 / math.sqrt(math.pi) * math.exp(-9.0),)),
    ]
    for out, op, parents, partials in cases:
        assert out.op == op
        assert len(out.parents) == len(parents) and all(p is q for p, q in zip(out.parents, parents))
        assert out.partials == pytest.approx(partials, rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
        assert out.label == "" and out.grad == 0.0
    s = a.sigmoid()
    assert s.op == "sigmoid"
    assert s.partials == pytest.approx((s.data * (1 - s.data),), rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
    q = a.sqrt()
    assert q.op == "sqrt" and q.partials == pytest.approx((0.5 / math.sqrt(3.0),), rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
    p = a**b
    assert p.op == "**" and p.parents[0] is a and p.parents[1] is b
    assert p.partials == pytest.approx((-2.0 * 3.0**-3.0, 3.0**-2.0 * math.log(3.0)), rel=CLOSED_FORM_RTOL, abs=NO_ATOL)
    r = 2**a
    assert r.op == "**" and r.parents[1] is a and r.parents[0].data == 2.0
    f = 2.0 + a  # a float on the left becomes a leaf constant
    assert f.op == "+" and f.parents[0].data == 2.0 and f.parents[0].parents == () and f.parents[1] is a


def test_comparisons_use_data_and_equality_is_identity() -> None:
    a, b = Value(1.0), Value(2.0)
    assert a < b and a <= b and b > a and b >= a
    assert a < 1.5 and b > 1.5 and a <= 1.0 and b >= 2
    assert a != Value(1.0) and a == a  # identity, so nodes can live in sets and dicts
    assert len({a, Value(1.0)}) == 2


def test_value_uses_slots() -> None:
    v = Value(1.0)
    assert not hasattr(v, "__dict__")
    with pytest.raises(AttributeError):
        v.something = 1  # type: ignore[attr-defined]


def test_power_partial_does_not_overflow_where_the_slope_is_finite() -> None:
    """d/dt t^-1.5 at t = 1e-200 is -1.5e500: inf in float64, but no OverflowError, as in torch."""
    t = Value(1e-200, "t")
    y = t**-1.5
    assert y.data == pytest.approx(1e300, rel=POWER_RTOL, abs=NO_ATOL)
    y.backward()
    assert t.grad == -math.inf
    u = Value(4.0, "u")
    (u**-1.5).backward()
    assert u.grad == pytest.approx(-1.5 * 4.0**-2.5, rel=POWER_RTOL, abs=NO_ATOL)


def test_float_exp_overflow_names_the_value() -> None:
    with pytest.raises(OverflowError, match=r"exp\(1000.0\)"):
        engine.exp(1000.0)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "erf"])
def test_free_functions_name_themselves_on_a_non_number(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} takes a number or an engine.Value, not str"):
        getattr(engine, name)("x")


def test_relu_keeps_nan_like_torch() -> None:
    assert math.isnan(engine.relu(math.nan))
    assert math.isnan(Value(math.nan).relu().data)
