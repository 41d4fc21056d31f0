"""Data sets: shapes, seeds, standardization, stratified splits, the shipped iris CSV."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from models.data.datasets import (
    DATASET_NAMES,
    IRIS_COLUMNS,
    iris,
    load_dataset,
    read_iris_csv,
    spirals,
    standardize,
    stratified_split,
    two_moons,
    xor,
)

# Standardized training features: mean 0 and std 1 up to float64 rounding over ~200 values.
STANDARDIZED_ATOL = 1e-12
# A stratified split puts round(fraction * n_c) of class c in the test part: rounding moves
# a class's test count at most one sample away from its exact share.
STRATIFIED_SLACK = 1.0
# Noise 0.3 against none moves the standardized points by up to ~1.4 (measured); 1e-3 is far below
# that and far above rounding, so "the noise shows" cannot pass by accident.
NOISE_VISIBLE_ATOL = 1e-3


def test_xor_is_the_truth_table() -> None:
    d = xor()
    assert d.name == "xor"
    assert d.X_train.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert d.y_train.tolist() == [0, 1, 1, 0]
    assert np.array_equal(d.X_test, d.X_train) and d.n_classes == 2


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_dataset_has_consistent_parts(name: str) -> None:
    d = load_dataset(name, seed=0)
    assert d.name == name
    for X, y in ((d.X_train, d.y_train), (d.X_test, d.y_test)):
        assert X.dtype == np.float64 and X.ndim == 2 and X.shape[1] == d.n_features
        assert y.dtype == np.int64 and y.shape == (X.shape[0],)
        assert y.min() >= 0 and y.max() < d.n_classes
        assert np.isfinite(X).all()
    assert len(d.feature_names) == d.n_features
    assert name in d.summary()


@pytest.mark.parametrize("name", ["moons", "spirals", "iris"])
def test_seeded_standardized_and_stratified(name: str) -> None:
    a, b, c = load_dataset(name, seed=0), load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    np.testing.assert_allclose(a.X_train.mean(axis=0), 0.0, atol=STANDARDIZED_ATOL)
    np.testing.assert_allclose(a.X_train.std(axis=0), 1.0, atol=STANDARDIZED_ATOL)
    # Stratified: each class's share of the test part is its share of the whole, to one sample.
    y_all = np.concatenate([a.y_train, a.y_test])
    for k in range(a.n_classes):
        expected = np.mean(y_all == k) * len(a.y_test)
        assert abs(np.sum(a.y_test == k) - expected) <= STRATIFIED_SLACK


def test_moons_and_spirals_sizes_and_noise() -> None:
    d = two_moons(n=300, noise=0.1, seed=0)
    assert (len(d.y_train), len(d.y_test)) == (200, 100)
    assert spirals(n=90, classes=3, seed=0).n_classes == 3
    clean = two_moons(n=40, noise=0.0, seed=0, test_fraction=0.0)
    noisy = two_moons(n=40, noise=0.3, seed=0, test_fraction=0.0)
    assert clean.y_train.shape == (40,) and len(clean.y_test) == 0
    assert np.max(np.abs(clean.X_train - noisy.X_train)) > NOISE_VISIBLE_ATOL
    with pytest.raises(ValueError, match="noise"):
        two_moons(noise=-1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        spirals(n=1)
    with pytest.raises(ValueError, match="classes"):
        spirals(classes=1)


def test_iris_is_shipped_package_data() -> None:
    text = resources.files("models").joinpath("data", "iris.csv").read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    assert lines[0] == ",".join(IRIS_COLUMNS)
    assert len(lines) == 151
    X, y, names = read_iris_csv()
    assert X.shape == (150, 4) and names == ("setosa", "versicolor", "virginica")
    assert np.bincount(y).tolist() == [50, 50, 50]
    assert X[0].tolist() == [5.1, 3.5, 1.4, 0.2]  # Fisher's first flower
    d = iris(seed=0)
    assert (len(d.y_train), len(d.y_test)) == (105, 45)
    assert np.bincount(d.y_test).tolist() == [15, 15, 15]


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(ValueError) as err:
        load_dataset("mnist")
    message = str(err.value)
    assert "mnist" in message and all(n in message for n in DATASET_NAMES)


def test_helpers() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 10 + [1] * 20)
    train, test = stratified_split(y, 0.3, rng)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(30))
    assert np.bincount(y[test]).tolist() == [3, 6]
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(y, 1.0, rng)
    X_train = np.array([[1.0, 5.0], [3.0, 5.0]])  # the second feature is constant
    a, b = standardize(X_train, np.array([[2.0, 6.0]]))
    assert a[:, 0].tolist() == [-1.0, 1.0] and a[:, 1].tolist() == [0.0, 0.0]
    assert np.isfinite(b).all() and b[0, 0] == 0.0
