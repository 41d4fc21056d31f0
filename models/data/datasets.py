"""Small classification data sets: XOR, two moons, spirals, and Fisher's iris.

Everything is generated from a seed or shipped inside the package (iris, as
`models/data/iris.csv`): nothing is downloaded at run time.

Each loader returns a `Dataset`: float64 features `X` of shape (N, D) and integer class
labels `y` of shape (N,), split into train and test parts. Features of the generated and
shipped sets are standardized with the mean and standard deviation of the *training*
part (so the test part tells nothing to the scaling):

    x' = (x - mean_train) / std_train

Splits are stratified: each class is shuffled with the seed and the same fraction of it
goes to the test part, so both parts keep the class proportions.

    >>> from models.data.datasets import load_dataset
    >>> data = load_dataset("moons", seed=0)
    >>> data.X_train.shape, data.n_classes
    ((200, 2), 2)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np

# N samples, D features, K classes


@dataclass(frozen=True)
class Dataset:
    """A labelled data set split into train and test parts."""

    name: str  # "xor", "moons", "spirals" or "iris"
    X_train: np.ndarray  # (N_train, D) float64 features
    y_train: np.ndarray  # (N_train,) int64 class labels in [0, K)
    X_test: np.ndarray  # (N_test, D) float64 features, scaled like the training part
    y_test: np.ndarray  # (N_test,) int64 class labels
    class_names: tuple[str, ...]  # K names, index = label
    feature_names: tuple[str, ...]  # D names

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        """One line: name, sizes, classes."""
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test samples, "
            f"{self.n_features} features, {self.n_classes} classes ({', '.join(self.class_names)})"
        )


# ---------------------------------------------------------------------------- helpers
def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with `round(test_fraction * n_c)` samples of each class c in test.

    Each class is permuted with `rng` first; the result is sorted so the order of the
    samples does not depend on the class.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(members)))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def standardize(X_train: np.ndarray, X_test: np.ndarray, eps: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Scale both parts to zero mean and unit variance *per feature of the training part*.

    `eps` keeps a constant feature (std 0) from dividing by zero.
    """
    mean = X_train.mean(axis=0)  # (D,)
    std = X_train.std(axis=0)  # (D,)
    scale = 1.0 / np.maximum(std, eps)
    return (X_train - mean) * scale, (X_test - mean) * scale


def _split_and_scale(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    feature_names: tuple[str, ...],
    test_fraction: float,
    rng: np.random.Generator,
) -> Dataset:
    train, test = stratified_split(y, test_fraction, rng)
    X_train, X_test = standardize(X[train], X[test])
    return Dataset(
        name, X_train, y[train].astype(np.int64), X_test, y[test].astype(np.int64), class_names, feature_names
    )


def _check_counts(name: str, n: int, noise: float) -> None:
    if n < 2:
        raise ValueError(f"{name}: need at least 2 samples, got n={n}")
    if not (noise >= 0.0 and math.isfinite(noise)):
        raise ValueError(f"{name}: noise must be a finite number >= 0, got {noise!r}")


# ---------------------------------------------------------------------------- data sets
def xor() -> Dataset:
    """The four corners of the unit square, labelled x1 XOR x2 (train = test = all four).

    Not linearly separable: the smallest problem a hidden layer is needed for. The inputs
    stay 0/1 (no scaling), as in the classic formulation.
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
    y = np.array([0, 1, 1, 0], dtype=np.int64)  # (4,)
    return Dataset("xor", X, y, X.copy(), y.copy(), ("0", "1"), ("x1", "x2"))


def two_moons(n: int = 300, noise: float = 0.1, seed: int = 0, test_fraction: float = 1 / 3) -> Dataset:
    """Two interleaved half circles with Gaussian noise (default 200 train, 100 test).

    Class 0: (cos t, sin t),  class 1: (1 - cos t, 1/2 - sin t),  t ~ U[0, pi], plus
    N(0, noise^2) on each coordinate.
    """
    _check_counts("moons", n, noise)
    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = rng.uniform(0.0, math.pi, n0)
    t1 = rng.uniform(0.0, math.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)  # (n0, 2)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)  # (n1, 2)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))  # (n, 2)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    return _split_and_scale("moons", X, y, ("upper", "lower"), ("x1", "x2"), test_fraction, rng)


def spirals(
    n: int = 300, classes: int = 3, noise: float = 0.2, turns: float = 0.75, seed: int = 0, test_fraction: float = 1 / 3
) -> Dataset:
    """`classes` interleaved spiral arms with noise on the angle (default 3 arms, 200 train).

    Arm k: radius r ~ U[0, 1], angle theta = 2 pi (k / K + turns r) + N(0, noise^2),
    point (r cos theta, r sin theta).
    """
    _check_counts("spirals", n, noise)
    if classes < 2:
        raise ValueError(f"spirals: need at least 2 classes, got classes={classes}")
    rng = np.random.default_rng(seed)
    counts = [n // classes + (1 if k < n % classes else 0) for k in range(classes)]
    points, labels = [], []
    for k, m in enumerate(counts):
        r = rng.uniform(0.0, 1.0, m)
        theta = 2.0 * math.pi * (k / classes + turns * r) + noise * rng.standard_normal(m)
        points.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))  # (m, 2)
        labels.append(np.full(m, k, np.int64))
    X = np.concatenate(points)  # (n, 2)
    y = np.concatenate(labels)  # (n,)
    names = tuple(f"arm{k}" for k in range(classes))
    return _split_and_scale("spirals", X, y, names, ("x1", "x2"), test_fraction, rng)


IRIS_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width", "species")


def read_iris_csv() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The 150 rows of Fisher's iris from the package data: (X (150, 4), y (150,), species names)."""
    # one name per joinpath: Python 3.10's non-filesystem resources (a zipped install) take one
    text = resources.files("models.data").joinpath("iris.csv").read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader))
    if header != IRIS_COLUMNS:
        raise ValueError(f"models/data/iris.csv: expected the header {','.join(IRIS_COLUMNS)}, got {','.join(header)}")
    features: list[list[float]] = []
    species: list[str] = []
    for row in reader:
        if not row:
            continue
        features.append([float(v) for v in row[:4]])
        species.append(row[4])
    names = tuple(sorted(set(species)))
    X = np.array(features, dtype=np.float64)  # (150, 4)
    y = np.array([names.index(s) for s in species], dtype=np.int64)  # (150,)
    return X, y, names


def iris(seed: int = 0, test_fraction: float = 0.3) -> Dataset:
    """Fisher's iris (1936): 4 flower measurements in cm, 3 species, 50 of each.

    Stratified split (default 105 train / 45 test), standardized features.
    """
    X, y, names = read_iris_csv()
    rng = np.random.default_rng(seed)
    return _split_and_scale("iris", X, y, names, IRIS_COLUMNS[:4], test_fraction, rng)


# ---------------------------------------------------------------------------- by name
LOADERS: dict[str, Callable[..., Dataset]] = {
    "xor": lambda seed=0: xor(),
    "moons": lambda seed=0: two_moons(seed=seed),
    "spirals": lambda seed=0: spirals(seed=seed),
    "iris": lambda seed=0: iris(seed=seed),
}
DATASET_NAMES: tuple[str, ...] = tuple(LOADERS)


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """The data set called `name` (one of `DATASET_NAMES`) generated/split with `seed`.

    Raises ValueError listing the known names for an unknown one.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return LOADERS[name](seed=seed)
