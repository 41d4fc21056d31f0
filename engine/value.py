"""The scalar autodiff engine: one `Value` per number, reverse-mode by topological sort.

Every op computes its output *and* its local partial derivatives when it runs, and stores
them next to its parents:

    out = f(a, b)        out._a, out._b   = a, b
                         out._da, out._db = df/da, df/db   (floats, evaluated at a, b)

`backward()` is then one generic loop, the chain rule applied in reverse topological
order:

    a.grad += (df/da) * out.grad
    b.grad += (df/db) * out.grad

No closures, no per-node sets: a node is one slotted object. Parents are at most two,
which every scalar op here needs (binary arithmetic, unary functions), with one exception:
the *fused* node kind, for ops of many inputs (`dot`, `total` here; `softmax`, `rms_norm`
and `cross_entropy` in engine/fused_rows.py). A fused node keeps its
parents and their local partials as two tuples, in the same two slots:

    out = f(x_1, ..., x_n)   out._a  = (x_1, ..., x_n)
                             out._da = (df/dx_1, ..., df/dx_n)

so its backward step is  x_i.grad += (df/dx_i) * out.grad  for every i. A dot product of
n terms is then one node instead of 2n - 1 binary ones, and a binary node is unchanged.
The topological sort is iterative, so a graph's depth is limited by memory, not by the
recursion limit.

Gradient semantics follow PyTorch: a leaf's `.grad` accumulates across `backward()`
calls until it is zeroed (`zero_grad`); an interior node's `.grad` holds the gradient
from the latest call only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import reduce as _reduce
from numbers import Real
from operator import add as _add
from operator import mul as _mul
from typing import Any, Union

Number = int | float
Scalar = Union["Value", int, float]

_new = object.__new__
_exp = math.exp
_log = math.log
_tanh = math.tanh
_sqrt = math.sqrt
_erf = math.erf
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
#: below this |y| a float is subnormal (or 0) and has lost precision; see _power_partial.
_SMALLEST_NORMAL = sys.float_info.min

#: What `float(v)` (and so `math.exp(v)`, `math.tanh(v)`, ...) says instead of dropping the gradient.
_NO_FLOAT = (
    "an engine.Value is not converted to float implicitly: math.exp(v), math.tanh(v), float(v) ... would "
    "return a plain float and silently give a zero gradient. Use the engine's functions, which work on "
    "floats and Values alike (engine.exp, engine.log, engine.sqrt, engine.tanh, engine.sigmoid, engine.relu, "
    "engine.erf, and abs(v) for math.fabs), or v.data when you want the number without its gradient"
)


def _check_number(data: object, what: str) -> float:
    """Return `data` as a float, or raise TypeError naming its type (bool is refused)."""
    if isinstance(data, Real) and not isinstance(data, bool):
        return float(data)
    raise TypeError(f"{what} must be a real number (int or float), not {type(data).__name__}: {data!r}")


def _name(v: Value) -> str:
    return repr(v.label) if v.label else f"(unlabelled {v.op or 'leaf'} node)"


def _power_partial(x: float, y: float, p: float) -> float:
    """d(x**p)/dx = p x^(p-1), usually computed as p (y / x) with y = x**p already at hand.

    Dividing the known power by x instead of raising x to p - 1 saves a pow and cannot
    overflow where the derivative itself is finite (e.g. x = 1e-200, p = -1.5). It is wrong
    where y itself has lost digits: when x**p underflows to 0 or to a subnormal (below
    sys.float_info.min, where a float keeps fewer than 53 bits), y / x inherits that loss
    (1e-320 ** 1.01 would give a slope 22% low, 1e-300 ** 1.1 a slope of 0). There p x^(p-1)
    is computed directly; it cannot overflow then, since |x^p| < 2.2e-308 bounds x^(p-1).
    At x == 0 (p > 0 here; 0 to a negative power is refused earlier) the slope is 0 for p > 1,
    1 for p == 1 and infinite for 0 < p < 1, as in PyTorch; x**0 is the constant 1, slope 0.
    """
    if p == 0.0:
        return 0.0
    if x != 0.0:
        if -_SMALLEST_NORMAL < y < _SMALLEST_NORMAL:
            slope: float = p * x ** (p - 1.0)  # real: a negative x comes with an integer p only
            return slope
        return p * (y / x)
    return 0.0 if p > 1.0 else (1.0 if p == 1.0 else math.inf)


def _power(base: Value, x: float, p: float) -> float:
    """x ** p, with an overflow reported against the node it happened at."""
    try:
        y: float = x**p  # real: __pow__ refuses a negative x with a non-integer p
        return y
    except OverflowError:
        raise OverflowError(f"{x!r} ** {p!r} at {_name(base)} overflows a float") from None


class Value:
    """A scalar in a computation graph.

    Attributes:
        data: the number this node holds (float).
        grad: d(root)/d(this node) after `root.backward()` (float).
        label: a name for display (`repr`, `viz.draw`); "" if none.
        op: the name of the op that produced this node; "" for a leaf.
        parents: the nodes this one was computed from (tuple: 0 to 2 entries, any number for
            a fused node such as `dot` or `total`; a Value used twice appears twice).
        partials: the local derivatives d(this)/d(parent), in the order of `parents`.
    """

    # One small object per node. `_a`/`_b` are the parents (None when absent) and
    # `_da`/`_db` the local partial derivatives with respect to them. A fused node (see
    # `fused`) stores a tuple of parents in `_a` and the tuple of their partials in `_da`,
    # with `_b` None: no extra slot, so a binary node stays as small as before.
    __slots__ = ("data", "grad", "label", "op", "_a", "_b", "_da", "_db")
    data: float
    grad: float
    label: str
    op: str
    _a: Value | tuple[Value, ...] | None
    _b: Value | None
    _da: float | tuple[float, ...]  # a tuple exactly when `_a` is one (a fused node)
    _db: float

    def __init__(self, data: Number, label: str = "") -> None:
        if type(data) is not float:
            data = _check_number(data, "Value data")
        if type(label) is not str:
            raise TypeError(f"Value label must be a str, not {type(label).__name__}")
        self.data = data
        self.grad = 0.0
        self.label = label
        self.op = ""
        self._a = None
        self._b = None
        self._da = 0.0
        self._db = 0.0

    # ----------------------------------------------------------------- structure
    @property
    def parents(self) -> tuple[Value, ...]:
        """The operands this node was computed from, in operand order."""
        a = self._a
        if a is None:
            return ()
        if isinstance(a, tuple):  # a fused node
            return a
        if self._b is None:
            return (a,)
        return (a, self._b)

    @property
    def partials(self) -> tuple[float, ...]:
        """Local derivatives d(self)/d(parent), one per entry of `parents`."""
        if self._a is None:
            return ()
        da = self._da
        if isinstance(da, tuple):  # a fused node
            return da
        if self._b is None:
            return (da,)
        return (da, self._db)

    def __repr__(self) -> str:
        label = f"label={self.label!r}, " if self.label else ""
        return f"Value({label}data={self.data!r}, grad={self.grad!r})"

    def __float__(self) -> float:
        """Refused: `math.exp(v)`, `float(v)`, `math.tanh(v)` ... would return a plain float and
        cut the graph there, so the gradient would be silently 0. The number is `.data`."""
        raise TypeError(_NO_FLOAT)

    def __bool__(self) -> bool:
        """Refused: `if v:` would ask whether the node exists (always True, even for Value(0.0)),
        not whether its number is nonzero. Compare the number instead: `if v.data:`, `if v > 0:`."""
        raise TypeError(
            f"the truth of an engine.Value is ambiguous (Value(0.0) is a node, not False): compare its number "
            f"instead, e.g. `if v.data != 0:` or `if v > 0:` (got {self!r})"
        )

    def __round__(self, ndigits: int | None = None) -> float | int:
        """round(v) and round(v, n) round the number `.data`, like round(v.data, n): the result is a
        plain int or float, not a graph node (rounding is flat almost everywhere, so no gradient
        would flow through it anyway)."""
        return round(self.data, ndigits)

    def __abs__(self) -> Value:
        """|x|;  d/dx = sign(x), and 0 at x == 0 and at NaN (the subgradient PyTorch uses)."""
        x = self.data
        slope = -1.0 if x < 0.0 else (1.0 if x > 0.0 else 0.0)  # 0 at 0 and at NaN, as torch's sgn
        return self._unary(-x if x < 0.0 else x + 0.0, "abs", slope)

    # Ordering compares data only (no gradient flows through a comparison). `==` is
    # deliberately left as identity so Values stay hashable graph nodes.
    def __lt__(self, other: Scalar) -> bool:
        return self.data < (other.data if type(other) is Value else other)

    def __le__(self, other: Scalar) -> bool:
        return self.data <= (other.data if type(other) is Value else other)

    def __gt__(self, other: Scalar) -> bool:
        return self.data > (other.data if type(other) is Value else other)

    def __ge__(self, other: Scalar) -> bool:
        return self.data >= (other.data if type(other) is Value else other)

    # ----------------------------------------------------------------- binary ops
    # Each op builds its node field by field instead of calling __init__: that saves a
    # Python frame per node, which is most of the forward cost of a scalar engine.

    def __add__(self, other: Scalar) -> Value:
        """a + b;  d/da = 1,  d/db = 1."""
        if type(other) is not Value and not isinstance(other, Value):
            if not isinstance(other, Real):
                return NotImplemented  # not a number (a numpy array, ...): its reflected op runs, as for array * v
            other = Value(other)
        out = _new(Value)
        out.data = self.data + other.data
        out.grad = 0.0
        out.label = ""
        out.op = "+"
        out._a = self
        out._b = other
        out._da = 1.0
        out._db = 1.0
        return out

    def __radd__(self, other: Number) -> Value:
        return Value(other) + self

    def __sub__(self, other: Scalar) -> Value:
        """a - b;  d/da = 1,  d/db = -1.  (One node, not a + (-b): half the graph.)"""
        if type(other) is not Value and not isinstance(other, Value):
            if not isinstance(other, Real):
                return NotImplemented  # not a number (a numpy array, ...): its reflected op runs, as for array * v
            other = Value(other)
        out = _new(Value)
        out.data = self.data - other.data
        out.grad = 0.0
        out.label = ""
        out.op = "-"
        out._a = self
        out._b = other
        out._da = 1.0
        out._db = -1.0
        return out

    def __rsub__(self, other: Number) -> Value:
        return Value(other) - self

    def __mul__(self, other: Scalar) -> Value:
        """a * b;  d/da = b,  d/db = a."""
        if type(other) is not Value and not isinstance(other, Value):
            if not isinstance(other, Real):
                return NotImplemented  # not a number (a numpy array, ...): its reflected op runs, as for array * v
            other = Value(other)
        out = _new(Value)
        out.data = self.data * other.data
        out.grad = 0.0
        out.label = ""
        out.op = "*"
        out._a = self
        out._b = other
        out._da = other.data
        out._db = self.data
        return out

    def __rmul__(self, other: Number) -> Value:
        return Value(other) * self

    def __truediv__(self, other: Scalar) -> Value:
        """a / b;  d/da = 1/b,  d/db = -a/b**2."""
        if type(other) is not Value and not isinstance(other, Value):
            if not isinstance(other, Real):
                return NotImplemented  # not a number (a numpy array, ...): its reflected op runs, as for array * v
            other = Value(other)
        b = other.data
        if b == 0.0:
            raise ZeroDivisionError(f"division by zero: the divisor {_name(other)} is 0.0")
        inv = 1.0 / b
        out = _new(Value)
        out.data = q = self.data * inv
        out.grad = 0.0
        out.label = ""
        out.op = "/"
        out._a = self
        out._b = other
        out._da = inv
        out._db = -q * inv
        return out

    def __rtruediv__(self, other: Number) -> Value:
        return Value(other) / self

    def __pow__(self, other: Scalar) -> Value:
        """x ** p.

        Constant p:  d/dx = p x^(p-1).
        Value p:     d/dx = p x^(p-1),  d/dp = x^p ln x  (needs x > 0, or x == 0 with p > 0,
                     where the limit x^p ln x -> 0 is used).
        """
        x = self.data
        if isinstance(other, Value):
            p = other.data
            if x < 0.0 or (x == 0.0 and p <= 0.0):
                raise ValueError(
                    f"x ** p with p a Value needs x > 0 (or x == 0 and p > 0), "
                    f"got x = {x!r} at {_name(self)} and p = {p!r}"
                )
            y = _power(self, x, p)
            out = _new(Value)
            out.data = y
            out.grad = 0.0
            out.label = ""
            out.op = "**"
            out._a = self
            out._b = other
            out._da = _power_partial(x, y, p)
            out._db = y * _log(x) if x > 0.0 else 0.0
            return out
        if not isinstance(other, Real):
            return NotImplemented  # as in the other binary ops: v ** array is array's to answer
        p = _check_number(other, "exponent")
        if x < 0.0 and not p.is_integer():
            raise ValueError(
                f"x ** {p!r}: a negative base {x!r} at {_name(self)} has no real power with a non-integer exponent"
            )
        if x == 0.0 and p < 0.0:
            raise ValueError(f"x ** {p!r}: the base is 0.0 at {_name(self)}, and 0 to a negative power is undefined")
        y = _power(self, x, p)
        return self._unary(y, "**" + (str(int(p)) if p.is_integer() else repr(p)), _power_partial(x, y, p))

    def __rpow__(self, other: Number) -> Value:
        return Value(other) ** self

    def __neg__(self) -> Value:
        """-a;  d/da = -1."""
        return self._unary(-self.data, "neg", -1.0)

    # ----------------------------------------------------------------- unary ops
    def _unary(self, data: float, op: str, local: float) -> Value:
        out = _new(Value)
        out.data = data
        out.grad = 0.0
        out.label = ""
        out.op = op
        out._a = self
        out._b = None
        out._da = local
        out._db = 0.0
        return out

    def exp(self) -> Value:
        """e^x;  d/dx = e^x."""
        try:
            y = _exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data!r}) at {_name(self)} overflows a float") from None
        return self._unary(y, "exp", y)

    def log(self) -> Value:
        """ln x;  d/dx = 1/x.  Defined for x > 0 only."""
        x = self.data
        if x <= 0.0:
            raise ValueError(f"log needs a positive input, got {x!r} at {_name(self)}")
        return self._unary(_log(x), "log", 1.0 / x)

    def sqrt(self) -> Value:
        """sqrt(x);  d/dx = 1 / (2 sqrt(x)).  Defined for x >= 0 (infinite slope at 0, -inf at -0.0)."""
        x = self.data
        if x < 0.0:
            raise ValueError(f"sqrt needs a non-negative input, got {x!r} at {_name(self)}")
        y = _sqrt(x)
        # 1/(2y) carries y's sign at a zero (sqrt(-0.0) = -0.0: slope -inf) and NaN through, as in PyTorch
        return self._unary(y, "sqrt", 0.5 / y if y != 0.0 else math.copysign(math.inf, y))

    def tanh(self) -> Value:
        """tanh(x);  d/dx = 1 - tanh(x)^2."""
        t = _tanh(self.data)
        return self._unary(t, "tanh", 1.0 - t * t)

    def sigmoid(self) -> Value:
        """s(x) = 1 / (1 + e^-x);  d/dx = s(x) (1 - s(x)).

        Evaluated as e^x / (1 + e^x) for x < 0 so that e^-x never overflows.
        """
        x = self.data
        if x >= 0.0:
            s = 1.0 / (1.0 + _exp(-x))
        else:
            e = _exp(x)
            s = e / (1.0 + e)
        return self._unary(s, "sigmoid", s * (1.0 - s))

    def relu(self) -> Value:
        """max(0, x);  d/dx = 1 for x > 0, else 0 (the subgradient at 0 is 0, as in PyTorch)."""
        x = self.data
        if x > 0.0:
            return self._unary(x, "relu", 1.0)
        if x != x:  # NaN stays NaN and passes its gradient through, as in PyTorch (its mask is "not <= 0")
            return self._unary(x, "relu", 1.0)
        return self._unary(0.0, "relu", 0.0)

    def erf(self) -> Value:
        """erf(x);  d/dx = 2/sqrt(pi) e^(-x^2)."""
        x = self.data
        return self._unary(_erf(x), "erf", _TWO_OVER_SQRT_PI * _exp(-x * x))

    # ----------------------------------------------------------------- backward
    def backward(self) -> None:
        """Fill `.grad` of every node this one depends on with d(self)/d(node).

        Interior nodes are reset first (they hold this call's gradient only); leaves
        accumulate, so call `zero_grad` on parameters between steps.
        """
        if self._a is None:  # a leaf: d(self)/d(self) = 1, accumulated like any leaf
            self.grad += 1.0
            return
        order = _interior_order(self)
        for v in order:
            v.grad = 0.0
        self.grad = 1.0
        # The chain rule, in reverse topological order: when a node is reached, every
        # node that consumes it has already added its share to its .grad. Only interior
        # nodes are in `order`, so every one has a first parent.
        for v in reversed(order):
            g = v.grad
            # Any: `_a` and `_da` are a tuple together (a fused node) or a Value and a float
            # together, a tie no checker follows; an isinstance per node would slow this loop.
            a: Any = v._a
            da: Any = v._da
            if type(a) is tuple:  # a fused node: one term per parent
                for p, d in zip(a, da):
                    p.grad += d * g
                continue
            a.grad += da * g
            b = v._b
            if b is not None:
                b.grad += v._db * g


# --------------------------------------------------------------------- fused nodes
#: False inside `unfused()`: dot and total then build binary nodes (for comparisons).
_fuse_ops = True


def fused(data: float, op: str, parents: tuple[Value, ...], partials: tuple[float, ...]) -> Value:
    """A node of many parents: `parents` and their local partials d(out)/d(parent), as two
    tuples of the same length (a Value may appear more than once; its terms add up)."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out.label = ""
    out.op = op
    out._a = parents
    out._b = None
    out._da = partials
    out._db = 0.0
    return out


def _float_of(x: object, op: str, what: str, i: int) -> float:
    if type(x) is float:
        return x
    if isinstance(x, Real) and not isinstance(x, bool):
        return float(x)
    raise TypeError(f"engine.{op}: {what}[{i}] must be a number or an engine.Value, not {type(x).__name__}: {x!r}")


def _row(xs: Any, op: str, what: str) -> Sequence[Any]:
    """`xs` as a sequence of entries (a list or tuple as it is, another iterable as a list);
    TypeError naming the op for a single number, a Value, a string or a mapping."""
    if type(xs) is list or type(xs) is tuple:
        return xs
    if isinstance(xs, (Value, str, bytes, dict)) or not hasattr(xs, "__iter__"):
        raise TypeError(
            f"engine.{op}: {what} must be a list (or tuple) of numbers or engine.Values, "
            f"not {type(xs).__name__}: {xs!r}"[:300]
        )
    return list(xs)


def dot(ws: Sequence[Scalar], xs: Sequence[Scalar]) -> Scalar:
    """sum_i w_i x_i, as one node;  d/dw_i = x_i,  d/dx_i = w_i.

    The parents are the Values among `ws`, then those among `xs`, in order. Entries may be
    floats or Values, mixed: a float is a constant and gets no edge. On floats only the
    result is a float. The sum runs left to right, so it is the same number as
    w_0 x_0 + w_1 x_1 + ... built from binary nodes.
    """
    # the entries as given (unchecked): the fast path tries them as Values, _dot_mixed checks each
    w_row, x_row = _row(ws, "dot", "ws"), _row(xs, "dot", "xs")
    n = len(w_row)
    if len(x_row) != n:
        raise ValueError(f"engine.dot: ws and xs must have the same length, got {n} and {len(x_row)}")
    if not _fuse_ops:
        return _binary_sum([w * x for w, x in zip(w_row, x_row)])
    if n == 0:
        return 0.0
    try:  # the common case, every entry a Value: comprehensions, no per-entry branches
        wd = [w.data for w in w_row]
        xd = [x.data for x in x_row]
        data = _reduce(_add, map(_mul, wd, xd))  # left to right, from the first product
    except (AttributeError, TypeError):  # some entries are numbers (constants, or a float forward)
        return _dot_mixed(w_row, x_row)
    if type(data) is not float:  # numpy scalars have a .data too (a buffer): not Values
        return _dot_mixed(w_row, x_row)
    return fused(data, "dot", (*w_row, *x_row), (*xd, *wd))


def _dot_mixed(ws: Sequence[Scalar], xs: Sequence[Scalar]) -> Scalar:
    """`dot` where some entries are numbers: they are constants and get no edge."""
    w_parents: list[Value] = []
    x_parents: list[Value] = []
    w_partials: list[float] = []
    x_partials: list[float] = []
    acc = 0.0
    for i in range(len(ws)):
        w = ws[i]
        x = xs[i]
        wd = w.data if isinstance(w, Value) else _float_of(w, "dot", "ws", i)
        xd = x.data if isinstance(x, Value) else _float_of(x, "dot", "xs", i)
        if isinstance(w, Value):
            w_parents.append(w)
            w_partials.append(xd)
        if isinstance(x, Value):
            x_parents.append(x)
            x_partials.append(wd)
        acc = wd * xd if i == 0 else acc + wd * xd
    if not w_parents and not x_parents:
        return acc
    return fused(acc, "dot", (*w_parents, *x_parents), (*w_partials, *x_partials))


def total(xs: Iterable[Scalar]) -> Scalar:
    """sum_i x_i, as one node;  d/dx_i = 1.

    (Named `total`, not `sum`, so that it never shadows the built-in.) Floats are constants
    and get no edge; on floats only the result is a float. Left to right, as `+` would add.
    """
    xs = list(_row(xs, "total", "xs"))
    if not _fuse_ops:
        return _binary_sum(xs)
    parents: list[Value] = []
    acc = 0.0
    for i, x in enumerate(xs):
        if isinstance(x, Value):
            acc += x.data
            parents.append(x)
        else:
            acc += _float_of(x, "total", "xs", i)
    if not parents:
        return acc
    return fused(acc, "sum", tuple(parents), (1.0,) * len(parents))


def _binary_sum(terms: list[Scalar]) -> Scalar:
    """t_0 + t_1 + ... with binary nodes (the unfused form of dot and total)."""
    if not terms:
        return 0.0
    acc = terms[0]
    for t in terms[1:]:
        acc = acc + t
    return acc


@contextmanager
def unfused() -> Iterator[None]:
    """Inside this block `dot` and `total` build chains of binary nodes instead of one fused
    node: the same numbers, the graph today's two-parent engine would build (for benchmarks
    and for comparing the two)."""
    global _fuse_ops
    before = _fuse_ops
    _fuse_ops = False
    try:
        yield
    finally:
        _fuse_ops = before


def _interior_order(root: Value) -> list[Value]:
    """The interior (non-leaf) nodes `root` depends on, each after its interior parents.

    Leaves need no place in the order (they pass nothing on), so they are skipped. A node
    is marked visited by parking a fresh sentinel in its `.grad` (every interior `.grad`
    is reset right after), which is cheaper than a set of visited nodes. A fused node
    remembers (in `resume`) how far through its parents it got, so each parent is looked
    at once however many there are.
    """
    mark: Any = object()  # parked in float slots on purpose (see above), hence Any
    root.grad = mark
    order: list[Value] = []
    emit = order.append
    stack = [root]
    push = stack.append
    pop = stack.pop
    resume: dict[Value, int] = {}  # fused node -> index of the next parent to look at
    try:
        while stack:
            v = stack[-1]
            a: Any = v._a  # a fused tuple or one parent (a Value: only interior nodes are stacked)
            if type(a) is tuple:  # a fused node: go on from the parent it stopped at
                i, n = resume.get(v, 0), len(a)
                while i < n and (a[i]._a is None or a[i].grad is mark):
                    i += 1
                if i < n:
                    p = a[i]
                    p.grad = mark
                    push(p)
                    resume[v] = i + 1
                    continue
                pop()
                emit(v)
                continue
            if a._a is not None and a.grad is not mark:
                a.grad = mark
                push(a)
                continue
            b = v._b
            if b is not None and b._a is not None and b.grad is not mark:
                b.grad = mark
                push(b)
                continue
            pop()
            emit(v)
    except BaseException:  # e.g. Ctrl-C: leave no sentinel behind in a .grad
        for v in order + stack:
            v.grad = 0.0
        raise
    return order


def topological_order(root: Value) -> list[Value]:
    """All nodes `root` depends on (itself included), each after its parents.

    Iterative depth-first search with an explicit stack: a node is emitted once all its
    parents have been emitted. No recursion, so the depth of the graph does not matter.
    """
    order: list[Value] = []
    seen = {root}
    stack = [root]
    push = stack.append
    mark = seen.add
    resume: dict[Value, int] = {}  # fused node -> index of the next parent to look at
    while stack:
        v = stack[-1]
        a: Any = v._a  # a fused tuple, one parent, or None (a leaf)
        if type(a) is tuple:  # a fused node: go on from the parent it stopped at
            i, n = resume.get(v, 0), len(a)
            while i < n and a[i] in seen:
                i += 1
            if i < n:
                mark(a[i])
                push(a[i])
                resume[v] = i + 1
                continue
            stack.pop()
            order.append(v)
            continue
        if a is not None and a not in seen:
            mark(a)
            push(a)
            continue
        b = v._b
        if b is not None and b not in seen:
            mark(b)
            push(b)
            continue
        stack.pop()
        order.append(v)
    return order


def zero_grad(values: Iterable[Value]) -> None:
    """Set `.grad = 0.0` on every Value in `values` (typically a model's parameters)."""
    for v in values:
        v.grad = 0.0
