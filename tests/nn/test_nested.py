"""The nested-list walkers every loops form uses (nn/_nested.py)."""

from __future__ import annotations

from nn._nested import flatten, map_blocks, map_leaves, map_rows, shape_of


def test_shape_of_reads_along_the_first_entries() -> None:
    assert shape_of(2.0) == ()
    assert shape_of([1.0, 2.0, 3.0]) == (3,)
    assert shape_of([[1, 2, 3], [4, 5, 6]]) == (2, 3)
    assert shape_of([]) == (0,)
    assert shape_of(((1, 2),)) == (1, 2)  # tuples are lists too


def test_flatten_is_row_major_at_any_depth() -> None:
    assert flatten(7) == [7]
    assert flatten([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]) == [1, 2, 3, 4, 5, 6, 7, 8]
    deep: list = [0]
    for _ in range(5000):  # iterative: deeper than the recursion limit
        deep = [deep]
    assert flatten(deep) == [0]


def test_map_leaves_maps_and_zip_maps_keeping_the_nesting() -> None:
    assert map_leaves(lambda a: 2 * a, [[1, 2], [3, 4]]) == [[2, 4], [6, 8]]
    assert map_leaves(lambda a: -a, 3) == -3
    assert map_leaves(lambda a, b: a + b, [[1, 2]], [[10, 20]]) == [[11, 22]]
    x = [[1, 2]]
    copy = map_leaves(lambda a: a, x)
    assert copy == x and copy is not x and copy[0] is not x[0]  # a fresh nested list


def test_map_blocks_walks_the_leading_axes() -> None:
    x = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]  # (2, 2, 2)
    assert map_blocks(sum, 2, x) == [[3, 7], [11, 15]]
    assert map_blocks(len, 1, x) == [2, 2]
    assert map_blocks(lambda b: b, 0, x) is x
    # several arguments side by side; None goes to every block as None; the block's index
    got = map_blocks(lambda a, b, m, index: (a[0] + b[0], m, index), 1, [[1], [2]], [[10], [20]], None, with_index=True)
    assert got == [(11, None, (0,)), (22, None, (1,))]


def test_map_rows_applies_to_every_last_axis_row() -> None:
    assert map_rows(sum, [1, 2, 3]) == 6
    assert map_rows(sum, [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]) == [[3, 7], [11, 15]]
