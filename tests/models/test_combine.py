"""Components on one scale: the weighted Bonferroni combination, its tie-break and the auto threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.artifacts import ModelBundle, load_bundle, save_bundle
from models.calibration import auto_threshold
from models.combine import TIE_BREAK, combine, evidence, strongest
from models.detector import WindowDetector
from models.errors import ModelError
from models.features import FeatureSpace
from models.novelty import TemplateStats

WEIGHTS = {"iforest": 0.2, "rarity": 0.6, "excess": 0.2}


def test_combined_score_is_the_strongest_weighted_component() -> None:
    p = {"iforest": np.array([0.5, 1e-3, 1.0]), "rarity": np.array([1e-4, 0.5, 1.0]),
         "excess": np.array([1.0, 1.0, 1.0])}
    score = combine(p, WEIGHTS)
    assert score[0] == pytest.approx(-math.log10(1e-4 / 0.6), abs=0.01)
    assert score[1] == pytest.approx(-math.log10(1e-3 / 0.2), abs=0.01)
    assert score[2] == pytest.approx(0.0, abs=1e-9)  # nothing unusual: evidence 0, never negative
    assert strongest(p, WEIGHTS)[:2] == ["rarity", "iforest"]


def test_ties_are_broken_by_the_mean_evidence() -> None:
    p = {"iforest": np.array([1e-2, 1.0]), "rarity": np.array([1e-3, 1e-3]), "excess": np.array([1.0, 1.0])}
    score = combine(p, WEIGHTS)
    assert score[0] > score[1]
    assert score[0] - score[1] == pytest.approx(TIE_BREAK * 2 / 3, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-12, 1.0), st.floats(1e-12, 1.0), st.floats(1e-12, 1.0)),
                min_size=1, max_size=30))
def test_combined_tail_probability_is_a_valid_union_bound(rows: list[tuple[float, float, float]]) -> None:
    arr = np.array(rows)
    p = {"iforest": arr[:, 0], "rarity": arr[:, 1], "excess": arr[:, 2]}
    score = combine(p, WEIGHTS)
    bound = np.minimum(1.0, np.min(arr / np.array([0.2, 0.6, 0.2]), axis=1))
    assert np.all(score >= evidence(bound) - 1e-9)
    assert np.all(score <= evidence(bound) + TIE_BREAK * 12.5)


def test_every_component_is_needed_for_its_own_kind_of_window() -> None:
    train = [{"open": 1, "write": 2 + i % 3, "close": 1, **({"verify": 1} if i % 2 else {})} for i in range(400)]
    space = FeatureSpace().fit(train, {})
    det = WindowDetector(random_state=0).fit(space.transform(train))
    probes = [{"open": 1, "write": 3, "close": 1, "NEW": 2},  # a new template: rarity
              {"open": 1, "write": 60, "close": 1},            # twenty times the usual writes: excess
              {"open": 1, "write": 3, "close": 1}]             # ordinary
    scores, parts, reasons = det.score_and_reasons(space.transform(probes))
    assert reasons[:2] == ["rarity", "excess"]
    assert scores[0] > det.threshold_ and scores[1] > det.threshold_ and scores[2] <= det.threshold_


def test_rarity_counts_only_templates_that_have_so_rare_a_state() -> None:
    n = 1000
    stats = TemplateStats.fit(np.log1p(np.array([[1, i % 2, 1 if i < 10 else 0] for i in range(n)], dtype=float)))
    # Lacking template 0 (held by all): share 0.5/1001. Template 1 (held by half) has no state that rare, nor
    # does template 2 (held by 10 windows: 10.5/1001); "some new template" does (no singletons: 0.5/1001).
    # So two states count, not all V + 1 = 4 as a Sidak correction would charge.
    p = stats.rarity_p(np.log1p(np.array([[0.0, 1.0, 0.0]])), np.array([0]))
    q = 0.5 / (n + 1)
    assert p[0] == pytest.approx(1 - (1 - q) ** 2, rel=1e-9)  # template 0's lacking state and a new template


def test_auto_threshold_flags_a_credible_group_and_keeps_the_clean_level_as_a_ceiling() -> None:
    scores = np.concatenate([np.linspace(0.0, 0.4, 960), np.linspace(1.5, 1.8, 40)])
    group = np.arange(1000) >= 960
    threshold, estimate = auto_threshold(scores, 0.01, group)
    assert 0.4 < threshold < 1.5 and estimate == pytest.approx(0.04)
    assert auto_threshold(scores, 0.01, np.zeros(1000, dtype=bool)) == (2.0, 0.0)
    assert auto_threshold(scores, 0.01, scores > 0.1)[0] == 2.0  # 75% of the windows: not contamination
    weak = group | (np.arange(1000) == 0)  # a member whose combined tail probability is 1: not credible
    assert auto_threshold(scores, 0.01, weak) == (2.0, 0.0)
    high = auto_threshold(scores + 5.0, 0.01, group)  # a group past the clean cut: the clean cut stays
    assert high == (2.0, pytest.approx(0.04))


def test_auto_threshold_goes_below_the_group_only_within_the_clean_budget() -> None:
    # Group of 50 at 1.5; 3 normal windows at 1.2 (0.3% of the others), then a wide gap; a tied normal level
    # of 30 windows at 0.6 (3%), a wider gap, the rest at 0.1 or below.
    scores = np.concatenate([np.full(50, 1.5), np.full(3, 1.2), np.full(30, 0.6), np.linspace(0.0, 0.1, 917)])
    group = np.arange(1000) < 50
    threshold, _ = auto_threshold(scores, 0.01, group)
    assert threshold == pytest.approx((1.2 + 0.6) / 2)  # the 3 strays fit the 1% budget, the 30 do not
    strict, _ = auto_threshold(scores, 0.001, group)  # 0.1% of 950 windows: not even the 3 strays
    assert strict == pytest.approx((1.5 + 1.2) / 2)


def test_auto_threshold_needs_the_score_to_rank_the_group_above_all_but_the_budget() -> None:
    # A group of 34 whose weakest members (0.35) are outscored by 10 other windows (0.4-0.6): more than 1% of the
    # 566 others, so the score mixes the group with ordinary windows: the system's variety, not incidents.
    scores = np.concatenate([np.full(20, 0.35), np.full(14, 1.5), np.linspace(0.4, 0.6, 10),
                             np.linspace(0.0, 0.25, 556)])
    group = np.arange(600) < 34
    assert auto_threshold(scores, 0.01, group) == (2.0, 0.0)
    # The same group with only 3 of them above it fits the budget: credible.
    block = np.concatenate([np.full(20, 0.35), np.full(14, 1.5), np.linspace(0.4, 0.6, 3),
                            np.linspace(0.0, 0.25, 563)])
    assert auto_threshold(block, 0.01, group)[0] < 0.35


def test_contamination_rows_need_a_separated_group() -> None:
    # 1000 windows: "ok" in all; 40 incidents write "err" (4%). Separated: no template between 5% and 10%.
    rows = [[1.0, 1.0 if i < 40 else 0.0, 0.0] for i in range(1000)]
    stats = TemplateStats.fit(np.log1p(np.array(rows)))
    X = np.log1p(np.array(rows))
    assert stats.contamination_rows(X, np.zeros(1000)).sum() == 40
    # Normal variety: a template held by 8% of the windows too; doubling the rarity level adds windows.
    varied = [[1.0, 1.0 if i < 40 else 0.0, 1.0 if 100 <= i < 180 else 0.0] for i in range(1000)]
    Xv = np.log1p(np.array(varied))
    stats_v = TemplateStats.fit(Xv)
    assert stats_v.rare_state_share(Xv, np.zeros(1000)) == pytest.approx(0.04)
    assert not stats_v.contamination_rows(Xv, np.zeros(1000)).any()


def test_a_separated_group_of_holders_counts_when_missing_templates_are_a_continuum() -> None:
    # 1000 windows; 40 incidents write "err" (4%). Four usual templates are each missing from a different
    # 3%-9% of the windows (a minute without a health check): every windows' share of missing states is a
    # continuum, so all rare states together are not separated, but the holders of a rare template are.
    lacking = {"L1": range(100, 130), "L2": range(200, 245), "L3": range(300, 370), "L4": range(400, 490)}
    rows = [[1.0, 1.0 if i < 40 else 0.0] + [0.0 if i in missing else 1.0 for missing in lacking.values()]
            for i in range(1000)]
    X = np.log1p(np.array(rows))
    stats = TemplateStats.fit(X)
    wider = stats.rare_state_rows(X, np.zeros(1000), 0.1).sum()
    assert wider > stats.rare_state_rows(X, np.zeros(1000)).sum()  # together: not separated
    group = stats.contamination_rows(X, np.zeros(1000))
    assert group.sum() == 40 and group[:40].all()
    # A held template at 8% too: the holders are no longer separated either, and missing ones never were.
    varied = [row + [1.0 if 600 <= i < 680 else 0.0] for i, row in enumerate(rows)]
    Xv = np.log1p(np.array(varied))
    assert not TemplateStats.fit(Xv).contamination_rows(Xv, np.zeros(1000)).any()


def test_models_of_the_previous_format_are_refused_in_one_line(tmp_path: Path) -> None:
    train = [{"A": 1 + i % 3, "B": 1} for i in range(60)]
    space = FeatureSpace().fit(train, {})
    det = WindowDetector(n_estimators=10).fit(space.transform(train))
    bundle = ModelBundle(miner_state={}, features=space, detector=det, settings={}, version="v")
    save_bundle(tmp_path / "v", bundle)
    again = load_bundle(tmp_path / "v")
    assert np.array_equal(again.detector.score(space.transform(train)), det.score(space.transform(train)))
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    for refused in (1, 4):
        manifest["format"] = refused
        (tmp_path / "v" / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelError, match=f"model format {refused} is not a format this Logwarden reads "
                                             r"\(2 or 3\); retrain") as err:
            load_bundle(tmp_path / "v")
        assert "\n" not in str(err.value)


def test_fractional_presence_counts_are_format_3_so_older_readers_refuse_them_instead_of_truncating(
        tmp_path: Path) -> None:
    """A second pass (``TemplateStats.discounted``) stores fractional presence counts. Format 2 readers parse
    them as integers, truncating them, and would score with a rarity the threshold was not placed for; such a
    model is written as format 3, which they refuse in one line (a worker keeps serving its old model). A model
    without fractional counts stays format 2, so a clean-trained model still loads in an older worker."""
    train = [{"A": 1 + i % 3, "B": 1} for i in range(60)]
    space = FeatureSpace().fit(train, {})
    det = WindowDetector(n_estimators=10).fit(space.transform(train))
    X = space.transform(train + [{"A": 9}, {"B": 2}])
    save_bundle(tmp_path / "whole", ModelBundle(miner_state={}, features=space, detector=det, settings={},
                                                version="whole"))
    assert json.loads((tmp_path / "whole" / "manifest.json").read_text())["format"] == 2
    stats = det.stats_
    det.stats_ = TemplateStats(n_windows=stats.n_windows, present=stats.present - 0.5, low=stats.low,
                               high=stats.high, tail_anchor=stats.tail_anchor, tail_scale=stats.tail_scale)
    save_bundle(tmp_path / "frac", ModelBundle(miner_state={}, features=space, detector=det, settings={},
                                               version="frac"))
    assert json.loads((tmp_path / "frac" / "manifest.json").read_text())["format"] == 3
    again = load_bundle(tmp_path / "frac")
    assert np.array_equal(again.detector.stats_.present, det.stats_.present)
    assert np.array_equal(again.detector.score(X), det.score(X))
