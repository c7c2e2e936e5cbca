"""Putting detector components on one scale and combining them (weighted Tippett / Bonferroni).

Every component of :mod:`models.detector` produces a **tail probability** ``p``: how likely a window of the
training distribution is to look at least this unusual by that component's measure. They are reported as
**evidence** ``-log10 p`` (0 = nothing unusual, 2 = a 1-in-100 event, 4 = 1 in 10,000), the scale of
``anomaly.components`` and of ``anomaly.score``.

Combination: a **weighted Bonferroni** (Tippett's minimum-p with unequal shares of the false-alarm budget)::

    p = min(1, min_k p_k / w_k),   sum_k w_k = 1,     score = -log10 p

Why not a sum (Fisher): a sum adds the noise of every component to every window, so one component's
ordinary tail (a count slightly past the trained maximum, a forest path a little short) lifts normal windows
over incidents that a sharper component had ranked first; measured on the HDFS benchmark, summing ranks
*below* the best single component. With a minimum, a window is as abnormal as its strongest calibrated
reason, and the window's ``reason`` is that component. The combined ``p`` is a valid tail probability for any
weights (the union bound), so a threshold on it keeps its meaning.

Ties (many windows share the same strongest reason: the same rare template) are broken by a tiny multiple of
the mean evidence (:data:`TIE_BREAK`), so windows that are unusual in several ways rank first among equals.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

TIE_BREAK = 1e-3
P_FLOOR = 1e-300


def evidence(p: np.ndarray) -> np.ndarray:
    """``-log10 p`` (0 for p = 1), floored so that p = 0 stays finite."""
    return np.asarray(-np.log10(np.clip(np.asarray(p, dtype=np.float64), P_FLOOR, 1.0)) + 0.0)


def combine(pvalues: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Combined score (weighted Bonferroni in ``-log10`` units, plus the tie-break) of per-component p-values."""
    names = [name for name in pvalues if weights.get(name, 0.0) > 0]
    if not names:
        raise ValueError("no component has a positive weight")
    total = sum(weights[name] for name in names)
    scaled = np.vstack([np.asarray(pvalues[name]) * total / weights[name] for name in names])
    combined = np.minimum(scaled.min(axis=0), 1.0)
    mean = np.vstack([evidence(pvalues[name]) for name in names]).mean(axis=0)
    return np.asarray(evidence(combined) + TIE_BREAK * mean)


def strongest(pvalues: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> list[str]:
    """Per row, the component that decided the combined score (smallest ``p / w``)."""
    names = [name for name in pvalues if weights.get(name, 0.0) > 0]
    scaled = np.vstack([np.asarray(pvalues[name]) / weights[name] for name in names])
    return [names[i] for i in np.argmin(scaled, axis=0)]
