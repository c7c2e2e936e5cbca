"""ForestPaths must give scikit-learn's ``score_samples`` bit for bit (np.array_equal), not approximately."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from models.forest_paths import ForestPaths


def _data(seed: int, rows: int, cols: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "counts":  # like Logwarden's rows: log1p counts, many repeats and zeros
        return np.log1p(rng.poisson(rng.uniform(0.05, 3.0, cols), (rows, cols))).astype(np.float64)
    if kind == "ties":  # few distinct values: many splits between equal points
        return rng.integers(0, 3, (rows, cols)).astype(np.float64)
    return rng.normal(0.0, rng.uniform(0.1, 1e3), (rows, cols))


def _boundary_rows(forest: IsolationForest, base: np.ndarray) -> np.ndarray:
    """Rows whose values sit on, just below and just above the trees' thresholds (float32, as the trees read)."""
    rows = []
    subsample = forest._max_features != forest.n_features_in_
    for estimator, features in zip(forest.estimators_[:3], forest.estimators_features_[:3], strict=True):
        tree = estimator.tree_
        for node in np.flatnonzero(tree.children_left != -1)[:20]:
            column = int(features[tree.feature[node]]) if subsample else int(tree.feature[node])
            at = np.float32(tree.threshold[node])
            for value in (at, np.nextafter(at, np.float32(-np.inf)), np.nextafter(at, np.float32(np.inf))):
                row = base[len(rows) % len(base)].astype(np.float32).copy()
                row[column] = value
                rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(-1, base.shape[1])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    rows=st.integers(2, 300),
    cols=st.integers(1, 12),
    kind=st.sampled_from(["counts", "ties", "normal"]),
    n_estimators=st.integers(1, 12),
    max_samples=st.one_of(st.just("auto"), st.integers(1, 400), st.floats(0.05, 1.0)),
    max_features=st.one_of(st.floats(0.05, 1.0), st.integers(1, 12)),
    bootstrap=st.booleans(),
    test_rows=st.integers(0, 200),
)
def test_equals_sklearn_score_samples(seed: int, rows: int, cols: int, kind: str, n_estimators: int,
                                      max_samples: int | float | str, max_features: int | float, bootstrap: bool,
                                      test_rows: int) -> None:
    X = _data(seed, rows, cols, kind)
    if isinstance(max_features, int):
        max_features = min(max_features, cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_samples above the rows is clipped, with a warning
        try:
            forest = IsolationForest(n_estimators=n_estimators, max_samples=max_samples,
                                     max_features=max_features, bootstrap=bootstrap, random_state=seed).fit(X)
        except ValueError:  # scikit-learn refuses a few corners (a bootstrap of one row drawn zero times)
            assume(False)
            raise
    test = np.vstack([X, _data(seed + 1, test_rows, cols, kind) * 1.5, _boundary_rows(forest, X)])
    paths = ForestPaths(forest)
    assert np.array_equal(paths.score_samples(test), forest.score_samples(test))
    assert np.array_equal(paths.score_samples(test.astype(np.float32)), forest.score_samples(test))


def test_logwarden_forest_size_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    X = _data(3, 5000, 40, "counts")
    forest = IsolationForest(n_estimators=200, max_samples=4096, random_state=0).fit(X)
    paths = ForestPaths(forest)
    test = np.vstack([X[:700], _data(4, 300, 40, "counts") * 3])
    expected = forest.score_samples(test)
    assert np.array_equal(paths.score_samples(test), expected)
    monkeypatch.setattr("models.forest_paths.GRID_CELLS", 200 * 7)  # 7 rows per grid: many chunks
    assert np.array_equal(paths.score_samples(test), expected)


def test_infinite_values_follow_the_trees_and_nan_falls_back_to_sklearn() -> None:
    X = _data(5, 200, 4, "normal")
    forest = IsolationForest(n_estimators=20, random_state=1).fit(X)
    paths = ForestPaths(forest)
    odd = np.array([[np.inf, -np.inf, 0.0, 1e30], [-0.0, 0.0, np.inf, -1e30]])
    assert np.array_equal(paths.score_samples(odd), forest.score_samples(odd))
    missing = np.array([[np.nan, 0.0, 1.0, 2.0], [0.5, np.nan, np.nan, 0.0]])
    assert np.array_equal(paths.score_samples(missing), forest.score_samples(missing))


def test_empty_input_and_wrong_width() -> None:
    forest = IsolationForest(n_estimators=5, random_state=0).fit(_data(0, 50, 3, "normal"))
    paths = ForestPaths(forest)
    assert paths.score_samples(np.zeros((0, 3))).shape == (0,)
    with pytest.raises(ValueError, match="3 columns"):
        paths.score_samples(np.zeros((2, 4)))
