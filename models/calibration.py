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


def calibrate_threshold(scores: np.ndarray, contamination: float, band_low: float = BAND_LOW,
                        band_high: float = BAND_HIGH) -> float:
    """Threshold for ``score > threshold`` from training ``scores`` (see the module docstring)."""
    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = len(values)
    if n == 0:
        raise ValueError("cannot calibrate a threshold on zero scores")
    target = n * contamination
    lo = max(1, math.ceil(target / band_low))
    hi = min(n - 1, math.floor(target * band_high))
    if hi < lo:
        return float(values[0])
    flagged = np.arange(lo, hi + 1)
    gaps = values[flagged - 1] - values[flagged]
    log_share = np.log(flagged / target)
    weights = np.where(log_share < 0, 1.0 + log_share / math.log(band_low * _EDGE),
                       1.0 - log_share / math.log(band_high * _EDGE))
    weighted = gaps * np.clip(weights, 0.0, None)
    if not np.any(weighted > 0):
        return float(values[lo])
    j = int(flagged[int(np.argmax(weighted))])
    return float((values[j - 1] + values[j]) / 2.0)


MAX_ESTIMATE = 0.25  # more "incidents" than this is the system's normal variety, not contamination
MIN_GROUP_EVIDENCE = math.log10(2.0)  # every incident window must have a combined tail probability <= 1/2
LEVEL_TOLERANCE = 0.01  # scores closer than this are one level (the tie-break moves tied windows by less)


def auto_threshold(scores: np.ndarray, target_fpr: float, group: np.ndarray) -> tuple[float, float]:
    """``(threshold, estimate)`` when the contamination is not given but estimated (``--contamination auto``).

    ``group`` marks the training windows that look like incidents (a separated rare group,
    :meth:`models.novelty.TemplateStats.contamination_rows`); ``estimate`` is its share. The clean-training
    cut ``-log10 target_fpr`` always applies (a window past it is flagged whatever the estimate). The cut
    moves lower only when the group is credible as contamination:

    * it holds at least one window and at most :data:`MAX_ESTIMATE` of them;
    * the calibrated score itself finds every member unusual: combined tail probability at most 1/2
      (:data:`MIN_GROUP_EVIDENCE`). A member the score finds ordinary means the rare templates are so many
      that holding one is the system's normal state, not an incident;
    * the score ranks the group above all but a few other windows: those scoring at least as high as its
      weakest member fit the clean budget (at most ``target_fpr`` of the windows outside the group), as
      every lower cut must. A group by its templates that the score mixes with many ordinary windows is
      the system's own variety (measured: a time-window run of Spark whose 31-window group reached down to
      a score of 0.32 flagged 14.4% of the test windows before this rule).

    The cut then flags every member (it lies below the group's weakest score level) and may go lower,
    into a wider gap of the training scores, as long as the other windows it flags stay within the
    clean-training budget: at most ``target_fpr`` of the windows outside the group. Among those cuts it
    takes the widest gap (its middle), as :func:`calibrate_threshold` does. Otherwise the estimate is
    reported as 0 and the cut is the clean one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    group = np.asarray(group, dtype=bool)
    clean = -math.log10(target_fpr)
    estimate = float(group.mean()) if len(group) else 0.0
    if not group.any() or estimate > MAX_ESTIMATE or float(scores[group].min()) < MIN_GROUP_EVIDENCE:
        return clean, 0.0
    weakest = float(scores[group].min())
    if int(np.sum(scores[~group] >= weakest - LEVEL_TOLERANCE)) > target_fpr * int(np.sum(~group)):
        return clean, 0.0
    order = np.argsort(-scores, kind="stable")
    values, members = scores[order], group[order]
    n = len(values)
    first = int(np.sum(values >= weakest - LEVEL_TOLERANCE))  # the cut flags at least the top `first`
    if first >= n:
        return min(clean, float(values[-1])), estimate
    budget = target_fpr * float(np.sum(~group))
    others = np.cumsum(~members)  # others[j - 1]: windows outside the group among the top j
    flagged = np.arange(first, n)  # candidate cuts flag the top j windows, between values[j-1] and values[j]
    allowed = flagged[(flagged == first) | (others[flagged - 1] <= budget)]
    gaps = values[allowed - 1] - values[allowed]
    j = int(allowed[int(np.argmax(gaps))])
    return min(clean, float((values[j - 1] + values[j]) / 2.0)), estimate
