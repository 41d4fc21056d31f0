"""The learner's starting file (`DIR/NAME.py`) and its pytest file (`DIR/test_NAME.py`), as text.

The starting file holds the math as its docstring (from the library's docstrings, at the moment
`learn start` runs), the functions with exactly the names and signatures of twograd's own, each
with its reference's docstring and a `raise NotImplementedError` body. It imports nothing of
twograd's but `engine`'s functions the loops form needs on Values.
"""

from __future__ import annotations

import inspect
import textwrap

from models.learn.exercise import Exercise, Fn

#: the methods of the `value` exercise's class, and what each computes
VALUE_METHODS: tuple[tuple[str, str, str], ...] = (
    ("__add__", "self, other", "self + other (other may be a plain number)"),
    ("__radd__", "self, other", "other + self, when other is a plain number"),
    ("__mul__", "self, other", "self * other (other may be a plain number)"),
    ("__rmul__", "self, other", "other * self, when other is a plain number"),
    ("__pow__", "self, k", "self ** k for a plain number k"),
    ("exp", "self", "e ** self"),
    ("tanh", "self", "tanh(self)"),
    ("backward", "self", "fill .grad of every node this one depends on: d self / d node (self.grad = 1)"),
)


def _doc(text: str, indent: str) -> str:
    text = text.replace('"""', "'''").strip()
    return textwrap.indent(f'r"""{text}\n"""', indent)


#: what every forward and backward of an nn piece returns (nn's conventions); in every stub's header and in `show`
RETURN_CONTRACT = (
    "NAME_forward(...) returns (out, cache): the output and whatever your backward needs.\n"
    "NAME_backward(dout, cache) returns the tuple of the gradients of the loss with respect to the forward's\n"
    "inputs, in input order, each the shape of its input: a tuple even for one input, `return (dx,)`."
)


def gradient_names(ex: Exercise, stem: str) -> list[str]:
    """The inputs `stem_backward` returns gradients of, in order: those of the piece's first case (as the grader makes it)."""
    import numpy as np

    from models.learn.grade import registry_piece

    for spec in getattr(ex.grader, "specs", ()):
        if spec.backward == f"{stem}_backward":
            inputs, _ = registry_piece(spec.piece, spec.home).cases[0].make(np.random.default_rng(0))
            return list(inputs)
    return []


def backward_contract(ex: Exercise, fn: Fn) -> str:
    """What a backward takes and returns, by name and shape: what to derive, not how (the derivation is a hint)."""
    stem = fn.name[: -len("_backward")]
    names = gradient_names(ex, stem)
    grads = ", ".join(f"d{n}" for n in names) + ("," if len(names) == 1 else "")
    return "\n".join(
        textwrap.wrap(
            f"dout: dL/d(out), the shape of {stem}_forward's output; cache: what your {stem}_forward returned with it. "
            f"Return ({grads}): the gradient of the loss with respect to each input of {stem}_forward "
            f"({', '.join(names)}), each the shape of that input, in input order, as a tuple.",
            width=100,
        )
    )


def _function(ex: Exercise, fn: Fn) -> str:
    ref = fn.reference()
    doc = inspect.getdoc(ref) or ""
    if fn.alias:  # not one of our functions by that name: its contract, and where ours is
        doc = f"{fn.contract}\n\ntwograd's own version (a class there, one function here): {fn.location()}."
    elif fn.name.endswith("_backward"):  # its docstring is the derivation: the stub says what to return, not how
        doc = backward_contract(ex, fn)
    head = "\n".join(
        textwrap.wrap(f"def {fn.text_signature()}:", width=110, subsequent_indent="        ")
    )  # inside ( )
    return f"{head}\n{_doc(doc, '    ')}\n    raise NotImplementedError\n"


def _value_class() -> str:
    lines = [
        "class Value:",
        _doc("A scalar that remembers how it was computed, so backward() can fill .grad of every node.", "    "),
        "",
        "    def __init__(self, data):",
        "        self.data = float(data)",
        "        self.grad = 0.0",
        "",
    ]
    for name, args, what in VALUE_METHODS:
        lines += [f"    def {name}({args}):", f'        """{what}"""', "        raise NotImplementedError", ""]
    return "\n".join(lines)


def starting_file(ex: Exercise, workspace: str) -> str:
    """The text of DIR/NAME.py for a learner who starts `ex`."""
    head = [f"{ex.name}: {ex.title} ({ex.phase}).", "", f"Derive: {ex.derive}"]
    if ex.builds_on:
        head.append(f"Builds on: {', '.join(ex.builds_on)}.")
    head += [
        "",
        "Write the functions below with exactly these names and signatures; check your work with",
        f"    twograd learn check {ex.name} --dir {workspace}",
        f"and ask for a hint with `twograd learn hint {ex.name}` (its formula level gives the derivation).",
    ]
    if any(f.name.endswith("_backward") for f in ex.functions):
        head += ["", *RETURN_CONTRACT.split("\n"), "", "The math of the forward (from twograd's own docstrings):"]
    else:
        head += ["", "The math (from twograd's own docstrings):"]
    head += ["", ex.math_text()]
    imports = "import numpy as np  # noqa: F401\n"
    if any(f.name.endswith("_loops") for f in ex.functions):
        imports += (
            "\n# the loops form runs on floats and on engine.Values: use these, not math.exp / math.tanh;\n"
            "# data_of(v) is the plain float of a Value (of a float: itself), for a constant such as a row's max\n"
            "from engine import data_of, exp, log, sqrt, tanh  # noqa: F401\n"
        )
    fns = [_value_class() if ex.name == "value" else _function(ex, fn) for fn in ex.functions]
    # PEP 8: one blank line after the docstring, two around every top-level definition
    return _doc("\n".join(head), "") + "\n\n" + imports + "\n\n" + "\n\n\n".join(f.rstrip("\n") for f in fns) + "\n"


def test_file(ex: Exercise) -> str:
    """The text of DIR/test_NAME.py: `pytest DIR` runs the same check as `learn check` (the twograd plugin's fixtures)."""
    text = (
        f'"""pytest for the exercise {ex.name}, kept by `twograd learn start {ex.name}`; `pytest DIR` runs it.\n\n'
        f'The fixtures come from twograd\'s pytest plugin (models.learn.plugin).\n"""\n\n\n'
        f"def test_{ex.name}_check(learn_check):\n"
        f'    """The same check as `twograd learn check {ex.name}`: a failure shows the diagnosis."""\n'
        f'    learn_check("{ex.name}")\n'
    )
    loops = [f for f in ex.functions if f.name.endswith("_loops")]
    for lo in loops:
        stem = lo.name[: -len("_loops")]
        text += (
            f"\n\ndef test_{stem}_three_way(three_way):\n"
            f'    """Your {stem} in this process, three ways (graph, manual, numeric), against twograd\'s on its first case."""\n'
            f"    from {ex.name} import {stem}_backward, {stem}_forward, {stem}_loops\n\n"
            f'    three_way({stem}_loops, {stem}_forward, {stem}_backward, reference="{_piece_of(ex, stem)}")\n'
        )
    return text


def _piece_of(ex: Exercise, stem: str) -> str:
    for spec in getattr(ex.grader, "specs", ()):
        if spec.forward == f"{stem}_forward":
            return spec.piece
    return stem


#: twograd's own version of the exercises that are not a trio of nn functions, as a learner's file would hold it
_OWN: dict[str, str] = {
    "value": "from engine import Value  # noqa: F401\n",
    "gradcheck": "from engine.gradcheck import numerical_gradient  # noqa: F401\n",
    "causal_mask": "from nn.masks import causal_mask  # noqa: F401\n",
    "training_loop": '''import numpy as np
from nn.optim import SGD


def train(loss_and_grad, params, *, lr, steps):
    """twograd's SGD stepping the parameters in place; the loss of every step, before its update."""
    grads = {n: np.zeros_like(p) for n, p in params.items()}
    opt = SGD([(params[n], grads[n]) for n in params], lr=lr)
    losses = []
    for _ in range(steps):
        loss, g = loss_and_grad(params)
        for n in grads:
            grads[n][...] = g[n]
        opt.step()
        losses.append(loss)
    return losses
''',
    "adam": '''from nn.optim import Adam, AdamW


def adam_step(p, g, m, v, t, *, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled=False):
    """One step of twograd's Adam (AdamW when decoupled), from the moments m, v after t - 1 steps."""
    p, g = p.copy(), g.copy()
    opt = (AdamW if decoupled else Adam)([(p, g)], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    opt.state["m"]["0"][...] = m
    opt.state["v"]["0"][...] = v
    opt.step_count = t - 1
    opt.step()
    return p, opt.state["m"]["0"], opt.state["v"]["0"]
''',
}


def reference_file(ex: Exercise) -> str:
    """A learner's file holding twograd's own solution of `ex` (tests, and `train --learner` with our own pieces)."""
    if ex.name in _OWN:
        return _OWN[ex.name]
    lines = []
    for fn in ex.functions:
        module = fn.ref.partition(":")[0]
        lines.append(f"from {module} import {fn.name}  # noqa: F401")
    return "\n".join(lines) + "\n"
