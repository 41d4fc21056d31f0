"""Layers, losses and optimizers, each written two ways (loops over scalars, numpy with a
hand-derived backward) and checked three ways through `nn.registry`."""

# A user's own engine.py / models/ ... found first on sys.path: one ImportError naming it (engine/_siblings.py).
import importlib.util as _util
from pathlib import Path as _Path

_spec = _util.spec_from_file_location("twograd_siblings", _Path(__file__).resolve().parent.parent / "engine" / "_siblings.py")
assert _spec is not None and _spec.loader is not None  # a .py file always has both
_spec.loader.exec_module(_siblings := _util.module_from_spec(_spec))
_siblings.check_siblings(__name__, __file__)
del _util, _Path, _spec, _siblings

from nn.registry import Case, Piece, all_pieces, assert_three_way, check_piece, check_three_way, get_piece, register  # noqa: E402 (after the sibling check)

__all__ = ["Case", "Piece", "all_pieces", "assert_three_way", "check_piece", "check_three_way", "get_piece", "register"]
