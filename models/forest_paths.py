"""A fitted scikit-learn ``IsolationForest``'s ``score_samples``, all trees at once, bit for bit the same.

Why. ``IsolationForest.score_samples`` walks its trees one by one: each of the 200 trees costs a joblib task,
an input check and a ``tree.apply`` call, about a millisecond of fixed overhead per tree, whatever the batch
size. The streaming worker and ``detect`` score windows in batches of a few hundred (often a few), so that
fixed cost was most of the forest's time and a large share of all scoring (issue 14).

How. :class:`ForestPaths` flattens every tree once into shared node arrays (children, split column in the
forest's input, threshold, and the value a sample that ends in the node adds to its path-length sum), then
moves the whole ``(trees x samples)`` grid of current nodes down one level per step with numpy; a leaf points
to itself, so a sample that has arrived stays put.

Why the result is identical, not just close (``np.array_equal`` with scikit-learn, checked by a property
test over random forests and inputs):

* the input is cast to float32 as scikit-learn's validation does (``np.asarray(X, dtype=np.float32)``) and
  a float32 value is compared with the float64 threshold after the same widening as the tree's C code
  (``x <= threshold`` goes left);
* a tree fitted on a feature subset (``max_features < 1``) reads its columns through
  ``estimators_features_``, only when scikit-learn does (``_max_features != n_features``);
* a leaf's value is ``decision_path_length + average_path_length - 1.0``, computed per node with the same
  two float64 operations scikit-learn applies per sample (``_parallel_compute_tree_depths``);
* the per-tree values are added to a zero vector **in tree order**, one tree at a time, as scikit-learn's
  sequential ``depths += ...`` does (float addition is not associative, so a pairwise ``sum`` could differ
  in the last bit), then turned into the score by the same expression as ``_compute_score_samples``;
* input with a NaN (which scikit-learn routes by each node's ``missing_go_to_left``) is handed to
  scikit-learn itself: Logwarden's rows never hold one, and the fallback keeps the result exact regardless.

The arrays are derived from the forest, and a saved model keeps them beside it (``forest_paths.npz``, numpy
arrays only, read with ``allow_pickle=False`` and checked by sha256 like every model file; see
:mod:`models.artifacts`). Why save derived data: loading the forest from skops imports scikit-learn, scipy
and skops, about 2 s of CPU that every ``logwarden detect`` paid before reading its first line, while these
arrays load in milliseconds with numpy alone. :meth:`ForestPaths.from_arrays` rebuilds them without the forest,
which is then loaded only if something asks for it (the NaN fallback below, or saving the model again).
:class:`models.detector.WindowDetector` builds them on first use after a fit or an eager load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

GRID_CELLS = 1 << 20  # (trees x samples) cells walked at once: bounds the int64 temporaries to a few MiB
# The saved form: these arrays, with their dtypes, and three scalars held as 0-d arrays.
ARRAYS = {"children": np.int64, "columns": np.int64, "thresholds": np.float64, "values": np.float64,
          "roots": np.int64}
SCALARS = {"n_features": np.int64, "depth": np.int64, "denominator": np.float64}


class ForestPaths:
    """The flattened trees of one fitted ``IsolationForest`` (see the module docstring)."""

    forest: IsolationForest | None  # None when rebuilt from saved arrays: ``load_forest`` gives it on demand
    load_forest: Callable[[], IsolationForest] | None

    def __init__(self, forest: IsolationForest) -> None:
        from sklearn.ensemble._iforest import _average_path_length  # noqa: PLC0415

        self.forest = forest
        self.load_forest = None
        self.n_features = int(forest.n_features_in_)
        subsample = forest._max_features != self.n_features
        children, columns, thresholds, values, roots = [], [], [], [], []
        offset = 0
        depth = 0
        for tree_idx, (estimator, features) in enumerate(zip(forest.estimators_, forest.estimators_features_,
                                                             strict=True)):
            tree = estimator.tree_
            count = int(tree.node_count)
            left = np.asarray(tree.children_left, dtype=np.int64)
            right = np.asarray(tree.children_right, dtype=np.int64)
            leaf = left == -1
            own = np.arange(offset, offset + count, dtype=np.int64)
            pair = np.empty((count, 2), dtype=np.int64)
            pair[:, 0] = np.where(leaf, own, left + offset)
            pair[:, 1] = np.where(leaf, own, right + offset)
            feature = np.where(leaf, 0, np.asarray(tree.feature, dtype=np.int64))
            if subsample:
                feature = np.where(leaf, 0, np.asarray(features, dtype=np.int64)[feature])
            children.append(pair)
            columns.append(feature)
            thresholds.append(np.where(leaf, np.inf, np.asarray(tree.threshold, dtype=np.float64)))
            values.append(forest._decision_path_lengths[tree_idx] + forest._average_path_length_per_tree[tree_idx]
                          - 1.0)
            roots.append(offset)
            offset += count
            depth = max(depth, int(tree.max_depth))
        self.children = np.concatenate(children).ravel()  # node i's left child at 2i, right child at 2i + 1
        self.columns = np.concatenate(columns)
        self.thresholds = np.concatenate(thresholds)
        self.values = np.concatenate(values).astype(np.float64, copy=False)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        self.denominator = float(len(forest.estimators_) * _average_path_length([forest._max_samples])[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The saved form (:data:`ARRAYS` and :data:`SCALARS`), for ``np.savez``."""
        out = {name: np.asarray(getattr(self, name), dtype=dtype) for name, dtype in ARRAYS.items()}
        out.update({name: np.asarray(getattr(self, name), dtype=dtype) for name, dtype in SCALARS.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], load_forest: Callable[[], IsolationForest]) -> ForestPaths:
        """Rebuild from :meth:`arrays` without the forest; ``load_forest`` gives it when the NaN fallback needs it.

        Raises ValueError for arrays that cannot be a forest's (a missing name, another dtype or shape, a child
        or column out of range), so a malformed file ends in one clear error rather than a wrong score.
        """
        paths = cls.__new__(cls)
        paths.forest, paths.load_forest = None, load_forest
        for name, dtype in {**ARRAYS, **SCALARS}.items():
            if name not in arrays:
                raise ValueError(f"no {name!r} array")
            value = arrays[name]
            if value.dtype != dtype or value.ndim != (1 if name in ARRAYS else 0):
                raise ValueError(f"{name!r} is {value.dtype} with {value.ndim} dimensions")
            setattr(paths, name, value if name in ARRAYS else value.item())
        nodes = len(paths.thresholds)
        if (len(paths.children) != 2 * nodes or len(paths.columns) != nodes or len(paths.values) != nodes
                or not len(paths.roots) or paths.n_features < 1 or paths.depth < 0):
            raise ValueError("array lengths do not describe one forest")
        if nodes and (paths.children.min() < 0 or paths.children.max() >= nodes or paths.columns.min() < 0
                      or paths.columns.max() >= paths.n_features or paths.roots.min() < 0
                      or paths.roots.max() >= nodes):
            raise ValueError("a child, column or root index is out of range")
        return paths

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``forest.score_samples(X)`` for a dense 2-D array (the opposite of the anomaly score)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has shape {X.shape}, the forest expects {self.n_features} columns")
        if np.isnan(X).any():
            if self.forest is None:
                assert self.load_forest is not None
                self.forest = self.load_forest()
            return np.asarray(self.forest.score_samples(X))
        depths = np.zeros(len(X))
        step = max(1, GRID_CELLS // max(len(self.roots), 1))
        for start in range(0, len(X), step):
            depths[start:start + step] = self._depths(X[start:start + step])
        scores = 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths),
                                  where=self.denominator != 0))
        return np.asarray(-scores)

    def _depths(self, X: np.ndarray) -> np.ndarray:
        """Sum over trees, in tree order, of each row's leaf value."""
        flat = np.ascontiguousarray(X).ravel()
        starts = (np.arange(len(X), dtype=np.int64) * self.n_features)[None, :]
        nodes = np.repeat(self.roots[:, None], len(X), axis=1)
        for _ in range(self.depth):
            right = flat[starts + self.columns[nodes]] > self.thresholds[nodes]
            nodes = self.children[2 * nodes + right]
        depths = np.zeros(len(X))
        for per_tree in self.values[nodes]:
            depths += per_tree
        return depths

