"""Placing the anomaly threshold on the training windows' scores.

``contamination`` is the share of training windows the user expects to be abnormal (when given). The
obvious threshold is the ``1 - contamination`` quantile of training scores, but log windows are discrete:
thousands of sessions write exactly the same templates, so their scores are tied or nearly tied, and the
scores form a few tight clusters (one per common pattern) rather than a smooth tail. A quantile then
lands *inside* a cluster and cuts a group of identical windows in two, or sits on the score of a common
normal pattern so that every slightly less common normal pattern is flagged.

The rule used instead: contamination is an estimate, so any cut that flags between
``contamination / BAND_LOW`` and ``contamination * BAND_HIGH`` of the training windows is acceptable, and
among those the cut goes into the **widest gap** between consecutive training scores, with gaps weighted
down the further their share is from ``contamination`` (weight 1 at the target share, 0 at the band's
edges, linear in log share on each side). The threshold is the middle of that gap and a window is
abnormal when its score is strictly above it. On clustered scores this separates whole groups; on smooth
scores the weighting keeps the flagged share near ``contamination``. The band reaches further below the
target than above it because flagging too little is the cheaper mistake for an alerting system (pages
nobody reads get switched off) and because users overestimate contamination more often than not: when
1% of the windows are incidents and the default 3% is kept, the cut still falls in the gap after them.

Ties: when every score in the band is the same value, the threshold is that value, so the tied group is
*not* flagged. Tiny training sets (fewer windows than one expected anomaly can show up in,
``n * contamination * BAND_HIGH < 1``) get the largest training score as threshold: only a window more
abnormal than every training window is flagged.
"""

from __future__ import annotations

import math

import numpy as np

BAND_LOW = 4.0
BAND_HIGH = 2.0
_EDGE = 1.0 + 1e-9  # keeps a tiny positive weight at the band's edges


def calibrate_threshold(scores: np.ndarray, contamination: float) -> float:
    """Threshold for ``score > threshold`` from training ``scores`` (see the module docstring)."""
    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = len(values)
    if n == 0:
        raise ValueError("cannot calibrate a threshold on zero scores")
    target = n * contamination
    lo = max(1, math.ceil(target / BAND_LOW))
    hi = min(n - 1, math.floor(target * BAND_HIGH))
    if hi < lo:
        return float(values[0])
    flagged = np.arange(lo, hi + 1)
    gaps = values[flagged - 1] - values[flagged]
    log_share = np.log(flagged / target)
    weights = np.where(log_share < 0, 1.0 + log_share / math.log(BAND_LOW * _EDGE),
                       1.0 - log_share / math.log(BAND_HIGH * _EDGE))
    weighted = gaps * np.clip(weights, 0.0, None)
    if not np.any(weighted > 0):
        return float(values[lo])
    j = int(flagged[int(np.argmax(weighted))])
    return float((values[j - 1] + values[j]) / 2.0)


ESTIMATE_LEVEL = 0.05  # the combined tail probability below which a training window counts as a likely incident


def estimate_contamination(scores: np.ndarray, level: float = ESTIMATE_LEVEL) -> float:
    """Share of training windows in excess of what normal windows would put past ``level``.

    Scores are ``-log10`` of a combined tail probability (:mod:`models.combine`) that a normal window falls
    below ``level`` with probability at most ``level``; so of ``n`` windows about ``level * n`` pass it by
    chance and the rest estimate the incidents: ``(share past - level) / (1 - level)``, at least 0.
    """
    values = np.asarray(scores, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    past = float(np.mean(values > -math.log10(level)))
    return max(0.0, (past - level) / (1.0 - level))


def auto_threshold(scores: np.ndarray, target_fpr: float, estimate: float | None = None) -> tuple[float, float]:
    """``(threshold, estimated contamination)`` when the contamination is not given.

    The clean-training threshold ``-log10 target_fpr`` always applies (a window past it is flagged whatever
    the estimate); when the training windows hold more likely incidents than chance explains
    (:func:`estimate_contamination`), the cut may move lower, into a gap of the training scores near the
    estimated share (:func:`calibrate_threshold`), so that incidents common enough in training to look
    only mildly unusual are still flagged.
    """
    clean = -math.log10(target_fpr)
    if estimate is None:
        estimate = estimate_contamination(scores)
    if estimate * len(scores) < 1.0:
        return clean, estimate
    return min(clean, calibrate_threshold(scores, min(estimate, 0.45))), estimate
