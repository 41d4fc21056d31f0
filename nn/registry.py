"""One registry of differentiable pieces, and the three-way check that judges each.

A *piece* is written three ways (see DESIGN.md, "The three ways"):

* `loops(*inputs, **static)`: explicit Python loops over nested lists of scalars. It runs on
  floats (reference forward) and on `engine.Value`s (the engine gives gradients).
* `forward(*inputs, **static) -> (out, cache)` and `backward(dout, cache) -> (d<input>, ...)`:
  numpy with a hand-derived backward, one gradient per differentiable input, in order.
* numeric: central differences of the manual forward, from `engine`.

and, as an outside referee, once more with PyTorch ops: `Piece.torch` (or a reason in
`Piece.torch_skip` why there is none). The library never imports torch; the tests pass the
module in (see `Piece`).

To check gradients of a tensor-valued piece we reduce its output to a scalar with a
fixed random weighting R of the output's shape:

    L = sum_i out_i * R_i        so that   dL/dout = R

The graph path backpropagates from L, the manual path calls `backward(R, cache)`, the
numeric path differences L. The three must agree (`engine.EXACT`, `engine.NUMERIC`).
tests/nn/test_torch_referee.py reduces torch's output by the same kind of weighting and
compares torch's forward and autograd gradients with the manual pair.

Registering a piece (`register(Piece(...))`, done by the module that defines it) is all it
takes for the parametrized three-way tests (tests/nn/test_registry.py), the torch referee test
(tests/nn/test_torch_referee.py), the non-finite `dout` test (tests/nn/test_nn_core.py) and
`twograd check` to cover it.

Discovery: `all_pieces()` imports every module of the packages in `PIECE_PACKAGES` (`nn` and
`models`), walking them, so no list of modules is kept by hand: a piece registered anywhere in
them is found. `models` is named by string only (nn never imports models in code); when it is
not importable, or is some other project's `models` (not next to this `nn`), nn's pieces are
still found and nothing else is imported. The command-line package (`models.cli`)
and `__main__` modules are skipped: they define no pieces, and importing them has side effects.

Coverage: every `X_forward`/`X_backward` pair defined in a library module must be covered by
a piece (tests/nn/test_registry.py checks it): a piece covers the pair that is its own
`forward`/`backward`, and the pairs it lists in `covers` (ones its forward and backward call;
the test checks that they really are called).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import (
    EXACT,
    NUMERIC,
    GradientReport,
    Tolerance,
    UnknownNameError,
    Value,
    compare_gradients,
    graph_gradients,
    numerical_gradient_arrays,
)
from engine.gradcheck import _flatten

Inputs = dict[str, np.ndarray]
Static = dict[str, Any]
#: a case's maker: `make(rng) -> (inputs, static)` (see `Case`)
CaseMaker = Callable[[np.random.Generator], tuple[Inputs, Static]]


@dataclass(frozen=True)
class Case:
    """One set of shapes for a piece: `make(rng) -> (inputs, static)`.

    `inputs` maps each differentiable input's name to a float64 array, in the order the
    piece's functions take them; `static` holds keyword arguments that are not
    differentiated (integer targets, masks, eps, seeds).
    """

    name: str
    make: CaseMaker


@dataclass(frozen=True)
class Piece:
    """A differentiable piece written three ways (see the module docstring), plus its torch referee.

    `torch` is the same function written with PyTorch ops, called by the tests as

        out = piece.torch(torch, *input_tensors, **static)

    `torch` (the first argument) is the torch module itself, passed in by the caller: library
    code never imports torch, so `nn` and `models` run without it. `input_tensors` are the
    case's inputs as float64 tensors with requires_grad, in argument order; the function
    returns the output tensor (autograd gives the gradients). Convention for `static`: the
    caller converts every numpy array in it to a tensor (integer arrays -> int64 ("long"),
    boolean arrays -> bool, float arrays -> float64) and passes every other value (ints,
    floats, strings, None) unchanged; the function may rely on that and never converts.

    A piece that has no faithful torch counterpart leaves `torch` None and says why in
    `torch_skip` (e.g. dropout: torch draws its mask from its own generator). Exactly one of
    the two is required: constructing a Piece with neither, or both, raises ValueError.
    """

    name: str
    loops: Callable[..., Any]
    forward: Callable[..., tuple[Any, Any]]
    #: one gradient per input; a None (an absent bias's, in a signature like mha_backward's) fails the check
    backward: Callable[[Any, Any], tuple[np.ndarray | None, ...]]
    cases: tuple[Case, ...]
    description: str = ""
    #: tolerance of graph vs manual, and of each vs numeric; override only with a reason.
    exact: Tolerance = EXACT
    numeric: Tolerance = NUMERIC
    #: finite-difference step; a piece with a kink (ReLU) keeps its inputs away from it.
    eps: float = 1e-6
    tags: tuple[str, ...] = field(default_factory=tuple)
    #: the same function in torch ops, `torch(torch_module, *input_tensors, **static) -> tensor`.
    torch: Callable[..., Any] | None = None
    #: why there is no `torch` form; required (non-empty) when `torch` is None.
    torch_skip: str = ""
    #: other (X_forward, X_backward) pairs this piece's forward and backward call, so that the
    #: three-way check of this piece checks them too (e.g. a fused kernel built from them).
    covers: tuple[tuple[Callable[..., Any], Callable[..., Any]], ...] = ()

    def __post_init__(self) -> None:
        if self.torch is None and not self.torch_skip.strip():
            raise ValueError(
                f"piece {self.name!r}: give torch= (the same function in torch ops, for the referee test) "
                f"or torch_skip= (a reason why there is none)"
            )
        if self.torch is not None and not callable(self.torch):
            raise ValueError(f"piece {self.name!r}: torch must be callable, got {type(self.torch).__name__}")
        if self.torch is not None and self.torch_skip:
            raise ValueError(f"piece {self.name!r}: give torch= or torch_skip=, not both")
        for pair in self.covers:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(callable(f) for f in pair)):
                raise ValueError(
                    f"piece {self.name!r}: covers= takes (forward, backward) pairs of functions, got {pair!r}"
                )

    def covered_pairs(self) -> tuple[tuple[Callable[..., Any], Callable[..., Any]], ...]:
        """(forward, backward) function pairs this piece checks: its own, then those in `covers`."""
        return ((self.forward, self.backward),) + tuple(self.covers)


_REGISTRY: dict[str, Piece] = {}


def register(piece: Piece) -> Piece:
    """Add `piece` to the registry (names are unique) and return it."""
    if piece.name in _REGISTRY and _REGISTRY[piece.name] is not piece:
        raise ValueError(f"a piece named {piece.name!r} is already registered")
    _REGISTRY[piece.name] = piece
    return piece


#: Packages whose modules register pieces; `all_pieces()` imports every module in them.
PIECE_PACKAGES: tuple[str, ...] = ("nn", "models")
#: Modules (and packages, with all below them) that discovery never imports: the command line
#: defines no pieces, and `__main__` modules run a program when imported.
SKIP_MODULES: tuple[str, ...] = ("models.cli",)

_loaded: set[str] = set()


def _skipped(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "__main__" or any(
        module == s or module.startswith(s + ".") for s in SKIP_MODULES
    )


def walk_modules(package: str) -> list[str]:
    """Import `package` and every module below it (depth first, `SKIP_MODULES` left out); their names.

    An import that fails inside a module propagates: a broken module must not silently take
    its pieces out of every check.
    """
    names = [package]
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda i: i.name):
        name = f"{package}.{info.name}"
        if _skipped(name):
            continue
        if info.ispkg:
            names += walk_modules(name)
        else:
            importlib.import_module(name)
            names.append(name)
    return names


def load_package(package: str) -> None:
    """Import every module of `package` (once per process) so that the pieces they define register themselves."""
    if package in _loaded:
        return
    walk_modules(package)
    _loaded.add(package)


def _is_ours(package: str) -> bool:
    """True when `package` can be imported and sits next to this `nn` (so it is twograd's own,
    not some other project's package that happens to be called `models`)."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    here = Path(__file__).resolve().parent.parent
    return any(Path(loc).resolve().parent == here for loc in spec.submodule_search_locations)


def all_pieces() -> list[Piece]:
    """Every registered piece, by name, after importing every module of `PIECE_PACKAGES`."""
    for package in PIECE_PACKAGES:
        if _is_ours(package):
            load_package(package)
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def registered(name: str) -> Piece | None:
    """The piece `name` if a module imported so far registered it, else None (no discovery: quick for a
    caller that has imported the piece's own module, e.g. `twograd learn check`)."""
    return _REGISTRY.get(name)


def get_piece(name: str) -> Piece:
    """The piece called `name`; UnknownNameError (an InputError and a KeyError) listing the known names otherwise."""
    pieces = {p.name: p for p in all_pieces()}
    if name not in pieces:
        raise UnknownNameError(f"no piece named {name!r}; known pieces: {', '.join(sorted(pieces))}")
    return pieces[name]


# ---------------------------------------------------------------------------- checking
def _weighting(out: Any, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(np.shape(out))


def _as_list(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else x


def check_three_way(
    loops: Callable[..., Any],
    forward: Callable[..., tuple[Any, Any]],
    backward: Callable[[Any, Any], tuple[np.ndarray | None, ...]],
    inputs: Mapping[str, np.ndarray],
    static: Mapping[str, Any] | None = None,
    *,
    name: str = "",
    seed: int = 0,
    eps: float = 1e-6,
    exact: Tolerance = EXACT,
    numeric: Tolerance = NUMERIC,
) -> GradientReport:
    """Check a piece three ways and return the report (it does not raise; see `assert_three_way`).

    Rows: the output of `loops` on floats against `forward` (input "output", graph vs
    manual; there is no numeric output, so its "numeric there" is "-"), then, for each
    differentiable input, graph vs manual (`exact`) and manual vs numeric and graph vs
    numeric (`numeric`). `inputs` are float64 arrays in the order `forward` takes them;
    `static` keyword arguments go to all three unchanged. `backward(dout, cache)` returns a
    tuple with one gradient per input, in that order, also for one input: `return (dx,)`.
    """
    static = dict(static or {})
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    names = list(inputs)
    rng = np.random.default_rng(seed)

    out, cache = forward(*inputs.values(), **static)
    out = np.asarray(out, dtype=np.float64)
    R = _weighting(out, rng)

    # graph: loops on Values, reduced by the same weighting.
    def graph_loss(vals: dict[str, Any]) -> Value:
        res = loops(*(vals[n] for n in names), **static)
        leaves = _flatten(res)
        weights = R.reshape(-1).tolist()
        if len(leaves) != len(weights):
            raise ValueError(f"{name}: loops form gives {len(leaves)} outputs, forward gives shape {out.shape}")
        total = leaves[0] * weights[0]
        for leaf, w in zip(leaves[1:], weights[1:]):
            total = total + leaf * w
        return total if isinstance(total, Value) else Value(total)

    _, graph = graph_gradients(graph_loss, inputs)
    manual_tuple = backward(R.copy(), cache)
    if not isinstance(manual_tuple, (tuple, list)):  # a bare array has a len() too: its first axis
        raise ValueError(
            f"{name}: backward must return a tuple with one gradient per input {names}, got a {type(manual_tuple).__name__}"
            + (f"; with one input, return ({names[0]}_grad,) not {names[0]}_grad" if len(names) == 1 else "")
        )
    if len(manual_tuple) != len(names):
        raise ValueError(f"{name}: backward returned {len(manual_tuple)} gradients for {len(names)} inputs {names}")
    manual = {}
    for n, g in zip(names, manual_tuple):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != inputs[n].shape:
            raise ValueError(
                f"{name}: backward's gradient for {n!r} has shape {g.shape}, the input has {inputs[n].shape}"
            )
        manual[n] = g

    def numeric_loss(arrs: dict[str, np.ndarray]) -> float:
        o, _ = forward(*(arrs[n] for n in names), **static)
        return float(np.sum(np.asarray(o, dtype=np.float64) * R))

    numerical = numerical_gradient_arrays(numeric_loss, inputs, eps=eps)

    loops_out = np.asarray(_as_list(loops(*(inputs[n].tolist() for n in names), **static)), dtype=np.float64)
    fwd = compare_gradients(
        {"graph": {"output": loops_out.reshape(out.shape)}, "manual": {"output": out}},
        pairs=[("graph", "manual", exact)],
    )
    grads = compare_gradients(
        {"graph": graph, "manual": manual, "numeric": numerical},
        pairs=[("graph", "manual", exact), ("manual", "numeric", numeric), ("graph", "numeric", numeric)],
    )
    # the output row compares graph with manual only: it has no numeric value ("-" in the table)
    return GradientReport(rows=fwd.rows + grads.rows, title=name, sources=["graph", "manual", "numeric"])


def assert_three_way(*args: Any, **kwargs: Any) -> GradientReport:
    """`check_three_way`, raising AssertionError naming the piece, input and worst index.

    Use it in your own pytest tests to check a piece you wrote:

        assert_three_way(my_loops, my_forward, my_backward, {"x": x, "W": W}, name="mine")

    `my_backward(dout, cache)` returns a tuple of gradients in the order of the inputs, a
    one-element tuple `(dx,)` for a piece of one input (a bare array is refused by name).
    """
    report = check_three_way(*args, **kwargs)
    if not report.passed:
        r = report.failures[0]
        raise AssertionError(
            f"{report.title or 'piece'}: {r.input!r} disagrees at index {list(r.worst_index)} "
            f"({r.left} {r.values[r.left]!r} vs {r.right} {r.values[r.right]!r}, max abs {r.max_abs:.3e})\n{report}"
        )
    return report


def check_piece(piece: Piece, case: Case | None = None, seed: int = 0) -> list[GradientReport]:
    """Run the three-way check of `piece` on one case (default: all its cases)."""
    reports = []
    for c in [case] if case is not None else piece.cases:
        rng = np.random.default_rng(seed)
        inputs, static = c.make(rng)
        report = check_three_way(
            piece.loops,
            piece.forward,
            piece.backward,
            inputs,
            static,
            name=f"{piece.name}[{c.name}]",
            seed=seed + 1,
            eps=piece.eps,
            exact=piece.exact,
            numeric=piece.numeric,
        )
        reports.append(report)
    return reports
