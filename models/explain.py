"""Explanations: which templates made a window look unlike normal.

For each template the window holds, or that normal windows usually hold, compare the observed count
with the mean count in training windows ("expected"). Deviation is measured in units of the training
standard deviation (plus one, so that templates with no variance in training still rank by raw
difference). Templates never seen in training come first: they are the strongest single signal an
SRE can act on ("this message has never been written before").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.features import FeatureSpace


def explain(
    counts: Mapping[str, int],
    space: FeatureSpace,
    templates: Mapping[str, str],
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Return up to ``limit`` explanation entries, most telling first.

    Each entry: ``id``, ``template``, ``observed``, ``expected`` (mean count in training windows,
    rounded to 2 decimals) and ``new`` (True for a template not in the trained vocabulary).
    """
    index = space.index_
    entries: list[tuple[float, dict[str, Any]]] = []
    for tid, n in counts.items():
        if tid not in index:
            entry = {"id": tid, "template": templates.get(tid, ""), "observed": int(n), "expected": 0.0,
                     "new": True}
            entries.append((float("inf"), entry))
    candidates = set(counts) | {tid for tid, m in zip(space.vocabulary_, space.mean_, strict=True) if m >= 0.5}
    for tid in candidates:
        col = index.get(tid)
        if col is None:
            continue
        observed = int(counts.get(tid, 0))
        expected = space.mean_[col]
        deviation = abs(observed - expected) / (space.std_[col] + 1.0)
        if deviation < 0.5:
            continue
        text = templates.get(tid) or space.templates_.get(tid, "")
        entries.append(
            (deviation, {"id": tid, "template": text, "observed": observed,
                         "expected": round(expected, 2), "new": False})
        )
    entries.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
    return [entry for _, entry in entries[:limit]]
