"""Explanations: which templates made a window look unlike normal, strongest reason first.

Every entry compares what the window holds with training: ``observed`` count vs ``expected`` (the mean
count in training windows), plus ``share``, the fraction of training windows that held the template.
The order follows the detector's own reasons (:mod:`models.detector`), so the first lines say why the
score is high:

1. templates **never seen** in training (``new``): the strongest single signal an SRE can act on ("this
   message has never been written before");
2. templates whose **presence is rare**: written here but held by few training windows, or missing here
   while nearly every training window holds them (rarity, :mod:`models.novelty`); and counts **outside
   the trained range** (range excess). Ranked by their weighted contribution to the score;
3. the remaining templates whose count deviates most from the mean, in units of the training standard
   deviation plus one (so that templates with no variance in training still rank by raw difference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.features import FeatureSpace

MIN_DEVIATION = 0.5
NOVELTY_WEIGHT = 1.0  # rank a rare presence state above a count beyond the trained range of equal strength
RANGE_WEIGHT = 0.5
REASONS = {
    "iforest": "an unusual combination of template counts (isolation forest)",
    "rarity": "a template state few training windows were in (a rare, missing or new template)",
    "excess": "a count beyond what training windows wrote (range excess)",
}


def reason_text(component: str) -> str:
    """One sentence naming the component that made a window anomalous (``anomaly.reason``)."""
    return REASONS.get(component, component)


def _candidates(counts: Mapping[str, int], space: FeatureSpace) -> list[int]:
    """Vocabulary columns worth a look: held by the window, or usually held by training windows."""
    index = space.index_
    cols = {index[tid] for tid in counts if tid in index}
    cols.update(space.usual_columns())
    return sorted(cols)


def explain(
    counts: Mapping[str, int],
    space: FeatureSpace,
    templates: Mapping[str, str],
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Return up to ``limit`` explanation entries, most telling first.

    Each entry: ``id``, ``template``, ``observed``, ``expected`` (mean count in training windows,
    rounded to 2 decimals), ``new`` (True for a template not in the trained vocabulary) and ``share``
    (fraction of training windows holding the template, 0.0 for a new one).
    """
    index = space.index_
    entries: list[tuple[float, float, dict[str, Any]]] = []
    for tid, n in counts.items():
        if tid not in index:
            entry = {"id": tid, "template": templates.get(tid, ""), "observed": int(n), "expected": 0.0,
                     "new": True, "share": 0.0}
            entries.append((float("inf"), float("inf"), entry))
    cols = _candidates(counts, space)
    if cols:
        observed = np.array([counts.get(space.vocabulary_[c], 0) for c in cols], dtype=np.float64)
        reasons = np.zeros(len(cols))
        stats = space.template_stats()
        if stats is not None:
            sub = type(stats)(stats.n_windows, stats.present[cols], stats.low[cols], stats.high[cols])
            row = np.log1p(observed)[None, :]
            reasons = NOVELTY_WEIGHT * sub.rarity(row)[0] + RANGE_WEIGHT * sub.excess(row)[0]
        for k, col in enumerate(cols):
            tid = space.vocabulary_[col]
            expected = space.mean_[col]
            deviation = abs(observed[k] - expected) / (space.std_[col] + 1.0)
            if reasons[k] <= 0 and deviation < MIN_DEVIATION:
                continue
            share = space.presence_[col] / space.n_windows_ if stats is not None else None
            entry = {"id": tid, "template": templates.get(tid) or space.templates_.get(tid, ""),
                     "observed": int(observed[k]), "expected": round(expected, 2), "new": False,
                     "share": None if share is None else round(share, 4)}
            entries.append((float(reasons[k]), float(deviation), entry))
    entries.sort(key=lambda item: (-item[0], -item[1], item[2]["id"]))
    return [entry for _, _, entry in entries[:limit]]
