"""Shared test set-up: the tests mirror the packages (tests/engine, tests/nn, tests/models,
tests/viz); helper modules that several of them import (strategies.py) live here, so this
folder is put on sys.path once for all of them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
