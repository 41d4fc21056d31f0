"""Matrix product and the affine layer y = x @ W + b, each written two ways.

`matmul_loops` / `linear_loops` spell every dot product out as a Python loop over scalars
(floats or engine.Values); `matmul_forward` / `matmul_backward` and `linear_forward` /
`linear_backward` are the numpy pair with the hand-derived backward.
"""

# Shape legend: B batch, T time (sequence position), n_in input features, n_out output
# features; for matmul A is (n, k) and B is (k, m) -- here "B" is the matrix, not the batch.

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from engine import dot
from nn._checks import array_input, dout_array, fail, nested_input, shape_text
from nn.module import Module
from nn.registry import Case, CaseMaker, Inputs, Piece, Static, register

# ------------------------------------------------------------------------------ matmul


def _check_matmul_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    if a_shape[1] != b_shape[0]:
        raise fail(
            "matmul",
            f"A has {a_shape[1]} columns but B has {b_shape[0]} rows: A {shape_text(a_shape)}, B {shape_text(b_shape)}",
        )
    if a_shape[1] == 0:
        raise fail("matmul", f"the inner dimension k is 0: A {shape_text(a_shape)}, B {shape_text(b_shape)}")


def _dot_rows(x_rows: list, W: list, n_out: int, b: list | None = None) -> list:
    """out[i][j] = sum_p x_rows[i][p] W[p][j] (+ b[j]), each sum one `engine.dot`.

    On Values a dot product of k terms is one fused node (partials W[p][j] and x[i][p])
    instead of 2k - 1 binary ones; on floats it is the same loop, left to right. A bias
    joins the dot as one more term, b[j] * 1.0, so it costs no node of its own.
    """
    columns = [[W[p][j] for p in range(len(W))] for j in range(n_out)]  # W^T: (n_out, k)
    if b is not None:
        columns = [col + [b[j]] for j, col in enumerate(columns)]
        return [[dot(row + [1.0], col) for col in columns] for row in x_rows]
    return [[dot(row, col) for col in columns] for row in x_rows]


def matmul_loops(A: Any, B: Any) -> list:
    """C = A @ B on nested lists, `C[i][j] = sum_p A[i][p] B[p][j]`, every dot product a loop.

    A (n, k), B (k, m) -> C (n, m). Works on floats and on engine.Values.
    """
    A, a_shape = nested_input("matmul", "A", A, ndims=(2,), layout="(n, k)")
    B, b_shape = nested_input("matmul", "B", B, ndims=(2,), layout="(k, m)")
    _check_matmul_shapes(a_shape, b_shape)
    return _dot_rows(A, B, b_shape[1])  # (n, m)


class MatmulCache(NamedTuple):
    """The operands, kept by reference (not copied): backward needs both."""

    A: np.ndarray  # (n, k)
    B: np.ndarray  # (k, m)


def matmul_forward(A: Any, B: Any) -> tuple[np.ndarray, MatmulCache]:
    """C = A @ B with A (n, k), B (k, m) -> C (n, m)."""
    A = array_input("matmul", "A", A, ndims=(2,), layout="(n, k)")
    B = array_input("matmul", "B", B, ndims=(2,), layout="(k, m)")
    _check_matmul_shapes(A.shape, B.shape)
    return A @ B, MatmulCache(A, B)  # (n, m)


def matmul_backward(dout: Any, cache: MatmulCache) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of C = A @ B.

    C_ij = sum_p A_ip B_pj, so dC_ij/dA_ip = B_pj and dC_ij/dB_pj = A_ip. Summing over the
    outputs each input reaches, with G = dL/dC:

        dL/dA_ip = sum_j G_ij B_pj   ->  dA = G @ B^T      (n, m) @ (m, k) = (n, k)
        dL/dB_pj = sum_i A_ip G_ij   ->  dB = A^T @ G      (k, n) @ (n, m) = (k, m)
    """
    A, B = cache
    dC = dout_array("matmul", dout, (A.shape[0], B.shape[1]))
    dA = dC @ B.T  # (n, k)
    dB = A.T @ dC  # (k, m)
    return dA, dB


# ------------------------------------------------------------------------------ linear
_X_LAYOUT = "(B, n_in) or (B, T, n_in)"


def _check_linear_shapes(x_shape: tuple[int, ...], W_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    if x_shape[-1] != W_shape[0]:
        raise fail(
            "linear",
            f"x has {x_shape[-1]} features but W expects {W_shape[0]}: x {shape_text(x_shape)}, W {shape_text(W_shape)}",
        )
    if b_shape != (W_shape[1],):
        raise fail(
            "linear",
            f"b must have shape (n_out,) = ({W_shape[1]},) to match W, got b {shape_text(b_shape)}, W {shape_text(W_shape)}",
        )
    if W_shape[0] == 0:
        raise fail("linear", f"W has no input features: W {shape_text(W_shape)}")


def linear_loops(x: Any, W: Any, b: Any) -> list:
    """y = x @ W + b on nested lists: `y[..][j] = b[j] + sum_i x[..][i] W[i][j]`.

    x (B, n_in) or (B, T, n_in), W (n_in, n_out), b (n_out,) -> y (B, n_out) or (B, T, n_out).
    """
    x, x_shape = nested_input("linear", "x", x, ndims=(2, 3), layout=_X_LAYOUT)
    W, W_shape = nested_input("linear", "W", W, ndims=(2,), layout="(n_in, n_out)")
    b, b_shape = nested_input("linear", "b", b, ndims=(1,), layout="(n_out,)")
    _check_linear_shapes(x_shape, W_shape, b_shape)
    n_out = W_shape[1]

    def affine(rows: list) -> list:
        return _dot_rows(rows, W, n_out, b)  # (rows, n_out)

    if len(x_shape) == 3:
        return [affine(seq) for seq in x]  # (B, T, n_out)
    return affine(x)  # (B, n_out)


class LinearCache(NamedTuple):
    """What backward needs. `x2` is x viewed as rows (a reshape, not a copy)."""

    x2: np.ndarray  # (B*T, n_in) or (B, n_in)
    W: np.ndarray  # (n_in, n_out)
    x_shape: tuple[int, ...]


def linear_forward(x: Any, W: Any, b: Any) -> tuple[np.ndarray, LinearCache]:
    """y = x @ W + b, W (n_in, n_out), b (n_out,); x (B, n_in) or (B, T, n_in).

    A 3-d x is viewed as B*T rows of n_in features, so one matrix product does the work.
    """
    x = array_input("linear", "x", x, ndims=(2, 3), layout=_X_LAYOUT)
    W = array_input("linear", "W", W, ndims=(2,), layout="(n_in, n_out)")
    b = array_input("linear", "b", b, ndims=(1,), layout="(n_out,)")
    _check_linear_shapes(x.shape, W.shape, b.shape)
    x2 = x.reshape(-1, W.shape[0])  # (B*T, n_in), a view
    y = x2 @ W  # (B*T, n_out)
    y += b  # in place: no second output-sized array
    return y.reshape(x.shape[:-1] + (W.shape[1],)), LinearCache(x2, W, x.shape)  # (B, [T,] n_out)


def linear_backward(dout: Any, cache: LinearCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of y = x @ W + b (rows r of x, possibly B*T of them).

    y_rj = sum_i x_ri W_ij + b_j, so with G = dL/dy:

        dL/dx_ri = sum_j G_rj W_ij   ->  dx = G @ W^T               (r, n_in)
        dL/dW_ij = sum_r x_ri G_rj   ->  dW = x^T @ G               (n_in, n_out)
        dL/db_j  = sum_r G_rj        ->  db = G summed over rows    (n_out,)

    b is broadcast over every row, so its gradient collects one term from each row.
    """
    x2, W, x_shape = cache
    n_in, n_out = W.shape
    dy = dout_array("linear", dout, x_shape[:-1] + (n_out,))
    dy2 = dy.reshape(-1, n_out)  # (B*T, n_out)
    dx = (dy2 @ W.T).reshape(x_shape)  # (B, [T,] n_in)
    dW = x2.T @ dy2  # (n_in, n_out)
    db = dy2.sum(axis=0)  # (n_out,)
    return dx, dW, db


# ------------------------------------------------------------------------------ registry
def _matmul_case(n: int, k: int, m: int) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        return {"A": rng.standard_normal((n, k)), "B": rng.standard_normal((k, m))}, {}

    return make


def _linear_case(x_shape: tuple[int, ...], n_out: int) -> CaseMaker:
    def make(rng: np.random.Generator) -> tuple[Inputs, Static]:
        n_in = x_shape[-1]
        return {
            "x": rng.standard_normal(x_shape),
            "W": rng.standard_normal((n_in, n_out)) / np.sqrt(n_in),
            "b": rng.standard_normal(n_out),
        }, {}

    return make


def _matmul_torch(torch: Any, A: Any, B: Any) -> Any:
    """The torch referee (see `Piece`): torch.matmul."""
    return torch.matmul(A, B)


def _linear_torch(torch: Any, x: Any, W: Any, b: Any) -> Any:
    """The torch referee (see `Piece`): F.linear, which stores its weight as (n_out, n_in), so W^T."""
    return torch.nn.functional.linear(x, W.T, b)


register(
    Piece(
        name="matmul",
        loops=matmul_loops,
        forward=matmul_forward,
        backward=matmul_backward,
        cases=(
            Case("row 1x3 @ 3x2", _matmul_case(1, 3, 2)),
            Case("odd 3x5 @ 5x7", _matmul_case(3, 5, 7)),
            Case("inner 1: 4x1 @ 1x3", _matmul_case(4, 1, 3)),
        ),
        description="C = A @ B, A (n, k), B (k, m)",
        torch=_matmul_torch,
        tags=("op",),
    )
)

register(
    Piece(
        name="linear",
        loops=linear_loops,
        forward=linear_forward,
        backward=linear_backward,
        cases=(
            Case("batch 1: (1, 3) -> 2", _linear_case((1, 3), 2)),
            Case("odd: (5, 7) -> 3", _linear_case((5, 7), 3)),
            Case("sequence: (2, 3, 4) -> 5", _linear_case((2, 3, 4), 5)),
        ),
        description="y = x @ W + b, W (n_in, n_out); x (B, n_in) or (B, T, n_in)",
        torch=_linear_torch,
        tags=("layer",),
    )
)


# ------------------------------------------------------------------------------ thin class
class Linear(Module):
    """y = x @ W + b with W (n_in, n_out) ~ N(0, 1/n_in) and b (n_out,) = 0.

    `forward(x)` caches for `backward(dout)`, which adds (+=) dW and db into `self.grads`
    and returns dx. The math is `linear_forward` / `linear_backward` above.
    """

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        for name, n in (("n_in", n_in), ("n_out", n_out)):
            if not (isinstance(n, (int, np.integer)) and n >= 1):
                raise ValueError(f"Linear: {name} must be a positive int, got {n!r}")
        rng = rng if rng is not None else np.random.default_rng()
        self.n_in, self.n_out = int(n_in), int(n_out)
        # Variance 1/n_in keeps the output's variance near the input's at initialisation.
        self.add_param("W", rng.standard_normal((self.n_in, self.n_out)) / np.sqrt(self.n_in))
        self.add_param("b", np.zeros(self.n_out))
        self._cache: LinearCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self._cache = linear_forward(x, self.params["W"], self.params["b"])
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("Linear.backward called before forward")
        dx, dW, db = linear_backward(dout, self._cache)
        self.grads["W"] += dW
        self.grads["b"] += db
        return dx
