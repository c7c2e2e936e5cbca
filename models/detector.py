"""The window anomaly detector: an Isolation Forest plus an explicit novelty term.

Score convention (the one used everywhere past this module): **higher score = more abnormal**.

``score = iforest_score + novelty_weight * [window holds a template never seen in training]``

* ``iforest_score`` is ``-IsolationForest.score_samples(X)``: the forest's anomaly score of the
  original paper, in (0, 1], about 0.5 for typical points and close to 1 for points isolated early.
* The novelty term exists because a template never seen in training is constant (zero) in every
  training row, so the forest can never split on it; without the term a window made of brand-new
  messages could look "average".

The threshold is calibrated on the training windows: the ``1 - contamination`` quantile of their
scores, so about ``contamination`` of training windows sit above it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest


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
        novelty_weight: float = 0.5,
        unseen_column: int = -1,
        random_state: int | None = 0,
    ) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.novelty_weight = novelty_weight
        self.unseen_column = unseen_column
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> WindowDetector:
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        if len(X) == 0:
            raise ValueError("cannot fit a detector on zero windows")
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination="auto",
            random_state=self.random_state,
        ).fit(X)
        train_scores = self.score(X)
        self.threshold_ = float(np.quantile(train_scores, 1.0 - self.contamination))
        self.n_train_ = int(len(X))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more abnormal."""
        if len(X) == 0:
            return np.zeros(0)
        base = -self.forest_.score_samples(X)
        novel = (X[:, self.unseen_column] > 0).astype(np.float64)
        return np.asarray(base + self.novelty_weight * novel, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """True where a row is anomalous (score strictly above the calibrated threshold)."""
        return self.score(X) > self.threshold_

    def get_params(self) -> dict[str, Any]:
        return {
            "contamination": self.contamination,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "novelty_weight": self.novelty_weight,
            "unseen_column": self.unseen_column,
            "random_state": self.random_state,
        }

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted attributes other than the forest (the forest is saved with skops)."""
        return {"threshold": self.threshold_, "n_train": self.n_train_}

    @classmethod
    def restore(cls, params: dict[str, Any], state: dict[str, Any], forest: IsolationForest) -> WindowDetector:
        det = cls(**params)
        det.forest_ = forest
        det.threshold_ = float(state["threshold"])
        det.n_train_ = int(state["n_train"])
        return det
