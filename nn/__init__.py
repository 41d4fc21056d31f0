"""Layers, losses and optimizers, each written two ways (loops over scalars, numpy with a
hand-derived backward) and checked three ways through `nn.registry`."""

from nn.registry import Case, Piece, all_pieces, assert_three_way, check_piece, check_three_way, get_piece, register

__all__ = ["Case", "Piece", "all_pieces", "assert_three_way", "check_piece", "check_three_way", "get_piece", "register"]
