"""`Module`: named numpy parameters and gradients in one flat buffer per module tree.

How a layer registers what it owns (two explicit calls, no attribute magic):

    class Block(Module):
        def __init__(self, C: int) -> None:
            super().__init__()                         # must come first
            self.ln1 = self.add_module("ln1", LayerNorm(C))
            self.add_param("W", np.zeros((C, C)))      # lives in self.params["W"]

The contract every Module keeps (layers, models, `Sequential`):

* Registration. `add_param(name, array)` stores a float64 copy in `self.params[name]` and
  a zero array of the same shape in `self.grads[name]`; `add_module(name, module)` nests a
  module, whose parameters appear under dotted names ("block.ln1.gamma") in
  `named_parameters()`, `state_dict()` and checkpoints. Order is registration order (params
  and submodules interleaved as they were added), so names, optimizer state and
  checkpoints line up from run to run.
* Flat storage. When the outermost `__init__` of an instance returns (the metaclass sees
  it; a subclass calls nothing), the whole tree is flattened: every parameter is copied
  into one 1-D float64 buffer `root.flat_params` (P,) and every gradient into
  `root.flat_grads` (P,), and `params[name]` / `grads[name]` of the root and of every
  submodule become VIEWS into them. Each submodule's `flat_params` / `flat_grads` is its
  own contiguous slice of the root's buffers (depth first, registration order, the order
  of `named_parameters()`). So one optimizer can step the whole model as one vector:

      Adam([(model.flat_params, model.flat_grads)], lr=1e-3)

  From then on arrays are never replaced, only updated in place (optimizers,
  `load_state_dict`, `zero_grad`), so a reference held by an optimizer or a cache stays
  valid. Hence two refusals, each a clear error: registering a parameter or submodule in a
  tree that is already flattened (RuntimeError: register everything in `__init__`), and a
  module nested in a second parent (ValueError: its arrays can be views into one buffer
  only; build a second instance instead). A module built on its own and then nested is
  flattened twice: its arrays move into the new root's buffer when that root's `__init__`
  returns, so nest a module before handing its arrays to an optimizer. (`copy.deepcopy`
  copies each array on its own and loses the views: to clone, build a new instance and
  `load_state_dict(old.state_dict())`.)
* `forward(x) -> y` caches what backward needs; `backward(dout) -> dx` ADDS (`+=`) each
  parameter's gradient into `self.grads[...]` (two backwards give the sum) and returns
  the gradient of the input (None when the input has none, e.g. integer token ids).
  `zero_grad()` sets every gradient to 0 in place.
* State. `state_dict()` gives copies; `load_state_dict(state)` checks every name and
  shape, reports all problems in one ValueError and changes nothing unless all is well.
  `save` / `load` / `load_weights` write and read npz + json (nn/checkpoint.py).
* dtype: every parameter and gradient is float64 (integers are converted; anything else,
  complex or text, is refused), until `set_dtype(np.float32)` on the root moves the whole
  tree into float32 buffers (for speed; float64 is for checking). Call it before handing
  the arrays to an optimizer: like nesting, it gives the tree new buffers.

`Sequential(*modules)` chains modules: forward in order, backward in reverse.
"""

# Shape legend: P number of parameters in a module tree (flat_params, flat_grads are (P,));
# every parameter keeps the shape it was registered with, and its gradient shares it.

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from nn._checks import named_array_problems
from nn.checkpoint import load_checkpoint, save_checkpoint

M = TypeVar("M", bound="Module")


class _FlattenAfterInit(type):
    """Metaclass of Module: after the outermost `__init__` of an instance, flatten its tree.

    `type.__call__` runs `__init__` once per construction (a subclass's `super().__init__()`
    does not pass through here), so this is exactly "when construction has finished".
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        module = super().__call__(*args, **kwargs)
        module._flatten()
        return module


class Module(metaclass=_FlattenAfterInit):
    """Base class of layers and models that own parameters (the contract: module docstring)."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._modules: dict[str, Module] = {}
        self._order: list[str] = []  # names of params and submodules, as registered
        self._parent: Module | None = None  # the module this one is registered in
        self._name_in_parent = ""
        # Slices of the root's buffers once the tree is flattened; None while it is being built.
        self._flat_params: np.ndarray | None = None
        self._flat_grads: np.ndarray | None = None
        self._dtype = np.dtype(np.float64)  # of the flat buffers; see set_dtype

    # -------------------------------------------------------------- registration
    def _check_initialised(self) -> None:
        if "_order" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before registering parameters")

    def _root(self) -> Module:
        module = self
        while module._parent is not None:
            module = module._parent
        return module

    def _check_new_name(self, name: str, what: str) -> None:
        self._check_initialised()
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"{type(self).__name__}: a parameter or submodule name must be a non-empty str without '.', got {name!r}"
            )
        if name in self.params or name in self._modules:
            raise ValueError(f"{type(self).__name__}: the name {name!r} is already registered")
        if self._root()._flat_params is not None:
            raise RuntimeError(
                f"{type(self).__name__}: cannot add {what} {name!r} after construction: the module tree's "
                f"flat buffer is fixed once the outermost __init__ returns; register it in __init__"
            )

    def add_param(self, name: str, array: Any) -> np.ndarray:
        """Register a parameter (a float64 copy) and its zero gradient; return the stored array.

        Only inside `__init__`. The returned array may be initialised in place there, but do
        not keep it: at the end of construction the parameter moves into the flat buffer,
        so read `self.params[name]` afterwards.
        """
        self._check_new_name(name, "parameter")
        given = np.asarray(array)
        if given.dtype.kind not in "iuf":  # bool, complex, text, objects: not a real parameter
            raise ValueError(
                f"{type(self).__name__}: parameter {name!r} must hold real numbers, got dtype {given.dtype}"
            )
        param = np.array(given, dtype=np.float64, copy=True)
        if not np.all(np.isfinite(param)):
            raise ValueError(f"{type(self).__name__}: parameter {name!r} has non-finite values")
        self.params[name] = param
        self.grads[name] = np.zeros_like(param)
        self._order.append(name)
        return param

    def add_module(self, name: str, module: M) -> M:
        """Register a submodule under `name` (only inside `__init__`); return it.

        A module has at most one parent: its arrays become views into that tree's buffer.
        """
        self._check_new_name(name, "submodule")
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: submodule {name!r} must be a Module, got {type(module).__name__}")
        module._check_initialised()
        if module._parent is not None:
            raise ValueError(
                f"{type(self).__name__}: submodule {name!r} ({type(module).__name__}) is already registered as "
                f"{module._name_in_parent!r} in a {type(module._parent).__name__}; a module can have one parent only "
                f"(its arrays are views into one buffer), so build a second instance"
            )
        ancestor: Module | None = self
        while ancestor is not None:
            if ancestor is module:
                raise ValueError(f"{type(self).__name__}: submodule {name!r} would contain itself")
            ancestor = ancestor._parent
        module._parent, module._name_in_parent = self, name
        for _, sub in module.named_modules():
            sub._flat_params = sub._flat_grads = None  # stale until this tree is flattened
        self._modules[name] = module
        self._order.append(name)
        return module

    # -------------------------------------------------------------- flat storage
    def _flatten(self) -> None:
        """Copy the tree's parameters and gradients into two flat buffers and keep views.

        Called once construction has finished (by the metaclass). A submodule waits for
        its root: the root's flatten places the whole tree.
        """
        self._check_initialised()
        if self._parent is not None:
            return
        total = self.num_parameters()
        flat_params = np.empty(total, dtype=self._dtype)  # (P,)
        flat_grads = np.empty(total, dtype=self._dtype)  # (P,)
        self._place(flat_params, flat_grads, 0)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of every parameter and gradient of the tree (float64 unless set_dtype changed it)."""
        return self._root()._dtype

    def set_dtype(self, dtype: Any) -> Module:
        """Move the whole tree into new flat buffers of `dtype` (float32 or float64); return self.

        Only on the root (the tree shares one buffer). Values are rounded to the new dtype;
        arrays held from before (an optimizer's, a cache's) no longer alias the parameters,
        so build the optimizer afterwards.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"{type(self).__name__}.set_dtype: float32 or float64, got {dtype}")
        if self._parent is not None:
            raise ValueError(f"{type(self).__name__}.set_dtype: call it on the root module, which owns the buffer")
        self._dtype = dtype
        if self._flat_params is not None:
            self._flatten()
        return self

    def _place(self, flat_params: np.ndarray, flat_grads: np.ndarray, start: int) -> int:
        """Move this module's parameters (then each submodule's, in order) to [start, end); return end."""
        end = start
        for name in self._order:
            if name in self.params:
                param, grad = self.params[name], self.grads[name]
                stop = end + param.size
                flat_params[end:stop] = param.reshape(-1)
                flat_grads[end:stop] = grad.reshape(-1)  # gradients so far are kept, not reset
                self.params[name] = flat_params[end:stop].reshape(param.shape)  # a view
                self.grads[name] = flat_grads[end:stop].reshape(param.shape)
                end = stop
            else:
                end = self._modules[name]._place(flat_params, flat_grads, end)
        self._flat_params, self._flat_grads = flat_params[start:end], flat_grads[start:end]
        return end

    @property
    def flat_params(self) -> np.ndarray:
        """Every parameter of this module and its submodules as one (P,) view into the root's buffer."""
        if self._flat_params is None:
            raise RuntimeError(f"{type(self).__name__}: flat_params exists once the outermost __init__ has returned")
        return self._flat_params

    # `m.flat_params += d` rebinds the attribute to the (same, updated in place) array; only
    # that is allowed: a different array would disconnect every view and every optimizer.
    @flat_params.setter
    def flat_params(self, value: np.ndarray) -> None:
        self._refuse_replacing("flat_params", self.flat_params, value)

    @property
    def flat_grads(self) -> np.ndarray:
        """The gradients, aligned with `flat_params` (P,)."""
        if self._flat_grads is None:
            raise RuntimeError(f"{type(self).__name__}: flat_grads exists once the outermost __init__ has returned")
        return self._flat_grads

    @flat_grads.setter  # the same rule as flat_params'
    def flat_grads(self, value: np.ndarray) -> None:
        self._refuse_replacing("flat_grads", self.flat_grads, value)

    def _refuse_replacing(self, name: str, current: np.ndarray, value: Any) -> None:
        if value is not current:
            raise AttributeError(
                f"{type(self).__name__}.{name} is never replaced (the named arrays are views into it); "
                f"write into it instead: .{name}[...] = values"
            )

    # -------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
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
        if self._flat_grads is not None:
            self._flat_grads.fill(0.0)
            return
        for _, g in self.named_grads():  # still being built
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

    # -------------------------------------------------------------- forward / backward
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """y from x; caches what `backward` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: Any) -> Any:
        """dL/dx from dL/dy = dout (after a forward); adds (+=) each parameter's gradient into `grads`."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_parameters()} parameters)"


class Sequential(Module):
    """Modules applied one after another: y = f_n(... f_2(f_1(x))).

    Submodules are named "0", "1", ... (so parameters are "0.W", "1.gamma", ...).
    Backward is the chain rule, module by module in reverse:

        dx_n = dout,   dx_{i-1} = f_i.backward(dx_i),   returns dx_0 = dL/dx
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if not modules:
            raise ValueError("Sequential: give at least one module")
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module.forward(x)
        return x

    def backward(self, dout: Any) -> Any:
        modules = list(self._modules.items())
        for i in range(len(modules) - 1, -1, -1):
            name, module = modules[i]
            dout = module.backward(dout)
            if dout is None and i > 0:
                raise RuntimeError(
                    f"Sequential: module {name!r} ({type(module).__name__}) returns no input gradient, so the "
                    f"modules before it cannot be backpropagated; it can only come first"
                )
        return dout
