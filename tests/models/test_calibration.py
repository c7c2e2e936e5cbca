from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calibration import BAND_HIGH, BAND_LOW, calibrate_threshold


def flagged_share(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(scores > threshold))


def test_cut_goes_between_clusters_not_through_one() -> None:
    # 95.5% common windows, then a cluster of 2.5% slightly odd ones and 2% clearly odd ones.
    scores = np.concatenate([np.full(955, 0.40), np.full(25, 0.62) + np.linspace(0, 0.01, 25),
                             np.full(20, 1.30) + np.linspace(0, 0.02, 20)])
    threshold = calibrate_threshold(scores, 0.03)
    assert 0.63 < threshold < 1.30  # between the two clusters, in the wide gap
    assert flagged_share(scores, threshold) == pytest.approx(0.02)


def test_all_tied_flags_nothing() -> None:
    scores = np.full(1000, 0.5)
    assert calibrate_threshold(scores, 0.03) == 0.5
    assert flagged_share(scores, 0.5) == 0.0


def test_tie_group_straddling_the_target_is_not_flagged() -> None:
    scores = np.concatenate([np.full(900, 0.3), np.full(90, 0.5), np.full(10, 0.9)])  # target 30 windows
    threshold = calibrate_threshold(scores, 0.03)
    assert flagged_share(scores, threshold) == pytest.approx(0.01)


def test_smooth_scores_keep_the_share_near_contamination() -> None:
    scores = np.random.default_rng(0).normal(size=20000)
    share = flagged_share(scores, calibrate_threshold(scores, 0.03))
    assert 0.03 / BAND_LOW <= share <= 0.03 * BAND_HIGH
    assert 0.02 <= share <= 0.04  # weighted towards the target when no gap stands out


def test_overestimated_contamination_still_cuts_after_the_odd_group() -> None:
    # 1% clearly odd windows, default contamination 3%: cut after them, not inside the normal bulk.
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(0.45, 0.05, 990), rng.normal(1.2, 0.05, 10)])
    threshold = calibrate_threshold(scores, 0.03)
    assert flagged_share(scores, threshold) == pytest.approx(0.01)


def test_tiny_sets_use_the_largest_score() -> None:
    assert calibrate_threshold(np.array([0.2, 0.7, 0.4]), 0.03) == 0.7
    assert calibrate_threshold(np.array([0.2]), 0.03) == 0.2
    with pytest.raises(ValueError):
        calibrate_threshold(np.array([]), 0.03)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-5, max_value=5, allow_nan=False), min_size=1, max_size=400),
       st.floats(min_value=0.001, max_value=0.45))
def test_never_flags_more_than_the_band_allows(values: list[float], contamination: float) -> None:
    scores = np.array(values)
    threshold = calibrate_threshold(scores, contamination)
    assert min(values) <= threshold <= max(values)
    assert int(np.sum(scores > threshold)) <= math.floor(len(values) * contamination * BAND_HIGH)
