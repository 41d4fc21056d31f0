"""The model zoo, data sets, training loops and the `twograd` command."""

# A user's own engine.py / models/ ... found first on sys.path: one ImportError naming it (engine/_siblings.py).
import importlib.util as _util
from pathlib import Path as _Path

_spec = _util.spec_from_file_location("twograd_siblings", _Path(__file__).resolve().parent.parent / "engine" / "_siblings.py")
_spec.loader.exec_module(_siblings := _util.module_from_spec(_spec))
_siblings.check_siblings(__name__, __file__)
del _util, _Path, _spec, _siblings
