"""Walkers over nested lists, the data of every loops form.

A loops-form tensor is nested Python lists (or tuples) whose leaves are scalars: floats or
`engine.Value`s. The loops forms in `nn` walk them in four ways, written once here:

    shape_of(x)                    the shape, read along the first entries (no checking)
    flatten(x)                     the leaves in row-major order
    map_leaves(f, *xs)             f applied leaf by leaf to one or more same-shape lists
    map_blocks(f, depth, *xs)      f applied to the sub-lists `depth` axes down (the blocks),
                                   e.g. depth = ndim - 1 gives the rows of the last axis

Validation (rectangular, finite numbers) is `nn._checks.nested_input`'s job; these walkers
assume it has been done.
"""

# Shape legend: "..." any nesting; a block is what is left after `depth` leading axes.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.gradcheck import _flatten

Nested = Any  # nested lists (or tuples) of floats or engine.Values

_NODES = (list, tuple)


def shape_of(x: Nested) -> tuple[int, ...]:
    """The shape of nested lists, read along the first entries: [[1, 2, 3], [4, 5, 6]] -> (2, 3).

    A scalar is (). An empty list ends the shape with 0. Raggedness is not detected here.
    """
    shape: list[int] = []
    probe = x
    while isinstance(probe, _NODES):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    return tuple(shape)


def flatten(x: Nested) -> list[Any]:
    """The leaves of nested lists in row-major order (a scalar is one leaf); iterative, any depth."""
    return _flatten(x)


def map_leaves(f: Callable[..., Any], *xs: Nested) -> Nested:
    """f(a, b, ...) for every position of same-shape nested lists, as new nested lists.

    With one argument this is a map over the leaves; with two or more it is a zip-map
    (a residual is `map_leaves(add, x, f)`).
    """
    if isinstance(xs[0], _NODES):
        return [map_leaves(f, *parts) for parts in zip(*xs)]
    return f(*xs)


def map_blocks(f: Callable[..., Any], depth: int, *xs: Nested | None, with_index: bool = False) -> Nested:
    """f(*blocks) for the blocks under the first `depth` axes of same-shape nested lists.

    The result has those `depth` leading axes, holding whatever f returns. An argument that is
    None is passed to every block as None (an optional mask). With `with_index`, f receives
    the block's leading index (a tuple of `depth` ints) as a last argument.
    """

    def walk(blocks: list[Any], d: int, index: tuple[int, ...]) -> Any:
        if d == 0:
            return f(*blocks, index) if with_index else f(*blocks)
        n = len(next(b for b in blocks if b is not None))
        return [walk([None if b is None else b[i] for b in blocks], d - 1, index + (i,)) for i in range(n)]

    return walk(list(xs), depth, ())


def map_rows(f: Callable[[list], Any], x: Nested) -> Nested:
    """f applied to every innermost list (a row along the last axis) of nested lists."""
    return map_blocks(f, len(shape_of(x)) - 1, x)
