"""Window feature space: template-count vectors over a trained vocabulary, plus novelty features.

A window arrives here as a plain mapping ``template id -> count`` (this module knows nothing of log
lines). The vocabulary is the sorted list of template ids seen in training; ids are the stable hashes
that :mod:`pipeline.stages.templates` assigns, so a vector means the same thing in every worker process and
after every restart or retraining.

Columns of the matrix, in order:

* one column per vocabulary template: ``log1p(count)``. The log damps long windows so that a block
  that wrote three times the usual lines is not, by length alone, "abnormal";
* ``log1p(total count)`` of the window;
* ``log1p(count of lines whose template is not in the vocabulary)`` and the number of distinct unseen
  templates. Both are always 0 in training, so an Isolation Forest never splits on them; they exist
  for the detector's explicit novelty term (see :mod:`models.detector`) and for explanations.

``fit`` also keeps what explanations need to say *why* a window is unusual: per template the mean and
standard deviation of its count ("expected"), how many training windows held it (a template few
windows hold is rare, one nearly all hold is expected) and its smallest and largest count (the trained
range). The detector learns the same statistics from the feature rows themselves; both are plain lists
and save as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.novelty import RARE_SHARE, TemplateStats

EXTRA_COLUMNS = ("total", "unseen_lines", "unseen_templates")


@dataclass
class FeatureSpace:
    """Maps count dictionaries to feature rows over a fixed vocabulary.

    ``fit`` learns the vocabulary and per-template statistics of the training windows: mean and
    standard deviation of each template's count (explanations use them as "expected"), the number of
    windows holding it (``presence_``), its smallest and largest count (``min_``, ``max_``) and the
    number of training windows (``n_windows_``). Models saved before the last four existed load with
    them empty; :meth:`template_stats` is then None.
    """

    vocabulary_: list[str] = field(default_factory=list)
    templates_: dict[str, str] = field(default_factory=dict)
    mean_: list[float] = field(default_factory=list)
    std_: list[float] = field(default_factory=list)
    presence_: list[int] = field(default_factory=list)
    min_: list[float] = field(default_factory=list)
    max_: list[float] = field(default_factory=list)
    n_windows_: int = 0

    @property
    def index_(self) -> dict[str, int]:
        cached: dict[str, int] | None = getattr(self, "_index", None)
        if cached is None or len(cached) != len(self.vocabulary_):
            cached = {tid: i for i, tid in enumerate(self.vocabulary_)}
            object.__setattr__(self, "_index", cached)
        return cached

    def fit(self, windows: Iterable[Mapping[str, int]], templates: Mapping[str, str]) -> FeatureSpace:
        windows = list(windows)
        vocab = sorted({tid for counts in windows for tid in counts})
        self.vocabulary_ = vocab
        self.templates_ = {tid: templates.get(tid, "") for tid in vocab}
        raw = self.count_matrix(windows)
        empty = [0.0] * len(vocab)
        self.mean_ = raw.mean(axis=0).tolist() if len(windows) else empty
        self.std_ = raw.std(axis=0).tolist() if len(windows) else list(empty)
        self.presence_ = [int(x) for x in (raw > 0).sum(axis=0)]
        self.min_ = raw.min(axis=0).tolist() if len(windows) else list(empty)
        self.max_ = raw.max(axis=0).tolist() if len(windows) else list(empty)
        self.n_windows_ = len(windows)
        return self

    def _derived(self) -> tuple[TemplateStats | None, list[int]]:
        """Per-model values explanations need for every window, computed once (refit replaces the lists)."""
        key = (id(self.vocabulary_), id(self.mean_), id(self.presence_), self.n_windows_)
        cached = getattr(self, "_derived_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        stats = None
        if self.n_windows_ > 0 and len(self.presence_) == len(self.vocabulary_) == len(self.min_) == len(self.max_):
            stats = TemplateStats(
                n_windows=self.n_windows_,
                present=np.asarray(self.presence_, dtype=np.int64),
                low=np.log1p(np.asarray(self.min_, dtype=np.float64)),
                high=np.log1p(np.asarray(self.max_, dtype=np.float64)),
            )
        usual_share = (1.0 - RARE_SHARE) * self.n_windows_
        usual = [col for col, mean in enumerate(self.mean_)
                 if mean >= 0.5 or (stats is not None and self.presence_[col] >= usual_share)]
        object.__setattr__(self, "_derived_cache", (key, stats, usual))
        return stats, usual

    def template_stats(self) -> TemplateStats | None:
        """The novelty statistics of the vocabulary (None for a model saved without them)."""
        return self._derived()[0]

    def usual_columns(self) -> list[int]:
        """Templates a normal window holds: mean count at least 0.5, or held by nearly every window."""
        return self._derived()[1]

    def count_matrix(self, windows: Iterable[Mapping[str, int]]) -> np.ndarray:
        """Raw counts per vocabulary template (no extra columns); unseen ids are ignored here."""
        index = self.index_
        windows = list(windows)
        out = np.zeros((len(windows), len(self.vocabulary_)), dtype=np.float64)
        for row, counts in enumerate(windows):
            for tid, n in counts.items():
                col = index.get(tid)
                if col is not None:
                    out[row, col] = n
        return out

    def transform(self, windows: Iterable[Mapping[str, int]], counts: np.ndarray | None = None) -> np.ndarray:
        """Feature rows: log1p counts over the vocabulary, then the columns in ``EXTRA_COLUMNS``.

        ``counts`` is :meth:`count_matrix` of ``windows`` when the caller keeps it for more (the scorer's
        explanations read the same matrix), so that it is built once.
        """
        windows = list(windows)
        if counts is None:
            counts = self.count_matrix(windows)
        index = self.index_
        rows: list[tuple[Any, Any, int]] = []
        for window in windows:
            if not index.keys() >= window.keys():  # walks the window's ids only (probes the index), builds nothing
                unseen = {tid: n for tid, n in window.items() if tid not in index}
                rows.append((sum(window.values()), sum(unseen.values()), len(unseen)))
            else:  # nearly every window: all its ids are known
                rows.append((sum(window.values()), 0, 0))
        extra = np.array(rows, dtype=np.float64).reshape(len(windows), len(EXTRA_COLUMNS))
        extra[:, :2] = np.log1p(extra[:, :2])
        return np.hstack([np.log1p(counts), extra])

    def unseen(self, window: Mapping[str, int]) -> dict[str, int]:
        index = self.index_
        return {tid: n for tid, n in window.items() if tid not in index}

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary_,
            "templates": self.templates_,
            "mean": self.mean_,
            "std": self.std_,
            "presence": self.presence_,
            "min": self.min_,
            "max": self.max_,
            "n_windows": self.n_windows_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        return cls(
            vocabulary_=list(data["vocabulary"]),
            templates_=dict(data["templates"]),
            mean_=[float(x) for x in data["mean"]],
            std_=[float(x) for x in data["std"]],
            presence_=[int(x) for x in data.get("presence", [])],
            min_=[float(x) for x in data.get("min", [])],
            max_=[float(x) for x in data.get("max", [])],
            n_windows_=int(data.get("n_windows", 0)),
        )
