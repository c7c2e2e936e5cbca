"""Window feature space: template-count vectors over a trained vocabulary, plus novelty features.

A window arrives here as a plain mapping ``template id -> count`` (this module knows nothing of log
lines). The vocabulary is the sorted list of template ids seen in training; ids are the stable hashes
that :mod:`pipeline.templates` assigns, so a vector means the same thing in every worker process and
after every restart or retraining.

Columns of the matrix, in order:

* one column per vocabulary template: ``log1p(count)``. The log damps long windows so that a block
  that wrote three times the usual lines is not, by length alone, "abnormal";
* ``log1p(total count)`` of the window;
* ``log1p(count of lines whose template is not in the vocabulary)`` and the number of distinct unseen
  templates. Both are always 0 in training, so an Isolation Forest never splits on them; they exist
  for the detector's explicit novelty term (see :mod:`models.detector`) and for explanations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXTRA_COLUMNS = ("total", "unseen_lines", "unseen_templates")


@dataclass
class FeatureSpace:
    """Maps count dictionaries to feature rows over a fixed vocabulary.

    ``fit`` learns the vocabulary and per-template statistics of normal windows (mean and standard
    deviation of each template's count), which explanations use as "expected".
    """

    vocabulary_: list[str] = field(default_factory=list)
    templates_: dict[str, str] = field(default_factory=dict)
    mean_: list[float] = field(default_factory=list)
    std_: list[float] = field(default_factory=list)

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
        self.mean_ = raw.mean(axis=0).tolist() if len(windows) else [0.0] * len(vocab)
        self.std_ = raw.std(axis=0).tolist() if len(windows) else [0.0] * len(vocab)
        return self

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

    def transform(self, windows: Iterable[Mapping[str, int]]) -> np.ndarray:
        """Feature rows: log1p counts over the vocabulary, then the columns in ``EXTRA_COLUMNS``."""
        windows = list(windows)
        counts = self.count_matrix(windows)
        index = self.index_
        extra = np.zeros((len(windows), len(EXTRA_COLUMNS)), dtype=np.float64)
        for row, window in enumerate(windows):
            unseen = {tid: n for tid, n in window.items() if tid not in index}
            extra[row, 0] = sum(window.values())
            extra[row, 1] = sum(unseen.values())
            extra[row, 2] = len(unseen)
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        return cls(
            vocabulary_=list(data["vocabulary"]),
            templates_=dict(data["templates"]),
            mean_=[float(x) for x in data["mean"]],
            std_=[float(x) for x in data["std"]],
        )
