"""A multi-layer perceptron built from `nn`, both ways, and its whole-model gradient check.

    h_0 = x
    h_l = f(h_{l-1} @ W_l + b_l)          l = 1 .. L-1   (f = sigmoid, relu or tanh)
    z   = h_{L-1} @ W_L + b_L                              (logits / raw predictions)
    loss = mse(z, T)  or  cross_entropy(z, targets)

Three forms of the same network, all reading the same parameters:

* `mlp_loops`: the `nn` pieces' loops forms composed (`linear_loops`, `tanh_loops`, ...,
  `mse_loops` / `cross_entropy_loops`). On `engine.Value`s the engine backpropagates it.
* `mlp_forward` / `mlp_backward`: the `nn` pieces' manual pairs composed; backward runs
  the layers' backwards in reverse order (the chain rule, one layer at a time).
* `MLP.fused_loss_and_grad`: the same math as `mlp_forward`/`mlp_backward` in one lean
  function with preallocated buffers, for fast full-batch training (checked against the
  composed pair in tests/models/test_mlp.py).

The composed pair calls every piece through a kernel (models/zoo/kernels.py): `MLP(config,
kernels={"linear": Kernel(forward, backward)})` replaces the pieces a mapping names (a learner's,
`twograd train --learner`) and keeps nn's elsewhere; `kernels=None` is nn's own throughout.

`MLP.forward` / `MLP.backward` (the Module interface, without the loss) are the layer part
of the manual pair, `_layers_forward` / `_layers_backward`, not another implementation.
Each activation is one row of `ACTIVATIONS`: its loops form, its manual pair, and the
in-place apply and derivative-from-output that the fused path uses.

`mlp` is registered in `nn.registry`, so `twograd check mlp` and tests/nn/test_registry.py
check the whole-model gradient three ways (graph, manual, numeric).

Parameters live in the Module's one flat float64 vector `flat_params` and the named arrays
`W1, b1, ...` are views into it (gradients likewise in `flat_grads`): an optimizer can then
update the whole model with a handful of array operations instead of a handful per parameter.
"""

# Shape legend: B batch (rows), D input features (sizes[0]), H_l width of layer l,
# K outputs (sizes[-1]), P number of parameters.

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from engine import Value, to_values
from models.zoo.kernels import MLP_PIECES, Kernels, check_kernels, kernel
from nn.activations import (
    relu_backward,
    relu_forward,
    relu_loops,
    sigmoid_backward,
    sigmoid_forward,
    sigmoid_loops,
    stable_sigmoid,
    tanh_backward,
    tanh_forward,
    tanh_loops,
)
from nn.linear import linear_loops
from nn.losses import cross_entropy_loops, mse_loops
from nn.module import Module
from nn.registry import Case, Piece, register


class Activation(NamedTuple):
    """One hidden nonlinearity h = f(a), every form of it the MLP uses."""

    loops: Callable[..., Any]  # the nn piece's loops form (nested lists, floats or Values)
    forward: Callable[..., Any]  # the nn piece's manual pair: forward(a) -> (h, cache)
    backward: Callable[..., Any]  # backward(dh, cache) -> (da,)
    apply_: Callable[[np.ndarray], None]  # fused path: a <- f(a), in place
    grad_from_output: Callable[[np.ndarray], np.ndarray]  # fused path: f'(a) from h = f(a) alone


def _tanh_(a: np.ndarray) -> None:
    np.tanh(a, out=a)


def _tanh_grad(h: np.ndarray) -> np.ndarray:
    """tanh' = 1 - tanh^2 = 1 - h^2."""
    deriv = h * h
    np.subtract(1.0, deriv, out=deriv)
    return deriv


def _relu_(a: np.ndarray) -> None:
    np.maximum(a, 0.0, out=a)


def _relu_grad(h: np.ndarray) -> np.ndarray:
    """relu' = [a > 0] = [h > 0] (0 at the kink, as relu_backward)."""
    return h > 0.0


def _sigmoid_(a: np.ndarray) -> None:
    a[...] = stable_sigmoid(a)


def _sigmoid_grad(h: np.ndarray) -> np.ndarray:
    """sigmoid' = s (1 - s) = h (1 - h)."""
    deriv = 1.0 - h
    deriv *= h
    return deriv


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(sigmoid_loops, sigmoid_forward, sigmoid_backward, _sigmoid_, _sigmoid_grad),
    "relu": Activation(relu_loops, relu_forward, relu_backward, _relu_, _relu_grad),
    "tanh": Activation(tanh_loops, tanh_forward, tanh_backward, _tanh_, _tanh_grad),
}
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")


@dataclass
class MLPConfig:
    """Everything that defines an MLP's shape and its initial weights."""

    # Layer widths, input first, output last: [2, 4, 1] is 2 inputs, 4 hidden units and
    # 1 output (2 weight layers); [2, 16, 16, 2] has 3 weight layers.
    sizes: list[int] = field(default_factory=lambda: [2, 4, 1])
    # Nonlinearity after every hidden layer: "sigmoid", "relu" or "tanh". The last layer
    # has none: it gives logits (cross_entropy) or raw predictions (mse).
    activation: str = "tanh"
    # "mse": mean squared error against 0/1 targets (one output) or one-hot rows (K outputs);
    # "cross_entropy": softmax cross-entropy over K >= 2 logits against integer classes.
    loss: str = "mse"
    # Seeds the weight initialisation (numpy's default_rng): same seed, same network.
    seed: int = 0

    def validate(self) -> MLPConfig:
        """Return self, or raise ValueError naming the bad field."""
        sizes = self.sizes
        if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise ValueError(f"MLPConfig.sizes must list at least 2 widths (inputs, outputs), got {sizes!r}")
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            raise ValueError(f"MLPConfig.sizes must be positive ints, got {sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of: {', '.join(LOSSES)}")
        if self.loss == "cross_entropy" and sizes[-1] < 2:
            raise ValueError(f"cross_entropy needs at least 2 outputs (one logit per class), got sizes {list(sizes)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"MLPConfig.seed must be an int, got {self.seed!r}")
        self.sizes = [int(n) for n in sizes]
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- targets
def make_targets(y: np.ndarray, n_outputs: int, loss: str) -> np.ndarray:
    """What the loss compares the network's output with, from integer class labels y (B,).

    cross_entropy: y itself.  mse with one output: y as a (B, 1) float column (class 1 -> 1.0);
    mse with K outputs: one-hot rows (B, K).
    """
    y = np.asarray(y)
    if loss == "cross_entropy":
        return y.astype(np.int64)
    if n_outputs == 1:
        return y.astype(np.float64).reshape(-1, 1)  # (B, 1)
    onehot = np.zeros((y.shape[0], n_outputs))  # (B, K)
    onehot[np.arange(y.shape[0]), y] = 1.0
    return onehot


def predict_classes(z: np.ndarray) -> np.ndarray:
    """Class per row from the outputs: threshold 0.5 for one output (mse on 0/1), else argmax."""
    if z.shape[1] == 1:
        return (z[:, 0] > 0.5).astype(np.int64)
    return np.argmax(z, axis=1)


def _layer_names(n_layers: int) -> list[str]:
    return [f"{kind}{l}" for l in range(1, n_layers + 1) for kind in ("W", "b")]


def _check_param_count(n: int) -> None:
    if n < 2 or n % 2:
        raise ValueError(f"mlp: expected parameters W1, b1, W2, b2, ... (pairs, at least one), got {n} arrays")


# ---------------------------------------------------------------------------- loops form
def mlp_loops(x: Any, *params: Any, targets: Any, activation: str = "tanh", loss: str = "mse") -> Any:
    """The loss of the MLP on nested lists: the nn pieces' loops forms, layer by layer.

    `params` are W1, b1, W2, b2, ... (W_l (H_{l-1}, H_l), b_l (H_l,)); `targets` as made by
    `make_targets`. Works on floats and on engine.Values (x may be floats while the
    parameters are Values: the inputs are then constants of the graph).
    """
    _check_param_count(len(params))
    act_loops = ACTIVATIONS[activation].loops
    h = x.tolist() if isinstance(x, np.ndarray) else x  # (B, D)
    n_layers = len(params) // 2
    for l in range(n_layers):
        h = linear_loops(h, params[2 * l], params[2 * l + 1])  # (B, H_l)
        if l < n_layers - 1:
            h = act_loops(h)
    if loss == "cross_entropy":
        return cross_entropy_loops(h, targets=targets)
    return mse_loops(h, np.asarray(targets, dtype=np.float64).tolist())


# ---------------------------------------------------------------------------- manual pair
@dataclass
class MLPCache:
    """Per-layer caches of the nn pieces, in forward order, and the loss's cache."""

    linear: list[Any]  # one LinearCache per layer
    act: list[Any]  # one activation cache per hidden layer
    loss: Any
    activation: str
    loss_name: str
    kernels: Kernels | None = None  # the replaced pieces the forward ran (None: nn's)


def _layers_forward(
    x: Any, params: Sequence[Any], activation: str, kernels: Kernels | None = None
) -> tuple[np.ndarray, list[Any], list[Any]]:
    """z (B, K) from x (B, D): linear_forward, then the activation's forward, layer by layer.

    Returns z and the pieces' caches (one LinearCache per layer, one activation cache per
    hidden layer), which `_layers_backward` takes. `kernels` replaces linear and the
    activation (None: nn's; `_layers_backward` must be given the same).
    """
    _check_param_count(len(params))
    act_forward = kernel(kernels, activation).forward
    lin_forward = kernel(kernels, "linear").forward
    n_layers = len(params) // 2
    lin_caches, act_caches = [], []
    h = x
    for l in range(n_layers):
        h, c = lin_forward(h, params[2 * l], params[2 * l + 1])  # (B, H_l)
        lin_caches.append(c)
        if l < n_layers - 1:
            h, c = act_forward(h)
            act_caches.append(c)
    return h, lin_caches, act_caches


def _layers_backward(
    dz: Any, lin_caches: Sequence[Any], act_caches: Sequence[Any], activation: str, kernels: Kernels | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(dx, [dW1, db1, ..., dW_L, db_L]) from dz = dloss/dz: the pieces' backwards in reverse.

        dh_{l-1}, dW_l, db_l = linear_backward(G_l)       (dW_l = h_{l-1}^T G_l, db_l = sum_rows G_l,
                                                           dh_{l-1} = G_l W_l^T)
        G_{l-1} = dh_{l-1} * f'(a_{l-1})                  (the activation's backward)

    starting from G_L = dz; dx = dh_0.
    """
    act_backward = kernel(kernels, activation).backward
    lin_backward = kernel(kernels, "linear").backward
    n_layers = len(lin_caches)
    grads: list[np.ndarray] = [np.empty(0)] * (2 * n_layers)
    dh = dz
    for l in range(n_layers - 1, -1, -1):
        dh, dW, db = lin_backward(dh, lin_caches[l])  # dh: (B, H_{l-1})
        grads[2 * l], grads[2 * l + 1] = dW, db
        if l > 0:
            (dh,) = act_backward(dh, act_caches[l - 1])
    return dh, grads


def mlp_forward(
    x: Any, *params: Any, targets: Any, activation: str = "tanh", loss: str = "mse", kernels: Kernels | None = None
) -> tuple[np.ndarray, MLPCache]:
    """loss (0-d array) of the MLP on x (B, D): `_layers_forward`, then the loss's forward
    (the pieces `kernels` names are its, the rest nn's; `mlp_backward` follows the cache)."""
    z, lin_caches, act_caches = _layers_forward(x, params, activation, kernels)  # z: (B, K)
    if loss == "cross_entropy":
        value, loss_cache = kernel(kernels, "cross_entropy").forward(z, targets=targets)
    else:
        value, loss_cache = kernel(kernels, "mse").forward(z, targets)
    return value, MLPCache(lin_caches, act_caches, loss_cache, activation, loss, kernels)


def mlp_backward(dout: Any, cache: MLPCache) -> tuple[np.ndarray, ...]:
    """(dx, dW1, db1, ..., dW_L, db_L): the loss's backward, then the layers' in reverse order.

    Chain rule, one layer at a time: G_L = dloss/dz from the loss's backward, then
    `_layers_backward` (linear_backward and the activation's backward per layer).
    The target of mse is not a parameter, so its gradient is dropped.
    """
    if cache.loss_name == "cross_entropy":
        (dz,) = kernel(cache.kernels, "cross_entropy").backward(dout, cache.loss)
    else:
        dz, _ = kernel(cache.kernels, "mse").backward(dout, cache.loss)  # (B, K); dtarget unused
    dx, grads = _layers_backward(dz, cache.linear, cache.act, cache.activation, cache.kernels)
    return (dx, *grads)


# ---------------------------------------------------------------------------- the model
def mlp_param_shapes(config: MLPConfig) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter, in `init_params` order, from the config alone (nothing is
    allocated): W_l (H_{l-1}, H_l), b_l (H_l,) for l = 1 .. L."""
    shapes: dict[str, tuple[int, ...]] = {}
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:]), 1):
        shapes[f"W{l}"] = (int(n_in), int(n_out))
        shapes[f"b{l}"] = (int(n_out),)
    return shapes


def init_params(config: MLPConfig) -> dict[str, np.ndarray]:
    """Initial W_l ~ N(0, gain^2 / H_{l-1}), b_l = 0; gain = sqrt(2) for relu (He), 1 otherwise (LeCun).

    Scaling by 1/sqrt(fan-in) keeps the pre-activations' variance near 1 at the start, so
    tanh and sigmoid begin in their steep middle, not saturated.
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    gain = math.sqrt(2.0) if config.activation == "relu" else 1.0
    params = {}
    for l, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:]), 1):
        params[f"W{l}"] = rng.standard_normal((n_in, n_out)) * (gain / math.sqrt(n_in))  # (H_{l-1}, H_l)
        params[f"b{l}"] = np.zeros(n_out)  # (H_l,)
    return params


class MLP(Module):
    """An MLP with parameters W1, b1, W2, b2, ... (views into the Module's `flat_params`).

        model = MLP(MLPConfig(sizes=[2, 4, 1]))     or     MLP(sizes=[2, 4, 1], activation="tanh")

    The Module interface: `forward(x) -> z` keeps the layer caches (references to the
    arrays it computes anyway, no copies) so that `backward(dz) -> dx` can add the
    parameters' gradients into `grads`. With a loss: `loss_and_grads` (composed nn pieces),
    `loss_and_grads_graph` (engine) and `fused_loss_and_grad` (one lean function) compute
    the same loss and gradient.
    """

    def __init__(self, config: MLPConfig | None = None, *, kernels: Kernels | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = replace(config or MLPConfig(), **overrides).validate()
        # Pieces replaced in the composed pair (models/zoo/kernels.py); None: nn's own. The fused
        # path has no pieces to replace: a model with kernels trains on `loss_and_grads`.
        self.kernels = check_kernels(kernels, MLP_PIECES, "MLP")
        self.activation = self.config.activation
        self.loss_name = self.config.loss
        self.n_layers = len(self.config.sizes) - 1
        for name, a in init_params(self.config).items():
            self.add_param(name, a)
        self._buffers: dict[int, list[np.ndarray]] = {}
        self._cache: tuple[list[Any], list[Any]] | None = None
        self._arrays: tuple[list[np.ndarray], ...] | None = None  # see _layer_arrays

    @property
    def param_list(self) -> list[np.ndarray]:
        """W1, b1, W2, b2, ... in the order the pieces take them."""
        return [self.params[n] for n in _layer_names(self.n_layers)]

    def targets(self, y: np.ndarray) -> np.ndarray:
        """`make_targets` for this model's output size and loss."""
        return make_targets(y, self.config.sizes[-1], self.loss_name)

    # ------------------------------------------------------------------ Module interface
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs z (B, K) for inputs x (B, D): the manual pair's layers (`_layers_forward`).

        Keeps the layers' caches for `backward`; nothing is copied for them.
        """
        z, lin_caches, act_caches = _layers_forward(x, self.param_list, self.activation, self.kernels)
        self._cache = (lin_caches, act_caches)
        return z

    def backward(self, dz: np.ndarray) -> np.ndarray:
        """dx (B, D) from dz = dL/dz (B, K) after `forward`; adds (+=) dW_l, db_l into `grads`."""
        if self._cache is None:
            raise RuntimeError("MLP.backward called before forward")
        dx, grads = _layers_backward(dz, *self._cache, self.activation, self.kernels)
        for name, g in zip(_layer_names(self.n_layers), grads):
            self.grads[name] += g
        return dx

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class per row of x (B,)."""
        return predict_classes(self.forward(x))

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows whose predicted class is y."""
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The loss on (x, y) with the composed manual forward (no gradient)."""
        value, _ = mlp_forward(
            x,
            *self.param_list,
            targets=self.targets(y),
            activation=self.activation,
            loss=self.loss_name,
            kernels=self.kernels,
        )
        return float(value)

    # ------------------------------------------------------------------ gradients, three ways
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> float:
        """Composed nn pieces: loss, and its gradient *added* into `self.grads` (Module's convention)."""
        value, cache = mlp_forward(
            x,
            *self.param_list,
            targets=self.targets(y),
            activation=self.activation,
            loss=self.loss_name,
            kernels=self.kernels,
        )
        grads = mlp_backward(np.ones(()), cache)
        for name, g in zip(_layer_names(self.n_layers), grads[1:]):
            self.grads[name] += g
        return float(value)

    def graph_loss(self, x: np.ndarray, y: np.ndarray, labels: bool = True) -> tuple[Value, dict[str, Any]]:
        """The loss as an engine.Value graph (mlp_loops on Value copies of the parameters).

        Returns (loss, name -> nested lists of leaf Values); call `loss.backward()` for grads.
        `labels` names every leaf ("W1[0,1]", and the inputs "x[0,1]") for drawing; without
        it the inputs stay plain floats, constants of the graph (fewer nodes).
        """
        leaves = {n: to_values(p, n if labels else "") for n, p in zip(_layer_names(self.n_layers), self.param_list)}
        x = np.asarray(x, dtype=np.float64)
        loss = mlp_loops(
            to_values(x, "x") if labels else x.tolist(),
            *leaves.values(),
            targets=self.targets(y),
            activation=self.activation,
            loss=self.loss_name,
        )
        return loss, leaves

    def loss_and_grads_graph(self, x: np.ndarray, y: np.ndarray) -> float:
        """The engine way: build the graph, backward, *add* the leaves' grads into `self.grads`."""
        loss, leaves = self.graph_loss(x, y, labels=False)
        loss.backward()
        for name, nested in leaves.items():
            self.grads[name] += np.array(_grads_of(nested))
        return loss.data

    # ------------------------------------------------------------------ fused fast path
    def _workspace(self, B: int) -> list[np.ndarray]:
        """Buffers for a batch of B rows: each hidden layer's output h_l (B, H_l), and z (B, K)."""
        bufs = self._buffers.get(B)
        if bufs is None:
            # Layer outputs, then two all-ones vectors: sums over rows (B) or over classes (K)
            # as matrix-vector products, which numpy runs faster than .sum(axis=...) at these sizes.
            bufs = [np.empty((B, n)) for n in self.config.sizes[1:]] + [np.ones(B), np.ones(self.config.sizes[-1])]
            self._buffers = {B: bufs}  # keep one batch size: training is full batch
        return bufs

    def _layer_arrays(self) -> tuple[list[np.ndarray], ...]:
        """(W_l list, b_l list, dW_l list, db_l list), looked up once: after construction the
        Module never replaces these views, so the lists stay valid (and save the fused step
        a dozen dict lookups)."""
        if self._arrays is None:
            names = _layer_names(self.n_layers)
            params, grads = [self.params[n] for n in names], [self.grads[n] for n in names]
            self._arrays = (params[0::2], params[1::2], grads[0::2], grads[1::2])
        return self._arrays

    def fused_loss_and_grad(self, x: np.ndarray, targets: np.ndarray) -> float:
        """Loss on (x, targets) and its gradient written (=, not +=) into `flat_grads`.

        The same math as `mlp_forward`/`mlp_backward` without the per-piece checks and
        allocations: x must be float64 (B, D) and `targets` as from `self.targets(y)`.

            forward:  h_l = f(h_{l-1} W_l + b_l),  z = h_{L-1} W_L + b_L
            mse:      loss = sum (z - T)^2 / n,  G = 2 (z - T) / n      (n = B K elements)
            xent:     loss = mean_b (log sum_c e^{z_bc - m_b} - (z_{b,t_b} - m_b)),
                      G = (softmax(z) - onehot(t)) / B
            backward: dW_l = h_{l-1}^T G_l,  db_l = sum_rows G_l,  G_{l-1} = (G_l W_l^T) * f'(h_{l-1})
            with f' from the output h (`Activation.grad_from_output`): tanh 1 - h^2,
            sigmoid h (1 - h), relu [h > 0].
        """
        B = x.shape[0]
        bufs = self._workspace(B)
        ones_B, ones_K = bufs[-2], bufs[-1]
        Ws, bs, dWs, dbs = self._layer_arrays()
        L = self.n_layers
        act = ACTIVATIONS[self.activation]
        h = x
        for l in range(L):
            out = bufs[l]
            np.matmul(h, Ws[l], out=out)  # (B, H_l)
            out += bs[l]
            if l < L - 1:
                act.apply_(out)
            h = out
        z = bufs[L - 1]  # (B, K); becomes G in place
        if self.loss_name == "mse":
            z -= targets
            flat = z.reshape(-1)
            loss = float(np.dot(flat, flat)) / flat.shape[0]
            z *= 2.0 / flat.shape[0]
        else:
            rows = np.arange(B)
            K = z.shape[1]
            row_max = z[:, 0].copy()  # (B,); a loop over the few classes beats z.max(axis=1)
            for k in range(1, K):
                np.maximum(row_max, z[:, k], out=row_max)
            z -= row_max[:, None]  # every entry <= 0
            picked = float(z[rows, targets].sum())
            np.exp(z, out=z)
            total = z @ ones_K  # (B,), >= 1
            loss = (float(np.log(total).sum()) - picked) / B
            z *= (1.0 / B / total)[:, None]  # softmax / B
            z[rows, targets] -= 1.0 / B
        G = z
        for l in range(L - 1, -1, -1):
            h_prev = bufs[l - 1] if l > 0 else x
            np.matmul(h_prev.T, G, out=dWs[l])  # (H_{l-1}, H_l)
            np.matmul(ones_B, G, out=dbs[l])  # (H_l,), the sum over rows
            if l > 0:
                dh = G @ Ws[l].T  # (B, H_{l-1})
                dh *= act.grad_from_output(h_prev)
                G = dh
        return loss

    # ------------------------------------------------------------------ state
    def save(self, path: str | Path, config: dict[str, Any] | None = None) -> Path:
        """Checkpoint (npz + json) with this model's config, so `MLP.load(path)` rebuilds it."""
        return super().save(path, config if config is not None else self.config.to_dict())


def _grads_of(nested: Any) -> Any:
    """The `.grad` of every Value in nested lists, with the same nesting."""
    if isinstance(nested, list):
        return [_grads_of(v) for v in nested]
    return nested.grad


# ---------------------------------------------------------------------------- registry
def _mlp_case(sizes: Sequence[int], B: int, activation: str, loss: str, gap: float = 0.05) -> Callable[..., Any]:
    """Random x, parameters and labels; for relu, redrawn until every pre-activation is
    at least `gap` from the kink at 0 (far outside the finite-difference stencil)."""

    def make(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        for _ in range(1000):
            inputs = {"x": rng.standard_normal((B, sizes[0]))}
            for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
                inputs[f"W{l}"] = rng.standard_normal((n_in, n_out)) / math.sqrt(n_in)
                inputs[f"b{l}"] = 0.5 * rng.standard_normal(n_out)
            n_classes = sizes[-1] if sizes[-1] > 1 else 2
            targets = make_targets(rng.integers(0, n_classes, size=B), sizes[-1], loss)
            if activation != "relu" or _pre_activations_clear(inputs, gap):
                return inputs, {"targets": targets, "activation": activation, "loss": loss}
        raise RuntimeError("mlp case: could not draw pre-activations away from the relu kink")

    return make


def _pre_activations_clear(inputs: dict[str, np.ndarray], gap: float) -> bool:
    h = inputs["x"]
    n_layers = (len(inputs) - 1) // 2
    for l in range(1, n_layers):
        a = h @ inputs[f"W{l}"] + inputs[f"b{l}"]
        if np.min(np.abs(a)) < gap:
            return False
        h = np.maximum(a, 0.0)
    return True


def _mlp_torch(torch: Any, x: Any, *params: Any, targets: Any, activation: str = "tanh", loss: str = "mse") -> Any:
    """The torch referee (see `nn.registry.Piece`): the same network from torch ops.

    `torch` is the module, passed in by the test (nothing here imports it); `targets`
    arrives as a tensor (int64 for cross_entropy, float64 for mse).
    """
    act = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}[activation]
    n_layers = len(params) // 2
    h = x
    for l in range(n_layers):
        h = h @ params[2 * l] + params[2 * l + 1]  # (B, H_l)
        if l < n_layers - 1:
            h = act(h)
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(h, targets)
    return torch.nn.functional.mse_loss(h, targets)


MLP_PIECE = register(
    Piece(
        name="mlp",
        loops=mlp_loops,
        forward=mlp_forward,
        backward=mlp_backward,
        cases=(
            Case("xor 2-4-1 sigmoid mse, B=4", _mlp_case([2, 4, 1], 4, "sigmoid", "mse")),
            Case("batch 1: 3-5-2 tanh xent", _mlp_case([3, 5, 2], 1, "tanh", "cross_entropy")),
            Case("3 layers: 2-6-5-3 relu xent, B=7", _mlp_case([2, 6, 5, 3], 7, "relu", "cross_entropy")),
            Case("3 layers: 4-3-5-3 tanh mse one-hot, B=3", _mlp_case([4, 3, 5, 3], 3, "tanh", "mse")),
        ),
        description="whole MLP loss: linear/activation layers then mse or cross_entropy",
        tags=("model",),
        torch=_mlp_torch,
        # mlp_forward/mlp_backward are the layer pair (shared with MLP.forward/backward) plus the loss.
        covers=((_layers_forward, _layers_backward),),
    )
)
