"""The window anomaly detector: an Isolation Forest plus explicit novelty terms, and a calibrated threshold.

Score convention (the one used everywhere past this module): **higher score = more abnormal**.

Input rows are :class:`models.features.FeatureSpace` rows: ``log1p`` counts of the ``V`` vocabulary
templates, then the columns of ``EXTRA_COLUMNS`` (total, unseen lines, distinct unseen templates).
For a window ``x``::

    score(x) = iforest(x)
             + novelty_weight * max( max_t r_t(x), [x holds a template never seen in training] )
             + range_weight   * max_t e_t(x)

* ``iforest(x) = -IsolationForest.score_samples([log1p counts, presence])``: the anomaly score of the
  original paper, in (0, 1], 0.3-0.5 for typical windows and near 1 for windows isolated at once. The
  forest sees each template's ``log1p`` count (magnitude) and its presence as a 0/1 column (so a cut on
  presence is always available: on count columns most random cuts fall between two non-zero counts). It
  is the core scorer: it ranks unusual *combinations* and counts inside the trained range, and orders
  windows that the novelty terms rate alike.
* ``r_t`` is the **rarity** of the window's state for template ``t`` (holding a template that few
  training windows hold, or lacking one that nearly all hold), in [0, 1]; a template never seen in
  training counts as rarity 1. ``e_t`` is the **range excess** of ``t``'s count beyond the training
  minimum or maximum, in [0, 1] (1 at twice the maximum, scaled down for small training sets). Both
  are defined in :mod:`models.novelty`, which says why the forest needs them (it cannot split on a
  column that is constant in training, and cannot tell "beyond the maximum" from "at the maximum").
* Weights: with ``novelty_weight = 1`` a template held by 1% of training windows adds 0.26, one held by
  0.1% adds 0.63 and a never-seen one 1.0, more than the whole spread of forest scores over normal windows
  (about 0.3-0.4). ``range_weight = 0.5``: with thousands of training windows a count twice the trained
  maximum adds about 0.45, as much as a template seen in one window in 300.

The threshold is calibrated on the training windows' own scores with
:func:`models.calibration.calibrate_threshold` (about ``contamination`` of them above it, cut in a gap
between scores so that groups of identical windows are never split). The statistics behind the novelty
terms are computed in the same pass, not using any label, and saved as JSON by :meth:`fitted_state`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from models.calibration import calibrate_threshold
from models.features import EXTRA_COLUMNS
from models.novelty import TemplateStats, row_max

N_EXTRA = len(EXTRA_COLUMNS)
NOVELTY_WEIGHT = 1.0
RANGE_WEIGHT = 0.5
CHUNK_ROWS = 4096  # rows scored at once: bounds the (rows x templates) temporaries on wide vocabularies


class WindowDetector:
    """Scores feature rows from :class:`models.features.FeatureSpace`.

    Parameters are stored as given (scikit-learn convention); fitted attributes end in ``_``.
    ``unseen_column`` is the index of the "distinct unseen templates" column of the feature rows.
    """

    def __init__(
        self,
        contamination: float = 0.03,
        n_estimators: int = 200,
        max_samples: int | float | str = "auto",
        novelty_weight: float = NOVELTY_WEIGHT,
        range_weight: float = RANGE_WEIGHT,
        unseen_column: int = -1,
        random_state: int | None = 0,
    ) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.novelty_weight = novelty_weight
        self.range_weight = range_weight
        self.unseen_column = unseen_column
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> WindowDetector:
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError("cannot fit a detector on zero windows")
        if X.shape[1] < N_EXTRA:
            raise ValueError(f"feature rows need at least {N_EXTRA} columns, got {X.shape[1]}")
        self.n_templates_ = X.shape[1] - N_EXTRA
        self.stats_: TemplateStats | None = TemplateStats.fit(X[:, : self.n_templates_])
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination="auto",
            random_state=self.random_state,
        ).fit(self._forest_input(X))
        self.threshold_ = calibrate_threshold(self.score(X), self.contamination)
        self.n_train_ = int(len(X))
        return self

    def _forest_input(self, X: np.ndarray) -> np.ndarray:
        if self.stats_ is None:  # a model saved before the novelty terms: its forest saw every column
            return X
        counts = X[:, : self.n_templates_]
        return np.hstack([counts, counts > 0]).astype(np.float32)

    def components(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The score's parts per row: ``iforest``, ``rarity`` (incl. unseen) and ``excess``."""
        X = np.asarray(X, dtype=np.float64)
        if self.stats_ is not None and (X.ndim != 2 or X.shape[1] != self.n_templates_ + N_EXTRA):
            raise ValueError(f"feature rows have shape {X.shape}, the model expects "
                             f"{self.n_templates_ + N_EXTRA} columns")
        if len(X) <= CHUNK_ROWS:
            return self._components(X)
        chunks = [self._components(X[i:i + CHUNK_ROWS]) for i in range(0, len(X), CHUNK_ROWS)]
        return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}

    def _components(self, X: np.ndarray) -> dict[str, np.ndarray]:
        base = -self.forest_.score_samples(self._forest_input(X))
        unseen = (X[:, self.unseen_column] > 0).astype(np.float64)
        if self.stats_ is None:
            return {"iforest": base, "rarity": unseen, "excess": np.zeros(len(X))}
        counts = X[:, : self.n_templates_]
        rarity = np.maximum(row_max(self.stats_.rarity(counts)), unseen)
        return {"iforest": base, "rarity": rarity, "excess": row_max(self.stats_.excess(counts))}

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more abnormal (formula in the module docstring)."""
        if len(X) == 0:
            return np.zeros(0)
        parts = self.components(X)
        total = parts["iforest"] + self.novelty_weight * parts["rarity"] + self.range_weight * parts["excess"]
        return np.asarray(total, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """True where a row is anomalous (score strictly above the calibrated threshold)."""
        return self.score(X) > self.threshold_

    def get_params(self) -> dict[str, Any]:
        return {
            "contamination": self.contamination,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "novelty_weight": self.novelty_weight,
            "range_weight": self.range_weight,
            "unseen_column": self.unseen_column,
            "random_state": self.random_state,
        }

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted attributes other than the forest (the forest is saved with skops)."""
        state: dict[str, Any] = {"threshold": self.threshold_, "n_train": self.n_train_}
        if self.stats_ is not None:
            state.update(n_templates=self.n_templates_, stats=self.stats_.to_dict())
        return state

    @classmethod
    def restore(cls, params: dict[str, Any], state: dict[str, Any], forest: IsolationForest) -> WindowDetector:
        """Rebuild a fitted detector; a state without ``stats`` (older models) scores the old way."""
        known = cls().get_params()
        det = cls(**{k: v for k, v in params.items() if k in known})
        if "range_weight" not in params:  # older models: forest + unseen term only, their own weight
            det.range_weight = 0.0
        det.forest_ = forest
        det.threshold_ = float(state["threshold"])
        det.n_train_ = int(state["n_train"])
        det.stats_ = TemplateStats.from_dict(state["stats"]) if "stats" in state else None
        det.n_templates_ = int(state.get("n_templates", 0))
        return det
