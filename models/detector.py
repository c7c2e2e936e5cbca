"""The window anomaly detector: three calibrated components combined on one scale, and its threshold.

Score convention (the one used everywhere past this module): **higher score = more abnormal**.

Input rows are :class:`models.features.FeatureSpace` rows: ``log1p`` counts of the ``V`` vocabulary
templates, then the columns of ``EXTRA_COLUMNS`` (log total, log unseen lines, distinct unseen templates).
Each component turns a window into a tail probability against the training windows
(:mod:`models.combine` says why a minimum and not a sum combines them):

* ``iforest``: an Isolation Forest over ``log1p`` counts, presence (0/1) columns and the window's log total
  (unseen lines included, so a window of new templates is short on known ones). It ranks unusual
  *combinations* of counts. Two choices make it carry weight: ``max_samples = min(rows, 4096)`` (256 rows per
  tree see too little of a varied vocabulary), and the forest is fitted on the distinct training rows, each
  repeated ``ceil(sqrt(copies))`` times: a forest cannot separate identical points, so a group of a few dozen
  identical incident windows (unlabelled training holds its incidents) is never isolated and reads as normal
  ("masking"); the square root keeps common patterns dense without letting them drown the rest. With
  ``auto``, the rows of a separated rare group (the likely incidents) are kept once each
  (:meth:`WindowDetector._fit_forest`). Its ``p = (1 + #training windows scoring at least as high) / (n + 1)``.
* ``rarity``: the window's rarest template state (holding a template few training windows hold, lacking one
  nearly all hold, holding a new one), corrected for the ``V + 1`` templates it takes the minimum over
  (:meth:`models.novelty.TemplateStats.rarity_p`). A forest cannot split on a column that is constant in
  training, so this is the component for templates only incidents write.
* ``excess``: the window's most extreme count against each template's fitted upper tail (or below the
  smallest count of a template every window holds), corrected for ``V`` templates
  (:meth:`models.novelty.TemplateStats.excess_p`). A forest cannot tell "beyond the maximum" from "at it".
  Past the trained range the tail is a prior that depends on how windows are cut (``window_kind``):
  steep for fixed-length windows, where a count is a rate, Zipf-heavy for sessions, whose lengths are.

``score = -log10(min(1, min_k p_k / w_k))`` plus a tiny tie-break (weighted Bonferroni, weights ``w`` summing
to 1, :data:`WEIGHTS`). ``components()`` gives each ``-log10 p_k`` (the same scale).

Threshold (``contamination``):

* a float in (0, 0.5): that share of the training windows is expected to be abnormal; the cut is placed in
  a gap of the training scores near that share (:func:`models.calibration.calibrate_threshold`);
* ``"clean"``: the training windows are taken as normal; the cut is the score whose combined tail
  probability is ``target_fpr`` (``-log10 target_fpr``), the false-positive rate it allows;
* ``"auto"`` (default): the ``"clean"`` cut, lowered only for a group of training windows that looks like
  incidents (:func:`models.calibration.auto_threshold`): the windows in a template state fewer than 5% of
  them were in, when that group is *separated* (doubling the rarity level to 10% adds no window; when the
  rare states together are not, the windows holding a rare template and those lacking a usual one are each
  asked apart, :meth:`models.novelty.TemplateStats.contamination_rows`), holds at most 25% of the windows, every
  member has a combined tail probability of at most 1/2, and the score ranks the group as a block (other
  windows scoring as high as its weakest member: at most ``target_fpr`` of its size, rounded up). The cut
  then flags the whole group and may go lower only while the other windows it flags stay within
  ``target_fpr`` of them. A system's own long tail of rare templates is not separated, and a normal job
  phase with templates of its own is not a block in the score, so clean training keeps the clean cut.
  A small burst of a template of its own (three minutes of 5xx in 180) is such a group even where usual
  templates go missing now and then. When ``auto`` does find such a group, a second pass recalibrates
  rarity with the group's windows counted as the square root of their number and places the threshold
  again (:meth:`_second_pass`).
  The forest is fitted with each distinct row of a separated group once (:meth:`_fit_forest`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from models.calibration import MAX_ESTIMATE, auto_threshold, calibrate_threshold
from models.combine import combine, evidence, strongest
from models.features import EXTRA_COLUMNS
from models.forest_paths import ForestPaths
from models.novelty import MIN_TAIL_SCALE, SESSION_TAIL_SCALE, TemplateStats

if TYPE_CHECKING:  # scikit-learn is imported when a forest is fitted or loaded, not by `logwarden --help`
    from sklearn.ensemble import IsolationForest

N_EXTRA = len(EXTRA_COLUMNS)
COMPONENTS = ("iforest", "rarity", "excess")
WEIGHTS = {"iforest": 0.2, "rarity": 0.6, "excess": 0.2}
TARGET_FPR = 0.01
MAX_SAMPLES = 4096
SCORE_SAMPLE = 20000  # training forest scores kept for calibration (quantiles beyond that)
CHUNK_ROWS = 4096  # rows scored at once: bounds the (rows x templates) temporaries on wide vocabularies
# How heavy the count tails are past the trained range, by how the windows are cut (models.novelty.upper_tail).
TAIL_FLOORS = {"tumbling": MIN_TAIL_SCALE, "session": SESSION_TAIL_SCALE}


def _check_contamination(value: float | str) -> None:
    if isinstance(value, str):
        if value not in ("auto", "clean"):
            raise ValueError(f"contamination must be 'auto', 'clean' or a number in (0, 0.5), got {value!r}")
        return
    if not 0.0 < float(value) < 0.5:
        raise ValueError(f"contamination must be in (0, 0.5), got {value}")


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D array (equal bytes) and, per row, the index of its distinct row.

    Windows repeat: a batch of 512 HDFS sessions or Loghub time windows holds 10 to 200 distinct feature rows,
    and every component scores a row from that row alone, so each distinct row is scored once.
    """
    X = np.ascontiguousarray(X)
    if len(X) == 0 or X.shape[1] == 0:
        return X[:1], np.zeros(len(X), dtype=np.intp)
    keys = X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return X[first], inverse.ravel()


class WindowDetector:
    """Scores feature rows from :class:`models.features.FeatureSpace`.

    Parameters are stored as given (scikit-learn convention); fitted attributes end in ``_``.
    ``weights`` maps component names to their share of the false-alarm budget (None = :data:`WEIGHTS`;
    a component left out or at 0 is not used: the benchmark's ablation). ``window_kind`` (``"tumbling"`` or
    ``"session"``, the training job passes its ``--window``) sets how heavy the count tails are past the
    trained range (:data:`TAIL_FLOORS`, :func:`models.novelty.upper_tail` says why they differ).
    """

    forest_scores_: np.ndarray
    _load_forest: Callable[[], IsolationForest]  # set by restore() when the forest waits to be asked for

    def __init__(
        self,
        contamination: float | str = "auto",
        n_estimators: int = 200,
        max_samples: int = MAX_SAMPLES,
        target_fpr: float = TARGET_FPR,
        weights: dict[str, float] | None = None,
        random_state: int | None = 0,
        window_kind: str = "tumbling",
    ) -> None:
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.target_fpr = target_fpr
        self.weights = weights
        self.random_state = random_state
        self.window_kind = window_kind

    def fit(self, X: np.ndarray) -> WindowDetector:
        _check_contamination(self.contamination)
        if not 0.0 < self.target_fpr < 1.0:
            raise ValueError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        if self.window_kind not in TAIL_FLOORS:
            raise ValueError(f"window_kind must be one of {', '.join(TAIL_FLOORS)}, got {self.window_kind!r}")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError("cannot fit a detector on zero windows")
        if X.shape[1] < N_EXTRA:
            raise ValueError(f"feature rows need at least {N_EXTRA} columns, got {X.shape[1]}")
        self.n_templates_ = X.shape[1] - N_EXTRA
        self.n_train_ = int(len(X))
        self.stats_ = TemplateStats.fit(X[:, : self.n_templates_], TAIL_FLOORS[self.window_kind])
        group = np.zeros(len(X), dtype=bool)
        if self.contamination == "auto":
            group = self.stats_.contamination_rows(X[:, : self.n_templates_], X[:, self.n_templates_ + 2])
        self._fit_forest(X, group if group.mean() <= MAX_ESTIMATE else np.zeros_like(group))
        scores = self.score(X)
        self.train_scores_ = scores
        if self.contamination == "clean":
            self.threshold_ = -math.log10(self.target_fpr)
            self.contamination_estimate_ = 0.0
        elif self.contamination == "auto":
            self.threshold_, self.contamination_estimate_ = auto_threshold(scores, self.target_fpr, group)
        else:
            self.threshold_ = calibrate_threshold(scores, float(self.contamination))
            self.contamination_estimate_ = float(self.contamination)
        if self.contamination in ("auto", "clean") and self.n_train_ * self.target_fpr < 1.0:
            # Too few windows for a tail probability to reach target_fpr: flag what is beyond all of them.
            self.threshold_ = min(self.threshold_, float(scores.max()))
        if self.contamination == "auto" and self.contamination_estimate_ > 0:
            self._second_pass(X, group)
        return self

    def _second_pass(self, X: np.ndarray, group: np.ndarray) -> None:
        """Rarity recalibrated with the estimated contamination discounted, then the threshold placed again.

        The first pass found a separated rare group that the score ranks as a block (the ``auto`` estimate);
        its windows now count as the square root of their number in the template presence counts
        (:meth:`models.novelty.TemplateStats.discounted` says why not zero), so a template only incidents
        wrote reads as rare, not as "held by 3% of training". The forest is kept as fitted (it saw the group
        discounted already, :meth:`_fit_forest`). The threshold is recomputed the same way on the
        new training scores with the same group; when the group no longer passes as contamination there, the
        first pass is kept whole. Measured on the HDFS benchmark (seeds 0-4, 4 forest states): mean PR-AUC
        0.941 -> 0.959 at 3% contamination, 0.881 -> 0.930 at 10%, 0.971 -> 0.977 on clean training.
        """
        first = (self.stats_, self.train_scores_, self.threshold_, self.contamination_estimate_)
        self.stats_ = self.stats_.discounted(X[:, : self.n_templates_], group)
        scores = self.score(X)
        threshold, estimate = auto_threshold(scores, self.target_fpr, group)
        if estimate <= 0:
            self.stats_, self.train_scores_, self.threshold_, self.contamination_estimate_ = first
            return
        if self.n_train_ * self.target_fpr < 1.0:
            threshold = min(threshold, float(scores.max()))
        self.train_scores_, self.threshold_, self.contamination_estimate_ = scores, threshold, estimate

    def _fit_forest(self, X: np.ndarray, suspect: np.ndarray) -> None:
        """Fit the forest on the distinct training rows and keep its training scores for the p-value.

        A distinct row is repeated ``ceil(sqrt(copies))`` times (the module docstring says why), a row of a
        ``suspect`` window once. The suspects (``auto`` only) are the separated rare group
        (:meth:`models.novelty.TemplateStats.contamination_rows`, at most ``MAX_ESTIMATE`` of the windows):
        several dozen near-identical incident windows are a dense spot that a forest isolates late
        (masking), so their density is what is discounted; their rows stay, so the group's templates stay
        columns (a forest fitted without the group loses them and ranks far worse, 0.10). The group is
        taken by its templates, not by the score's verdict on it (the second pass's condition), because a
        masked forest is what keeps the score from ranking it as a block. Measured on the HDFS benchmark
        (seeds 0-4, 4 forest states): forest alone 0.852 -> 0.913, full 0.959 -> 0.965 (README, Quality).
        """
        rows = self._forest_input(X)
        distinct, copies = np.unique(rows[~suspect], axis=0, return_counts=True)
        repeats = np.ceil(np.sqrt(copies)).astype(np.int64)
        if suspect.any():
            suspects = np.unique(rows[suspect], axis=0)
            distinct = np.vstack([distinct, suspects])
            repeats = np.concatenate([repeats, np.ones(len(suspects), dtype=np.int64)])
        sample = np.repeat(distinct, repeats, axis=0)
        from sklearn.ensemble import IsolationForest  # noqa: PLC0415

        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(len(sample), int(self.max_samples)),
            random_state=self.random_state,
        ).fit(sample)
        train_forest = np.sort(-self._paths().score_samples(rows))
        if len(train_forest) > SCORE_SAMPLE:
            train_forest = np.quantile(train_forest, np.linspace(0.0, 1.0, SCORE_SAMPLE))
        self.forest_scores_ = train_forest

    def _forest_input(self, X: np.ndarray) -> np.ndarray:
        counts = X[:, : self.n_templates_]
        total = X[:, self.n_templates_: self.n_templates_ + 1]
        return np.hstack([counts, counts > 0, total]).astype(np.float32)

    @property
    def forest_(self) -> IsolationForest:
        """The fitted forest. A detector restored from saved flattened trees (:meth:`restore` with ``paths``)
        scores without it and loads it on first access (saving the model again, the NaN fallback)."""
        forest = self.__dict__.get("_forest")
        if forest is None:
            load: Callable[[], IsolationForest] | None = self.__dict__.get("_load_forest")
            if load is None:
                raise AttributeError("forest_: the detector is not fitted")
            forest = self._forest = load()
            del self._load_forest
        return forest

    @forest_.setter
    def forest_(self, forest: IsolationForest) -> None:
        """A new forest: its flattened trees are built again on first use."""
        self._forest = forest
        self.__dict__.pop("_load_forest", None)
        self.__dict__.pop("_paths_cache", None)

    def _paths(self) -> ForestPaths:
        """The forest's flattened trees (:mod:`models.forest_paths`), built on first use for each fitted forest
        (or given by :meth:`restore`, read from the saved model).

        Not pickled (:meth:`__getstate__`): a detector unpickled builds them again on its first batch.
        """
        paths: ForestPaths | None = self.__dict__.get("_paths_cache")
        if paths is None:
            paths = ForestPaths(self.forest_)
            self._paths_cache = paths
        return paths

    def __getstate__(self) -> dict[str, Any]:
        state = {key: value for key, value in self.__dict__.items() if key not in ("_paths_cache", "_load_forest")}
        if "_load_forest" in self.__dict__:  # a loader is a closure over a file: pickle the forest it gives
            state["_forest"] = self.forest_
        return state

    def _weights(self) -> dict[str, float]:
        return dict(WEIGHTS if self.weights is None else self.weights)

    def pvalues(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Each component's tail probability per row (see the module docstring)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_templates_ + N_EXTRA:
            raise ValueError(f"feature rows have shape {X.shape}, the model expects "
                             f"{self.n_templates_ + N_EXTRA} columns")
        distinct, inverse = distinct_rows(X)
        if len(distinct) <= CHUNK_ROWS:
            found = self._pvalues(distinct)
        else:
            chunks = [self._pvalues(distinct[i:i + CHUNK_ROWS]) for i in range(0, len(distinct), CHUNK_ROWS)]
            found = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        return {key: values[inverse] for key, values in found.items()}

    def _pvalues(self, X: np.ndarray) -> dict[str, np.ndarray]:
        forest = -self._paths().score_samples(self._forest_input(X))
        ranked = self.forest_scores_
        at_least = len(ranked) - np.searchsorted(ranked, forest - 1e-12, side="left")
        n = self.n_train_
        p_forest = (at_least * (n / len(ranked)) + 1.0) / (n + 1.0)
        counts = X[:, : self.n_templates_]
        unseen = X[:, self.n_templates_ + 2]
        return {
            "iforest": np.minimum(p_forest, 1.0),
            "rarity": self.stats_.rarity_p(counts, unseen),
            "excess": self.stats_.excess_p(counts),
        }

    def components(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Each component's evidence ``-log10 p`` per row: the scale of ``anomaly.components``."""
        return {name: evidence(p) for name, p in self.pvalues(X).items()}

    def score_and_reasons(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Scores, per-component evidence and the deciding component of every row, in one pass."""
        if len(X) == 0:
            return np.zeros(0), {name: np.zeros(0) for name in COMPONENTS}, []
        pvalues = self.pvalues(X)
        weights = self._weights()
        return (combine(pvalues, weights), {name: evidence(p) for name, p in pvalues.items()},
                strongest(pvalues, weights))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores, higher = more abnormal (formula in the module docstring)."""
        if len(X) == 0:
            return np.zeros(0)
        return combine(self.pvalues(X), self._weights())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """True where a row is anomalous (score strictly above the calibrated threshold)."""
        return self.score(X) > self.threshold_

    def get_params(self) -> dict[str, Any]:
        return {
            "contamination": self.contamination,
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "target_fpr": self.target_fpr,
            "weights": self.weights,
            "random_state": self.random_state,
            "window_kind": self.window_kind,
        }

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted attributes other than the forest (the forest is saved with skops)."""
        return {
            "threshold": self.threshold_,
            "n_train": self.n_train_,
            "n_templates": self.n_templates_,
            "contamination_estimate": self.contamination_estimate_,
            "stats": self.stats_.to_dict(),
            "forest_scores": [float(x) for x in self.forest_scores_],
        }

    @classmethod
    def restore(cls, params: dict[str, Any], state: dict[str, Any],
                forest: IsolationForest | Callable[[], IsolationForest],
                paths: ForestPaths | None = None) -> WindowDetector:
        """Rebuild a fitted detector from :meth:`get_params`, :meth:`fitted_state` and the forest.

        ``forest`` may be a function that loads it: with ``paths`` (the forest's saved flattened trees) the
        detector scores with ``paths`` and calls it only when :attr:`forest_` is asked for.
        """
        known = cls().get_params()
        det = cls(**{k: v for k, v in params.items() if k in known})
        if not callable(forest):  # a fitted IsolationForest (it is not callable)
            det.forest_ = forest
        elif paths is None:
            det.forest_ = forest()
        else:
            det._load_forest = forest
            det._paths_cache = paths
        det.threshold_ = float(state["threshold"])
        det.n_train_ = int(state["n_train"])
        det.n_templates_ = int(state["n_templates"])
        det.contamination_estimate_ = float(state["contamination_estimate"])
        det.stats_ = TemplateStats.from_dict(state["stats"])
        det.forest_scores_ = np.asarray(state["forest_scores"], dtype=np.float64)
        if len(det.forest_scores_) == 0:
            raise ValueError("forest_scores is empty")
        return det
