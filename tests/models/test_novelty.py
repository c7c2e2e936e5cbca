from __future__ import annotations

import json

import numpy as np
import pytest

from models.novelty import (
    MIN_TAIL_SCALE,
    NOVEL_SHARE,
    RARE_SHARE,
    SESSION_TAIL_SCALE,
    TemplateStats,
    rarity_of_share,
    row_max,
)


def stats_of(counts: list[list[int]], repeat: int = 1) -> TemplateStats:
    return TemplateStats.fit(np.log1p(np.tile(np.asarray(counts, dtype=float), (repeat, 1))))


def test_rarity_scale_ends() -> None:
    assert rarity_of_share(np.array([0.5, RARE_SHARE]))[0] == 0.0
    assert rarity_of_share(np.array([RARE_SHARE]))[0] == pytest.approx(0.0)
    assert rarity_of_share(np.array([NOVEL_SHARE, NOVEL_SHARE / 10]))[0] == pytest.approx(1.0)
    assert rarity_of_share(np.array([NOVEL_SHARE / 10]))[0] == 1.0
    shares = np.array([0.04, 0.01, 0.001])
    assert np.all(np.diff(rarity_of_share(shares)) > 0)  # rarer share, higher rarity


def test_rarity_of_presence_and_absence() -> None:
    # column 0 in every window, column 1 in 1 of 100, column 2 in half of them
    counts = [[2, int(i == 0), i % 2] for i in range(100)]
    stats = stats_of(counts)
    r = stats.rarity(np.log1p(np.array([[2.0, 0, 1], [0.0, 1, 0]])))
    assert r[0].tolist() == [0.0, 0.0, 0.0]  # the usual state of every template
    # missing the one every window holds is rarer than holding the one 1 in 100 holds; the 50% one is common
    assert r[1, 0] > r[1, 1] > 0.1 and r[1, 2] == 0.0


def test_range_confidence_grows_with_the_training_set() -> None:
    confidence = [stats_of([[1]], repeat=n).range_confidence() for n in (1, 19, 100, 10_000)]
    assert confidence[0] == 0.0 and confidence[1] == 0.0  # beyond the largest of 19: a 1 in 20 event
    assert 0.0 < confidence[2] < confidence[3] and confidence[3] == pytest.approx(1.0, abs=1e-3)
    tiny = stats_of([[3], [5]])
    assert tiny.excess(np.log1p(np.array([[50.0]])))[0, 0] == 0.0


def test_range_excess() -> None:
    stats = stats_of([[1, 0], [3, 5], [2, 2]], repeat=10_000)  # confidence 1: the bare excess
    e = stats.excess(np.log1p(np.array([[3.0, 5], [7.0, 0], [0.0, 11], [15.0, 23]])))
    assert e[0].tolist() == [0.0, 0.0]
    assert e[1, 0] == pytest.approx(1.0) and e[1, 1] == 0.0   # (1+7)/(1+3) = 2: one doubling
    assert e[2, 0] == 0.0 and e[2, 1] == pytest.approx(1.0)  # missing: rarity's business; 12/6 = 2
    assert e[3].tolist() == [1.0, 1.0]  # capped
    low = stats_of([[4], [7]], repeat=10_000).excess(np.log1p(np.array([[3.0], [0.0]])))
    assert low[0, 0] == pytest.approx(np.log2(5 / 4)) and low[1, 0] == 0.0  # below the minimum


def test_stats_round_trip_through_json_and_empty_inputs() -> None:
    stats = stats_of([[1, 0], [3, 5]])
    again = TemplateStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    probe = np.log1p(np.array([[9.0, 1], [0.0, 0]]))
    assert np.array_equal(again.rarity(probe), stats.rarity(probe))
    assert np.array_equal(again.excess(probe), stats.excess(probe))
    assert TemplateStats.fit(np.zeros((0, 3))).n_windows == 0
    assert row_max(np.zeros((4, 0))).tolist() == [0.0] * 4


def test_discounted_counts_suspect_windows_as_the_square_root_of_their_number() -> None:
    # 20 normal windows hold only A; 16 suspects hold A and B (B: a template only incidents write).
    counts = np.log1p(np.array([[1.0, 0.0]] * 20 + [[1.0, 2.0]] * 16))
    suspect = np.array([False] * 20 + [True] * 16)
    stats = TemplateStats.fit(counts)
    discounted = stats.discounted(counts, suspect)
    assert discounted.n_windows == 20 + 4
    assert discounted.present.tolist() == [24.0, 4.0]  # A keeps its 20 normal holders, B falls from 16 to 4
    assert np.array_equal(discounted.high, stats.high) and np.array_equal(discounted.tail_scale, stats.tail_scale)
    b_held = np.log1p(np.array([[1.0, 1.0]]))
    # holding B: share (16 + 1/2) / 37 before, (4 + 1/2) / 25 after
    assert discounted.rarity_p(b_held, np.zeros(1))[0] < stats.rarity_p(b_held, np.zeros(1))[0] / 2
    assert stats.discounted(counts, np.zeros(36, dtype=bool)) is stats
    again = TemplateStats.from_dict(json.loads(json.dumps(discounted.to_dict())))
    assert np.array_equal(again.present, discounted.present) and again.n_windows == 24
    assert TemplateStats.from_dict(json.loads(json.dumps(stats.to_dict()))).present.dtype == np.int64


def test_the_tail_floor_sets_how_fast_evidence_grows_past_the_trained_range() -> None:
    # One template, written 1-4 times by each of 600 windows: its fitted tail is steep, so the floor decides.
    counts = np.log1p(np.array([[1.0 + i % 4] for i in range(600)]))
    rate = TemplateStats.fit(counts)
    session = TemplateStats.fit(counts, tail_floor=SESSION_TAIL_SCALE)
    assert np.all(rate.tail_scale == MIN_TAIL_SCALE) and np.all(session.tail_scale == SESSION_TAIL_SCALE)
    k, n = rate.tail_rank(), 600
    probe = np.log1p(np.array([[4.0], [40.0], [400.0]]))
    # Zipf's law past the anchor (a count of 4): p = (k + 1) / (n + 1) * (1 + 4) / (1 + x), one template.
    expected = (k + 1) / (n + 1) * 5 / np.array([41.0, 401.0])
    assert session.excess_p(probe)[0] == pytest.approx(1.0)  # at the anchor: nothing
    assert session.excess_p(probe)[1:] == pytest.approx(expected, rel=1e-9)
    steep = rate.excess_p(probe)
    assert steep[1] < 1e-6 < expected[0] and steep[2] < steep[1]  # a quarter doubling per e-fold
    # Both stay monotone in the count, and within the trained range neither finds anything.
    assert np.all(np.diff(session.excess_p(probe)) < 0)
    assert session.excess_p(np.log1p(np.array([[2.0]])))[0] == pytest.approx(1.0)
    # The floor is saved with the statistics (as the fitted scales), so a restored model keeps it.
    assert np.array_equal(TemplateStats.from_dict(json.loads(json.dumps(session.to_dict()))).excess_p(probe),
                          session.excess_p(probe))
