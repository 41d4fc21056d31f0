"""Optimizers and gradient clipping, written out by hand; every update is in place.

An optimizer takes either a `Module` (its parameters and gradients, by dotted name) or a
list of `(param, grad)` numpy float64 (or float32) arrays (named "0", "1", ...). `step()` reads the
gradients and updates the parameters in place; `zero_grad()` zeroes the gradients.

Update rules (g = gradient, t = step count starting at 1, all elementwise):

    SGD          p <- p - lr g
    SGD+momentum v <- mu v + g;  p <- p - lr v                 (PyTorch's convention, v0 = 0)
    Adam         g <- g + wd p                                 (L2 in the gradient, as torch.optim.Adam)
                 m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
                 mhat = m / (1 - b1^t);    vhat = v / (1 - b2^t)     (bias correction)
                 p <- p - lr mhat / (sqrt(vhat) + eps)          (Kingma & Ba 2015, Algorithm 1)
    AdamW        p <- p - lr wd p  (decoupled decay, Loshchilov & Hutter 2019), then Adam with wd = 0
                                                                (as torch.optim.AdamW)

`state_dict()` returns {"meta": JSON-able dict (type, step, hyperparameters, names),
"arrays": {"<slot>.<name>": moment array}}; `load_state_dict` restores it exactly, so a run
can be checkpointed (`nn.checkpoint`) and resumed bit for bit.
"""

# Shape legend: each parameter keeps its own shape; its gradient and moments share it.

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nn._checks import named_array_problems
from nn.module import Module

Params = Module | Sequence[tuple[np.ndarray, np.ndarray]]
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing


# ------------------------------------------------------------------------------ parameters
def _entries(params: Params, who: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, param, grad) triples, checked: float32/float64 ndarrays of one dtype and shape, each param once."""
    if isinstance(params, Module):
        entries = params.named_parameters_and_grads()
    else:
        entries = []
        for i, pair in enumerate(params):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(
                    f"{who}: parameter {i} must be a (param, grad) pair of arrays, got {type(pair).__name__}"
                )
            entries.append((str(i), pair[0], pair[1]))
    if not entries:
        raise ValueError(f"{who}: got no parameters")
    seen: list[np.ndarray] = []
    for name, p, g in entries:
        for what, a in (("parameter", p), ("gradient", g)):
            # In-place updates need the caller's own float arrays, not converted copies.
            if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"{who}: {what} {name!r} must be a float64 (or float32) numpy array, got {kind}")
        if g.dtype != p.dtype:
            raise ValueError(f"{who}: gradient {name!r} is {g.dtype}, its parameter {p.dtype}")
        if g.shape != p.shape:
            raise ValueError(f"{who}: gradient {name!r} has shape {g.shape}, its parameter has {p.shape}")
        if not p.flags.writeable:
            raise ValueError(f"{who}: parameter {name!r} is read-only; it must be updated in place")
        if any(p is q for q in seen):
            raise ValueError(f"{who}: parameter {name!r} is listed twice; it would be updated twice per step")
        seen.append(p)
    return entries


def _nonneg(who: str, name: str, x: float) -> float:
    if (
        isinstance(x, bool)
        or not isinstance(x, (int, float, np.floating, np.integer))
        or not (math.isfinite(x) and x >= 0)
    ):
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {x!r}")
    return float(x)


def _beta(who: str, name: str, x: float) -> float:
    x = _nonneg(who, name, x)
    if not x < 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1), got {x!r}")
    return x


# ------------------------------------------------------------------------------ base
class Optimizer:
    """Shared machinery: parameters, the step count, moment buffers, zero_grad, state."""

    #: names of the per-parameter buffers (each a zero array of the parameter's shape at start).
    slots: tuple[str, ...] = ()

    def __init__(self, params: Params, lr: float) -> None:
        who = type(self).__name__
        self.entries = _entries(params, who)
        self.lr = _nonneg(who, "lr", lr)
        self.step_count = 0
        self.state: dict[str, dict[str, np.ndarray]] = {
            slot: {name: np.zeros_like(p) for name, p, _ in self.entries} for slot in self.slots
        }

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def _set_hyperparameters(self, hyper: dict[str, Any]) -> None:
        self.lr = float(hyper["lr"])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def step(self) -> None:
        """One update of every parameter from its current gradient (see the module docstring).

        A non-finite gradient raises ValueError naming it before any parameter changes.
        """
        for name, _, g in self.entries:
            if not np.all(np.isfinite(g)):
                raise ValueError(f"{type(self).__name__}.step: gradient {name!r} has non-finite values")
        self.step_count += 1
        for name, p, g in self.entries:
            self._update(name, p, g)

    def zero_grad(self) -> None:
        for _, _, g in self.entries:
            g.fill(0.0)

    def state_dict(self) -> dict[str, Any]:
        """{"meta": JSON-able (type, step, hyperparameters, names), "arrays": copies of the buffers}."""
        meta = {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "hyperparameters": self.hyperparameters(),
            "names": [name for name, _, _ in self.entries],
        }
        arrays = {f"{slot}.{name}": buf.copy() for slot, bufs in self.state.items() for name, buf in bufs.items()}
        return {"meta": meta, "arrays": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore step count, hyperparameters and buffers from `state_dict()`'s output.

        All problems (wrong optimizer type, different parameters, missing, unexpected or
        misshaped buffers) are named in one ValueError, and nothing is changed.
        """
        who = f"{type(self).__name__}.load_state_dict"
        meta, arrays = state.get("meta", {}), state.get("arrays", {})
        problems = []
        if meta.get("type") != type(self).__name__:
            problems.append(f"state is for {meta.get('type')!r}")
        names = [name for name, _, _ in self.entries]
        if meta.get("names") != names:
            problems.append(f"state is for parameters {meta.get('names')}, this optimizer has {names}")
        step = meta.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            problems.append(f"step must be an int >= 0, got {step!r}")
        expected = {f"{slot}.{name}": buf for slot, bufs in self.state.items() for name, buf in bufs.items()}
        buffer_problems, converted = named_array_problems(expected, arrays)
        problems += [f"buffers: {p}" for p in buffer_problems]
        if problems:
            raise ValueError(f"{who}: " + "; ".join(problems))
        self._set_hyperparameters(meta.get("hyperparameters", {}))
        self.step_count = step
        for k, buf in expected.items():
            np.copyto(buf, converted[k])


# ------------------------------------------------------------------------------ SGD
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (PyTorch's form, no dampening).

        momentum = 0:   p <- p - lr g
        momentum = mu:  v <- mu v + g;   p <- p - lr v       (v starts at 0, so v_1 = g)
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)

    def __init__(self, params: Params, lr: float, momentum: float = 0.0) -> None:
        self.momentum = _beta("SGD", "momentum", momentum)
        self.slots = ("momentum",) if self.momentum > 0.0 else ()
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum}

    def _set_hyperparameters(self, hyper: dict[str, Any]) -> None:
        # The momentum decides which buffers exist, so it is not changed by a load.
        self.lr = float(hyper["lr"])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.momentum > 0.0:
            v = self.state["momentum"][name]
            v *= self.momentum
            v += g
            p -= self.lr * v
        else:
            p -= self.lr * g


# ------------------------------------------------------------------------------ Adam
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with optional L2 in the gradient (torch.optim.Adam).

        g <- g + wd p
        m <- b1 m + (1 - b1) g              v <- b2 v + (1 - b2) g^2
        mhat = m / (1 - b1^t)               vhat = v / (1 - b2^t)
        p <- p - lr mhat / (sqrt(vhat) + eps)

    The bias corrections undo the pull of m0 = v0 = 0 towards zero in the first steps.
    """

    slots = ("m", "v")
    #: weight decay applied as L2 in the gradient (Adam) or decoupled (AdamW).
    decoupled = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        who = type(self).__name__
        if len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (b1, b2), got {betas!r}")
        self.betas = (_beta(who, "betas[0]", betas[0]), _beta(who, "betas[1]", betas[1]))
        self.eps = _nonneg(who, "eps", eps)
        self.weight_decay = _nonneg(who, "weight_decay", weight_decay)
        super().__init__(params, lr)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _set_hyperparameters(self, hyper: dict[str, Any]) -> None:
        self.lr = float(hyper["lr"])
        self.betas = (float(hyper["betas"][0]), float(hyper["betas"][1]))
        self.eps = float(hyper["eps"])
        self.weight_decay = float(hyper["weight_decay"])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        b1, b2 = self.betas
        t = self.step_count
        if self.weight_decay:
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay  # p - lr wd p: decay the weights, not the gradient
            else:
                g = g + self.weight_decay * p  # a new array: the caller's gradient is left as it was
        m = self.state["m"][name]
        v = self.state["v"][name]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        mhat = m / (1.0 - b1**t)
        vhat = v / (1.0 - b2**t)
        p -= self.lr * mhat / (np.sqrt(vhat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW.

        p <- p - lr wd p          (first, from the current weights)
        then the Adam step with g unchanged (no L2 term).
    """  # fmt: skip  # keeps the indented derivation (the formatter would flatten it)

    decoupled = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ------------------------------------------------------------------------------ clipping
def clip_grad_norm(grads: Module | Sequence[np.ndarray], max_norm: float, eps: float = CLIP_EPS) -> float:
    """Scale all gradients in place so that their global L2 norm is at most ~max_norm.

        total = sqrt(sum over all arrays and entries of g^2)
        if total > max_norm:  g <- g * max_norm / (total + eps)      (every array, same factor)

    Returns `total`, the norm before clipping (as torch.nn.utils.clip_grad_norm_). Accepts a
    Module (its gradients) or a list of float64 (or float32) arrays. A non-finite norm raises ValueError:
    scaling cannot repair a NaN or an infinity, and it means training has diverged.
    """
    arrays = [g for _, g in grads.named_grads()] if isinstance(grads, Module) else list(grads)
    for i, g in enumerate(arrays):
        if not isinstance(g, np.ndarray) or g.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"clip_grad_norm: gradient {i} must be a float64 (or float32) numpy array (it is scaled in place)"
            )
    max_norm = _nonneg("clip_grad_norm", "max_norm", max_norm)
    eps = _nonneg("clip_grad_norm", "eps", eps)
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in arrays))
    if not math.isfinite(total):
        bad = [i for i, g in enumerate(arrays) if not np.all(np.isfinite(g))]
        raise ValueError(f"clip_grad_norm: the gradient norm is {total} (non-finite values in gradients {bad})")
    if total > max_norm:
        scale = max_norm / (total + eps)
        for g in arrays:
            g *= scale
    return total


# ------------------------------------------------------------------------------ schedules
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear")


def scheduled_lr(
    step: int, *, lr: float, total_steps: int, warmup_steps: int = 0, decay: str = "constant", min_lr: float = 0.0
) -> float:
    """The learning rate of update number `step` (0-based) of a run of `total_steps` updates.

        warm-up (step < W):   lr_t = lr (t + 1) / W                       (linear, from lr/W up to lr)
        then, with progress p = (t - W) / max(1, N - 1 - W) in [0, 1]:
          constant:           lr_t = lr
          linear:             lr_t = min_lr + (lr - min_lr) (1 - p)
          cosine:             lr_t = min_lr + (lr - min_lr) (1 + cos(pi p)) / 2

    so the last update (t = N - 1) runs at exactly `min_lr` under a decay, and the first
    update after warm-up at exactly `lr`. Past the end (a run extended by --steps) the
    decayed rate stays at `min_lr`.
    """
    if decay not in SCHEDULES:
        raise ValueError(f"unknown learning-rate decay {decay!r}; choose one of: {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if decay == "constant":
        return lr
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps))
    if decay == "linear":
        return min_lr + (lr - min_lr) * (1.0 - p)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
