"""Layers, losses and optimizers, each written two ways (loops over scalars, numpy with a
hand-derived backward) and checked three ways through `nn.registry`.

    >>> from nn import Linear, LayerNorm, MultiHeadAttention, TransformerBlock, Adam
    >>> from nn import assert_three_way       # check a piece of your own: graph, manual, numeric

Each layer class owns its parameters (`params`, name -> array) and their gradients (`grads`);
`forward(x) -> y` and `backward(dy) -> dx`, which adds into `grads`. The functions behind them
(`linear_loops`, `linear_forward`, `linear_backward`, ...) live in one file per piece.
"""

# A user's own engine.py / models/ ... found first on sys.path: one ImportError naming it (engine/_siblings.py).
import importlib.util as _util
from pathlib import Path as _Path

_spec = _util.spec_from_file_location(
    "twograd_siblings", _Path(__file__).resolve().parent.parent / "engine" / "_siblings.py"
)
assert _spec is not None and _spec.loader is not None  # a .py file always has both
_spec.loader.exec_module(_siblings := _util.module_from_spec(_spec))
_siblings.check_siblings(__name__, __file__)
del _util, _Path, _spec, _siblings

from nn.embedding import Embedding
from nn.feedforward import FeedForward
from nn.linear import Linear
from nn.mha import MultiHeadAttention
from nn.module import Module, Sequential
from nn.normalization import LayerNorm, RMSNorm
from nn.optim import SGD, Adam, AdamW
from nn.registry import Case, Piece, all_pieces, assert_three_way, check_piece, check_three_way, get_piece, register
from nn.transformer_block import TransformerBlock

__all__ = [
    "Linear",
    "LayerNorm",
    "RMSNorm",
    "MultiHeadAttention",
    "FeedForward",
    "TransformerBlock",
    "Embedding",
    "Module",
    "Sequential",
    "SGD",
    "Adam",
    "AdamW",
    "Case",
    "Piece",
    "all_pieces",
    "assert_three_way",
    "check_piece",
    "check_three_way",
    "get_piece",
    "register",
]
