"""Shared test set-up: the tests mirror the packages (tests/engine, tests/nn, tests/models,
tests/viz); helper modules that several of them import (strategies.py) live here, so this
folder is put on sys.path once for all of them.

numpy's BLAS runs on one thread in the tests, as the `twograd` command runs it (see
models/cli/__init__.py): the models are small, and two threads on two busy cores are slower.
Set here because this file is imported before any test module imports numpy.
"""

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
