"""The model zoo, its training, data, experiments, the tour and the `twograd` command.

The public Python API (what a REPL or a notebook needs, without reading the source):

    >>> from models import train, sample, distill, align, tour    # the commands, as functions
    >>> from models import MLP, MLPConfig, GPT, GPTConfig, Trainer, TrainConfig
    >>> from models import ScalarMLP, Layer, Neuron                 # micrograd-style, on engine.Values

The rooms: `models.zoo` (the models), `models.training` (trainer, run folders, the task
table, sampling), `models.data` (data sets), `models.experiments` (distillation, alignment),
`models.tour_stages` (the tour's stages), `models.cli` (the command line). Names are loaded on first
use, so `import models` (and `twograd --help`) stays quick.
"""

from __future__ import annotations

# A user's own engine.py / models/ ... found first on sys.path: one ImportError naming it (engine/_siblings.py).
import importlib as _importlib
import importlib.util as _util
from pathlib import Path as _Path
from typing import Any as _Any

_spec = _util.spec_from_file_location(
    "twograd_siblings", _Path(__file__).resolve().parent.parent / "engine" / "_siblings.py"
)
assert _spec is not None and _spec.loader is not None  # a .py file always has both
_spec.loader.exec_module(_siblings := _util.module_from_spec(_spec))
_siblings.check_siblings(__name__, __file__)
del _util, _Path, _spec, _siblings

#: public name -> the module that defines it.
_PUBLIC: dict[str, str] = {
    "train": "models.api",
    "sample": "models.api",
    "distill": "models.api",
    "align": "models.api",
    "tour": "models.api",
    "TrainReport": "models.training.tasks",
    "Samples": "models.training.sampling",
    "DistillReport": "models.experiments.distill",
    "AlignResult": "models.experiments.align",
    "AlignConfig": "models.experiments.align",
    "TourResult": "models.tour_stages.runner",
    "MLP": "models.zoo.mlp",
    "MLPConfig": "models.zoo.mlp",
    "GPT": "models.zoo.gpt",
    "GPTConfig": "models.zoo.gpt",
    "Trainer": "models.training.trainer",
    "TrainConfig": "models.training.trainer",
    "ScalarMLP": "models.zoo.scalar_mlp",
    "Layer": "models.zoo.scalar_mlp",
    "Neuron": "models.zoo.scalar_mlp",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> _Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
