"""`Module`: a named collection of numpy parameters, their gradients and submodules.

How a layer registers what it owns (two explicit calls, no attribute magic):

    class Block(Module):
        def __init__(self, C: int) -> None:
            super().__init__()                         # must come first
            self.ln1 = self.add_module("ln1", LayerNorm(C))
            self.add_param("W", np.zeros((C, C)))      # lives in self.params["W"]

* `add_param(name, array)` stores a float64 copy in `self.params[name]` and a zero array
  of the same shape in `self.grads[name]`. Backward passes add (`+=`) into `self.grads`.
* `add_module(name, module)` nests a module; its parameters appear under dotted names
  ("block.ln1.gamma") in `named_parameters()`, `state_dict()` and checkpoints.
* Order is registration order (params and submodules interleaved as they were added),
  so names, optimizer state and checkpoints line up from run to run.

Parameter arrays are never replaced, only updated in place (optimizers, `load_state_dict`,
`zero_grad`), so references held by an optimizer or a cache stay valid.
"""

# Shape legend: every parameter keeps the shape it was registered with; its gradient shares it.

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from nn._checks import named_array_problems
from nn.checkpoint import load_checkpoint, save_checkpoint

M = TypeVar("M", bound="Module")


class Module:
    """Base class of layers and models that own parameters (see the module docstring)."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._modules: dict[str, Module] = {}
        self._order: list[str] = []  # names of params and submodules, as registered

    # -------------------------------------------------------------- registration
    def _check_new_name(self, name: str) -> None:
        if "_order" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before registering parameters")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{type(self).__name__}: a parameter or submodule name must be a non-empty str without '.', got {name!r}")
        if name in self.params or name in self._modules:
            raise ValueError(f"{type(self).__name__}: the name {name!r} is already registered")

    def add_param(self, name: str, array: Any) -> np.ndarray:
        """Register a parameter (stored as a float64 copy) and its zero gradient; return the stored array."""
        self._check_new_name(name)
        param = np.array(array, dtype=np.float64, copy=True)
        if not np.all(np.isfinite(param)):
            raise ValueError(f"{type(self).__name__}: parameter {name!r} has non-finite values")
        self.params[name] = param
        self.grads[name] = np.zeros_like(param)
        self._order.append(name)
        return param

    def add_module(self, name: str, module: M) -> M:
        """Register a submodule under `name`; return it (for `self.x = self.add_module("x", ...)`)."""
        self._check_new_name(name)
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: submodule {name!r} must be a Module, got {type(module).__name__}")
        self._modules[name] = module
        self._order.append(name)
        return module

    # -------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> list[tuple[str, "Module"]]:
        """This module (name `prefix`) and every submodule, depth first, with dotted names."""
        out: list[tuple[str, Module]] = [(prefix, self)]
        for name in self._order:
            if name in self._modules:
                out += self._modules[name].named_modules(f"{prefix}{name}" if not prefix else f"{prefix}.{name}")
        return out

    def named_parameters_and_grads(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(dotted name, parameter, its gradient) for every parameter, in registration order."""
        out: list[tuple[str, np.ndarray, np.ndarray]] = []
        for name in self._order:
            if name in self.params:
                out.append((name, self.params[name], self.grads[name]))
            else:
                for sub_name, p, g in self._modules[name].named_parameters_and_grads():
                    out.append((f"{name}.{sub_name}", p, g))
        return out

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """(dotted name, parameter array) in registration order; the arrays themselves, not copies."""
        return [(n, p) for n, p, _ in self.named_parameters_and_grads()]

    def named_grads(self) -> list[tuple[str, np.ndarray]]:
        """(dotted name, gradient array), in the order of `named_parameters()`."""
        return [(n, g) for n, _, g in self.named_parameters_and_grads()]

    def parameters(self) -> list[np.ndarray]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every gradient to 0, in place (arrays held elsewhere see the zeros)."""
        for _, g in self.named_grads():
            g.fill(0.0)

    def num_parameters(self) -> int:
        return int(sum(p.size for _, p in self.named_parameters()))

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Dotted name -> a copy of each parameter."""
        return {n: p.copy() for n, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy `state`'s arrays into the parameters, in place.

        Every problem is collected first: missing names, unexpected names and arrays of
        the wrong shape are all named in one ValueError, and nothing is changed.
        """
        params = dict(self.named_parameters())
        problems, converted = named_array_problems(params, state)
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for n, a in converted.items():
            np.copyto(params[n], a)

    # -------------------------------------------------------------- checkpoints
    def save(self, path: str | Path, config: dict[str, Any] | None = None) -> Path:
        """Write `<path>.npz` (parameters) and `<path>.json` (class name, config) atomically.

        `config` is the keyword arguments that rebuild this module (`cls(**config)`),
        which `load` needs; it must be JSON-serializable. Returns the checkpoint's base path.
        """
        meta = {"module": type(self).__name__, "config": config, "num_parameters": self.num_parameters()}
        return save_checkpoint(path, self.state_dict(), meta)

    @classmethod
    def load(cls: type[M], path: str | Path) -> M:
        """Rebuild a module saved with `save(path, config)`: `cls(**config)`, then its weights."""
        arrays, meta = load_checkpoint(path)
        saved_as = meta.get("module")
        if saved_as != cls.__name__:
            raise ValueError(f"{path}: the checkpoint holds a {saved_as!r}, not a {cls.__name__!r}")
        config = meta.get("config")
        if not isinstance(config, dict):
            raise ValueError(
                f"{path}: the checkpoint has no config to rebuild {cls.__name__} from; build the module "
                f"yourself and call .load_weights(path)"
            )
        module = cls(**config)
        module.load_state_dict(arrays)
        return module

    def load_weights(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint's parameters into this module (in place); return its metadata."""
        arrays, meta = load_checkpoint(path)
        self.load_state_dict(arrays)
        return meta

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_parameters()} parameters)"
