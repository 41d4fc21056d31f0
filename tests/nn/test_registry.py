"""Every registered piece, every case: graph == manual (EXACT) and both == numeric (NUMERIC);
discovery finds every piece by itself, and every forward/backward pair is covered by a piece.

The tolerances are named in `engine.gradcheck` (EXACT: same float64 math, rounding only;
NUMERIC: central differences with eps = 1e-6) unless a piece overrides them with a reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import InputError, UnknownNameError
from nn.activations import tanh_backward, tanh_forward, tanh_loops
from nn.linear import linear_backward, linear_forward, linear_loops
from nn.registry import Case, Piece, all_pieces, check_piece, get_piece, walk_modules

ROOT = Path(__file__).resolve().parents[2]
ALL = [(p, c) for p in all_pieces() for c in p.cases]
#: every piece at its first case in the fast subset (`-m "not slow"`); its other cases are `slow`
ALL_MARKED = [
    pytest.param(p, c, id=f"{p.name}-{c.name}", marks=() if i == 0 else pytest.mark.slow)
    for p in all_pieces()
    for i, c in enumerate(p.cases)
]
#: the library packages whose forward/backward pairs must all be checked by some piece.
LIBRARY_PACKAGES = ("engine", "nn", "models", "viz")
#: a fresh interpreter importing every module takes about a second; the bound only catches a hang.
SUBPROCESS_TIMEOUT_SECONDS = 120

Pair = tuple[Callable[..., Any], Callable[..., Any]]


def pairs_defined_in(modules: Iterable[types.ModuleType]) -> list[tuple[str, Pair]]:
    """("module:X", (X_forward, X_backward)) for every pair of module-level functions a module defines
    (imported names do not count: the pair belongs to the module that defines it)."""
    found = []
    for mod in modules:
        funcs = {n: f for n, f in vars(mod).items() if inspect.isfunction(f) and f.__module__ == mod.__name__}
        for name, fwd in sorted(funcs.items()):
            if name.endswith("_forward") and name[: -len("_forward")] + "_backward" in funcs:
                stem = name[: -len("_forward")]
                found.append((f"{mod.__name__}:{stem}", (fwd, funcs[stem + "_backward"])))
    return found


def uncovered(modules: Iterable[types.ModuleType], pieces: Iterable[Piece]) -> list[str]:
    """The pairs of `modules` that no piece covers (by identity: its forward/backward, or its `covers`)."""
    covered = {(id(f), id(b)) for p in pieces for f, b in p.covered_pairs()}
    return [where for where, (f, b) in pairs_defined_in(modules) if (id(f), id(b)) not in covered]


def library_modules() -> list[types.ModuleType]:
    return [sys.modules[name] for pkg in LIBRARY_PACKAGES for name in walk_modules(pkg)]


def false_covers(piece: Piece) -> list[str]:
    """The functions in `piece.covers` that running its forward and backward (first case) never calls.

    Every binding of each claimed function in the library's modules (its own module and any
    `from ... import` of it) is swapped for a counting wrapper while the piece runs.
    """
    claimed = [f for pair in piece.covers for f in pair]
    calls = {id(f): 0 for f in claimed}
    swapped: list[tuple[types.ModuleType, str, Any]] = []

    def spy(f: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[id(f)] += 1
            return f(*args, **kwargs)

        return counted

    spies = {id(f): spy(f) for f in claimed}
    try:
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").split(".")[0] not in LIBRARY_PACKAGES + (__name__.split(".")[0],):
                continue
            for attr, value in list(vars(mod).items()):
                if any(value is f for f in claimed):
                    swapped.append((mod, attr, value))
                    setattr(mod, attr, spies[id(value)])
        inputs, static = piece.cases[0].make(np.random.default_rng(0))
        out, cache = piece.forward(*inputs.values(), **static)
        piece.backward(np.ones(np.shape(out)), cache)
    finally:
        for mod, attr, value in swapped:
            setattr(mod, attr, value)
    return [f"{piece.name}: covers {f.__module__}.{f.__name__} but never calls it" for f in claimed if not calls[id(f)]]


# ------------------------------------------------------------------------------ discovery
def test_discovery_needs_no_import_of_the_defining_modules() -> None:
    """In a fresh interpreter, `nn.all_pieces()` alone finds nn's and models' pieces, and skips the CLI."""
    probe = (
        "import sys, nn\n"
        "names = [p.name for p in nn.all_pieces()]\n"
        "print(' '.join(names))\n"
        "print('models.cli' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS
    )
    assert res.returncode == 0, res.stderr
    names, cli_loaded = res.stdout.strip().splitlines()
    assert {"linear", "attention", "mlp"} <= set(names.split())
    assert cli_loaded == "False"
    assert not [n for n in walk_modules("models") if n.startswith("models.cli") or n.endswith("__main__")]


def test_unknown_piece_is_an_input_error_and_a_key_error() -> None:
    with pytest.raises(UnknownNameError, match="no_such_piece.*linear") as err:
        get_piece("no_such_piece")
    assert isinstance(err.value, InputError) and isinstance(err.value, KeyError)
    assert str(err.value).startswith("no piece named 'no_such_piece'")  # a sentence, not KeyError's repr


# ------------------------------------------------------------------------------ coverage
def test_every_forward_backward_pair_is_covered_by_a_piece() -> None:
    """A manual pair no piece checks would escape the three-way tests, the referee and `twograd check`."""
    modules = library_modules()
    assert len(pairs_defined_in(modules)) >= len(all_pieces())  # the walk found the pairs at all
    missing = uncovered(modules, all_pieces())
    assert not missing, f"forward/backward pairs no registered piece covers (register one, or add covers=): {missing}"


def test_an_unregistered_pair_is_reported() -> None:
    mod = types.ModuleType("nn.fake_layer")

    def fake_forward(x: Any) -> Any:
        return x, None

    def fake_backward(dout: Any, cache: Any) -> Any:
        return (dout,)

    fake_forward.__module__ = fake_backward.__module__ = mod.__name__
    mod.fake_forward, mod.fake_backward = fake_forward, fake_backward
    mod.tanh_forward = tanh_forward  # imported, not defined here: not this module's pair
    assert uncovered([mod], all_pieces()) == ["nn.fake_layer:fake"]
    piece = Piece("fake", loops=lambda x: x, forward=fake_forward, backward=fake_backward, cases=(), torch_skip="test")
    assert uncovered([mod], [piece]) == []


def _linear_then_tanh_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any]:
    z, lin_cache = linear_forward(x, W, b)
    y, act_cache = tanh_forward(z)
    return y, (lin_cache, act_cache)


def _linear_then_tanh_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    lin_cache, act_cache = cache
    (dz,) = tanh_backward(dout, act_cache)
    return linear_backward(dz, lin_cache)


def _linear_then_tanh(covers: tuple[Pair, ...]) -> Piece:
    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"x": rng.standard_normal((2, 3)), "W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}, {}

    return Piece(
        "linear_then_tanh",
        loops=lambda x, W, b: tanh_loops(linear_loops(x, W, b)),
        forward=_linear_then_tanh_forward,
        backward=_linear_then_tanh_backward,
        cases=(Case("2x3->4", make),),
        covers=covers,
        torch_skip="a test piece",
    )


def test_covers_claims_are_checked() -> None:
    """A true `covers=` claim passes (the pairs are called, and the piece checks three ways); a false one is caught."""
    honest = _linear_then_tanh(((linear_forward, linear_backward), (tanh_forward, tanh_backward)))
    assert false_covers(honest) == []
    assert all(r.passed for r in check_piece(honest))
    from nn.activations import sigmoid_backward, sigmoid_forward

    liar = _linear_then_tanh(((sigmoid_forward, sigmoid_backward),))
    assert false_covers(liar) == [
        f"linear_then_tanh: covers nn.activations.sigmoid_{d} but never calls it" for d in ("forward", "backward")
    ]
    with pytest.raises(ValueError, match="covers= takes"):
        _linear_then_tanh((linear_forward,))  # type: ignore[arg-type]


def test_every_registered_covers_claim_is_true() -> None:
    claims = [p for p in all_pieces() if p.covers]
    problems = [msg for p in claims for msg in false_covers(p)]
    assert not problems, problems


def test_registry_is_populated() -> None:
    names = {p.name for p, _ in ALL}
    # The nn issue's pieces; a piece missing from here would silently escape every check.
    expected = {
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
        "layer_norm",
        "embedding",
        "residual",
        "dropout",
        "attention",
        "mha",
        "mlp",
    }
    assert expected <= names, f"missing pieces: {sorted(expected - names)}"


@pytest.mark.parametrize("piece,case", ALL_MARKED)
def test_three_way(piece, case) -> None:
    (report,) = check_piece(piece, case)
    assert report.passed, str(report)
    # Every differentiable input appears with all three comparisons.
    inputs, _ = case.make(np.random.default_rng(0))
    for name in inputs:
        pairs = {(r.left, r.right) for r in report.rows if r.input == name}
        assert pairs == {("graph", "manual"), ("manual", "numeric"), ("graph", "numeric")}, name


@pytest.mark.parametrize(
    "piece", all_pieces()[:1] + [p for p in all_pieces() if p.name == "linear"], ids=lambda p: p.name
)
def test_a_wrong_backward_is_caught(piece) -> None:
    """Swap in a backward that is off by 1% at one element: the check must fail and say where."""

    def broken(dout, cache):
        grads = [np.array(g, dtype=np.float64, copy=True) for g in piece.backward(dout, cache)]
        flat = grads[-1].reshape(-1)
        flat[flat.size // 2] = flat[flat.size // 2] * 1.01 + 1e-3
        return tuple(grads)

    bad = dataclasses.replace(piece, backward=broken)
    case = max(bad.cases, key=lambda c: sum(a.size for a in c.make(np.random.default_rng(0))[0].values()))
    (report,) = check_piece(bad, case)
    assert not report.passed
    worst = report.failures[0]
    names = list(case.make(np.random.default_rng(0))[0])
    assert worst.input == names[-1]
    shape = case.make(np.random.default_rng(0))[0][names[-1]].shape
    assert worst.worst_index == np.unravel_index(int(np.prod(shape)) // 2, shape)
    assert piece.name in report.title and "FAIL" in str(report)


def test_a_one_input_backward_that_returns_a_bare_array_is_told_to_return_a_tuple() -> None:
    """It said "backward returned 5 gradients for 1 inputs" (the array's length), which hid the cause."""
    from nn.registry import check_three_way

    def double_loops(x):
        return [2.0 * xi for xi in x]

    def double_forward(x):
        return 2.0 * x, None

    def double_backward(dy, cache):
        return 2.0 * dy  # should be (2.0 * dy,)

    with pytest.raises(
        ValueError,
        match=r"^double: backward must return a tuple with one gradient per input \['x'\], "
        r"got a ndarray; with one input, return \(x_grad,\) not x_grad$",
    ):
        check_three_way(double_loops, double_forward, double_backward, {"x": np.ones(5)}, name="double")
    report = check_three_way(
        double_loops, double_forward, lambda dy, cache: (2.0 * dy,), {"x": np.ones(5)}, name="double"
    )
    assert report.passed


def test_the_output_row_shows_no_numeric_value_instead_of_nan() -> None:
    """The output row compares graph with manual only; its "numeric there" printed an unexplained nan."""
    (report,) = check_piece(get_piece("tanh"), get_piece("tanh").cases[0])
    output_line = next(line for line in str(report).splitlines() if line.startswith("output"))
    assert "nan" not in output_line and output_line.split()[-4] == "-"  # numeric there, then atol rtol ok
    assert "numeric" not in report.rows[0].values and report.rows[0].input == "output"


def test_the_fast_subset_checks_every_piece_at_one_case() -> None:
    """`pytest -m "not slow"` must still check every registered piece three ways: its first case is not slow."""
    fast = [param.values[0].name for param in ALL_MARKED if not param.marks]
    assert sorted(fast) == sorted(p.name for p in all_pieces())
