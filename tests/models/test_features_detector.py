from __future__ import annotations

import json

import numpy as np
import pytest

from models.detector import WindowDetector
from models.explain import explain
from models.features import EXTRA_COLUMNS, FeatureSpace
from models.novelty import TemplateStats


def normal_windows(n: int = 200, seed: int = 0) -> list[dict[str, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        out.append({"A": 3 * k, "B": k, "C": int(rng.integers(0, 2))})
    return out


def fitted(windows: list[dict[str, int]], **params: object) -> tuple[FeatureSpace, WindowDetector]:
    space = FeatureSpace().fit(windows, {})
    return space, WindowDetector(**params).fit(space.transform(windows))  # type: ignore[arg-type]


def test_feature_space_columns_and_unseen() -> None:
    space = FeatureSpace().fit([{"A": 2, "B": 1}, {"A": 4}], {"A": "a <*>", "B": "b"})
    assert space.vocabulary_ == ["A", "B"]
    assert space.mean_ == [3.0, 0.5]
    assert space.presence_ == [2, 1] and space.min_ == [2.0, 0.0] and space.max_ == [4.0, 1.0]
    assert space.n_windows_ == 2
    X = space.transform([{"A": 1, "Z": 2, "Y": 1}])
    assert X.shape == (1, 2 + len(EXTRA_COLUMNS))
    assert X[0, 0] == pytest.approx(np.log1p(1))
    assert X[0, 1] == 0
    assert X[0, -1] == 2  # two distinct unseen templates
    assert X[0, -2] == pytest.approx(np.log1p(3))
    assert space.unseen({"A": 1, "Z": 2}) == {"Z": 2}
    again = FeatureSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space
    assert np.array_equal(again.transform([{"A": 1, "Z": 2}]), space.transform([{"A": 1, "Z": 2}]))


def _reference_rows(space: FeatureSpace, windows: list[dict[str, int]]) -> np.ndarray:
    """The feature rows computed the plain way, cell by cell (the reference for :meth:`FeatureSpace.transform`)."""
    index = space.index_
    out = np.zeros((len(windows), len(space.vocabulary_) + len(EXTRA_COLUMNS)))
    for row, window in enumerate(windows):
        unseen = {tid: n for tid, n in window.items() if tid not in index}
        for tid, n in window.items():
            if tid in index:
                out[row, index[tid]] = np.log1p(float(n))
        out[row, -3:] = np.log1p(sum(window.values())), np.log1p(sum(unseen.values())), len(unseen)
    return out


def test_transform_equals_the_cell_by_cell_rows_with_or_without_a_given_count_matrix() -> None:
    rng = np.random.default_rng(3)
    space = FeatureSpace().fit([{"A": int(rng.integers(0, 4)), "B": 1} for _ in range(30)], {})
    windows = [{"A": 2, "B": 1}, {}, {"NEW": 3, "A": 1}, {"A": 0, "X": 0, "Y": 5}, {"B": 7}]
    expected = _reference_rows(space, windows)
    assert np.array_equal(space.transform(windows), expected)
    assert np.array_equal(space.transform(windows, space.count_matrix(windows)), expected)
    assert space.transform([]).shape == (0, 2 + len(EXTRA_COLUMNS))


def test_feature_space_from_an_older_model_has_no_novelty_stats() -> None:
    old = {"vocabulary": ["A"], "templates": {"A": "a"}, "mean": [1.0], "std": [0.0]}
    space = FeatureSpace.from_dict(old)
    assert space.template_stats() is None
    assert explain({"A": 5}, space, {})[0]["observed"] == 5  # still explains by deviation


def test_detector_flags_odd_windows_and_novelty() -> None:
    train = normal_windows()
    space, det = fitted(train, contamination=0.03, random_state=1)
    train_flags = det.predict(space.transform(train))
    assert train_flags.mean() <= 0.06
    usual = det.score(space.transform([{"A": 3, "B": 1}]))[0]
    novel = det.score(space.transform([{"A": 3, "B": 1, "NEW": 1}]))[0]
    parts = det.components(space.transform([{"A": 3, "B": 1, "NEW": 1}]))
    # a new template: Good-Turing share 0.5 / 201 (no template held by one window only); as rare as lacking A
    # or B (held by every window), so three states of that share count: p = 1 - (1 - q)^3
    assert parts["rarity"][0] == pytest.approx(-np.log10(1 - (1 - 0.5 / 201) ** 3), rel=1e-6)
    assert novel - usual >= 1.5
    assert novel > det.threshold_


def hdfs_like(n: int = 2000, seed: int = 0) -> list[dict[str, int]]:
    """Block sessions with natural variety, plus unlabelled incidents: 1.5% write an error, 1% never finish."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = {"recv": 3, "alloc": 1, "ack": 3, "stored": 3}
        if rng.random() < 0.8:
            w.update(delete=3, invalid=3)
        if rng.random() < 0.25:
            w.update(served=int(rng.integers(1, 9)), failed_serve=int(rng.integers(1, 5)))
        if rng.random() < 0.15:
            w["verify"] = int(rng.integers(1, 4))
        if i % 67 == 0:
            w["ERR"] = 1
        elif i % 101 == 0:
            w = {"recv": 1, "alloc": 1}
        out.append(w)
    return out


def test_rare_templates_and_missing_ones_score_above_threshold_and_normal_variety_does_not() -> None:
    train = hdfs_like()
    space, det = fitted(train)
    odd = np.array([("ERR" in w) or ("ack" not in w) for w in train])
    flags = det.predict(space.transform(train))
    assert flags[odd].mean() >= 0.95  # a 97% quantile of the forest alone finds about 80% of them
    assert not flags[~odd].any()  # ... and flags about 1% of the normal windows (the first pass alone flags 1)
    probes = space.transform([{"recv": 3, "alloc": 1, "ack": 3, "stored": 3, "ERR": 1},
                              {"recv": 3, "alloc": 1},
                              {"recv": 3, "alloc": 1, "ack": 3, "stored": 3, "served": 8, "failed_serve": 4}])
    assert det.predict(probes).tolist() == [True, True, False]


def test_missing_usual_template_and_count_beyond_range_score_above_threshold() -> None:
    train = [{"open": 1, "write": 1 + i % 4, "close": 1} for i in range(600)]
    space, det = fitted(train)
    X = space.transform([{"open": 1, "write": 2},             # never closed
                         {"open": 1, "write": 40, "close": 1},  # ten times the largest write count
                         {"open": 1, "write": 4, "close": 1}])  # ordinary
    assert det.predict(X).tolist() == [True, True, False]
    parts = det.components(X)
    # never closed: share 0.5 / 601, as rare as lacking open or write or a new template: p = 1 - (1 - q)^4;
    # 40 writes: far past the fitted tail
    assert parts["rarity"][0] == pytest.approx(-np.log10(1 - (1 - 0.5 / 601) ** 4), rel=1e-6)
    assert parts["excess"][1] > 3 and parts["rarity"][1] < 0.1 and parts["excess"][0] < 0.1
    _, _, reasons = det.score_and_reasons(X)
    assert reasons[:2] == ["rarity", "excess"]


def test_ties_do_not_put_common_normal_patterns_above_the_threshold() -> None:
    # Discrete data: every window is one of four patterns repeated exactly (70%, 20%, 7%, and 3% that write
    # an error). A 97% quantile lands on the score of the 7% group, so any window a hair more unusual than
    # that common pattern would be flagged; the calibrated threshold sits in the middle of the gap instead.
    patterns = [({"open": 2, "write": 4, "close": 2}, 700),
                ({"open": 2, "write": 4, "close": 2, "verify": 1}, 200),
                ({"open": 2, "write": 6, "close": 2, "verify": 2}, 70),
                ({"open": 2, "write": 4, "close": 2, "ERR": 1}, 30)]
    train = [dict(p) for p, n in patterns for _ in range(n)]
    for seed in range(3):
        space, det = fitted(train, random_state=seed, contamination=0.03)
        scores = det.score(space.transform([p for p, _ in patterns]))
        assert det.predict(space.transform([p for p, _ in patterns])).tolist() == [False, False, False, True]
        assert det.threshold_ == pytest.approx((scores[3] + scores[:3].max()) / 2)
        train_flags = det.predict(space.transform(train))
        assert train_flags.sum() == 30 and all("ERR" in w for w, f in zip(train, train_flags, strict=True) if f)


def test_tiny_training_sets_work_and_flag_only_what_is_beyond_them() -> None:
    for n in (1, 2, 5):
        train = [{"A": 2 + i % 2, "B": 1} for i in range(n)]
        space, det = fitted(train)
        assert np.isfinite(det.threshold_)
        assert not det.predict(space.transform(train)).any()
        new = space.transform([{"A": 2, "B": 1, "NEW": 1}])
        # One window: every template it holds was new once (Good-Turing missing mass 1), so a new template
        # is no evidence at all; from two windows on it is, and it is beyond every training window.
        assert det.predict(new).all() == (n > 1)
    with pytest.raises(ValueError):
        WindowDetector().fit(np.zeros((0, 2 + len(EXTRA_COLUMNS))))


def test_detector_rejects_bad_params_and_shapes() -> None:
    with pytest.raises(ValueError):
        WindowDetector(contamination=0.9).fit(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        WindowDetector().fit(np.zeros((3, 2)))
    space, det = fitted(normal_windows(50))
    with pytest.raises(ValueError):
        det.score(np.zeros((1, 9)))


def test_state_round_trips_through_json_with_identical_scores() -> None:
    train = normal_windows(300) + [{"A": 3, "B": 1, "RARE": 1}] * 3
    space, det = fitted(train, random_state=7)
    space2 = FeatureSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    params = json.loads(json.dumps(det.get_params()))
    state = json.loads(json.dumps(det.fitted_state()))
    det2 = WindowDetector.restore(params, state, det.forest_)
    probe = train[:20] + [{"A": 30, "B": 1}, {"A": 3, "NEW": 2}, {"A": 3, "B": 1, "RARE": 1}, {}]
    assert np.array_equal(det2.score(space2.transform(probe)), det.score(space.transform(probe)))
    assert det2.threshold_ == det.threshold_
    assert np.array_equal(det2.predict(space2.transform(probe)), det.predict(space.transform(probe)))


def test_clean_and_auto_thresholds_sit_at_the_target_false_positive_rate() -> None:
    train = normal_windows(400)
    space, clean = fitted(train, contamination="clean", target_fpr=0.01)
    assert clean.threshold_ == pytest.approx(2.0)
    _, auto = fitted(train)
    assert auto.threshold_ <= -np.log10(auto.target_fpr) + 1e-9
    assert auto.contamination_estimate_ == pytest.approx(0.0)
    assert not auto.predict(space.transform(train)).any()
    with pytest.raises(ValueError, match="contamination"):
        WindowDetector(contamination="sometimes").fit(space.transform(train))


def test_full_score_follows_the_strongest_component() -> None:
    train = hdfs_like()
    space, det = fitted(train)
    X = space.transform(train[:300] + [{"recv": 3, "alloc": 1, "ack": 3, "stored": 3, "NEW": 1}])
    scores, parts, reasons = det.score_and_reasons(X)
    weighted = np.max([parts[k] + np.log10(w) for k, w in det._weights().items()], axis=0)
    assert np.allclose(scores, np.maximum(weighted, 0.0), atol=0.01)
    assert reasons[-1] == "rarity"


def test_explain_orders_new_then_rare_then_deviations() -> None:
    train = normal_windows(2000) + [{"A": 3, "B": 1, "R": 1}] * 2
    space = FeatureSpace().fit(train, {"A": "a", "B": "b", "C": "c", "R": "rare <*>"})
    entries = explain({"A": 30, "B": 1, "R": 1, "N1": 2}, space, {"N1": "brand new <*>"})
    assert entries[0] == {"id": "N1", "template": "brand new <*>", "observed": 2, "expected": 0.0,
                          "new": True, "share": 0.0}
    # R: held by 2 of 2002 windows (rarity about 0.6); A: 30 is over 3x the largest count (0.5 x 0.74)
    assert entries[1]["id"] == "R" and entries[1]["template"] == "rare <*>" and not entries[1]["new"]
    assert entries[1]["share"] == pytest.approx(2 / 2002, abs=1e-4) and entries[1]["expected"] == 0.0
    assert entries[2]["id"] == "A" and entries[2]["observed"] == 30 and entries[2]["share"] == 1.0
    missing = explain({"C": 1}, space, {})
    assert {e["id"] for e in missing} >= {"A", "B"}  # usual templates that are absent are named too
    assert all(e["observed"] == 0 for e in missing if e["id"] in ("A", "B"))
    assert all(e["share"] == 1.0 for e in missing if e["id"] in ("A", "B"))
    ordinary = explain({"A": 6, "B": 2, "C": 1}, space, {})
    assert all(e["id"] != "C" for e in ordinary)  # nothing unusual about C: not listed


def contaminated_windows(n: int = 2000, incidents: int = 60, seed: int = 0) -> list[dict[str, int]]:
    """Normal block sessions, then ``incidents`` unlabelled ones (3%) writing CRASH, which no normal one writes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = {"recv": 3, "alloc": 1, "ack": 3, "stored": 3}
        if rng.random() < 0.15:
            w["verify"] = int(rng.integers(1, 4))
        out.append(w)
    return out + [{"recv": 3, "alloc": 1, "CRASH": int(rng.integers(1, 3))} for _ in range(incidents)]


def test_auto_second_pass_makes_a_template_only_contamination_writes_rare_again() -> None:
    # CRASH is held by 60 of 2060 training windows (3%): as trained, holding it is a 1-in-34 state. The first
    # pass finds the 60 as a separated group; the second counts them as sqrt(60) and CRASH reads as rare.
    train = contaminated_windows()
    space, det = fitted(train, random_state=0)
    X = space.transform(train)
    counts = X[:, : det.n_templates_]
    first = TemplateStats.fit(counts)
    crash = space.vocabulary_.index("CRASH")
    assert det.contamination_estimate_ == pytest.approx(60 / 2060)
    assert det.stats_.present[crash] == pytest.approx(np.sqrt(60))
    assert det.stats_.n_windows == 2000 + 8
    verify = space.vocabulary_.index("verify")  # normal variety keeps its share
    assert det.stats_.present[verify] / det.stats_.n_windows == pytest.approx(
        first.present[verify] / first.n_windows, rel=0.05)
    probe = space.transform([{"recv": 3, "alloc": 1, "ack": 3, "stored": 3, "CRASH": 1}])
    unseen = probe[:, det.n_templates_ + 2]
    before = first.rarity_p(probe[:, : det.n_templates_], unseen)[0]
    after = det.stats_.rarity_p(probe[:, : det.n_templates_], unseen)[0]
    assert before > 0.02 and after < before / 5
    assert det.predict(probe)[0]
    assert det.predict(X[-60:]).all() and det.predict(X[:2000]).mean() <= det.target_fpr
    state = json.loads(json.dumps(det.fitted_state()))
    again = WindowDetector.restore(json.loads(json.dumps(det.get_params())), state, det.forest_)
    assert np.array_equal(again.score(X), det.score(X))


def test_auto_fits_the_forest_without_the_density_that_masks_the_contamination() -> None:
    # The 60 CRASH windows are 2 distinct rows of 30 copies: a forest that sees each ceil(sqrt(30)) = 6 times
    # (as every other distinct row) finds a dense spot it isolates late. auto keeps each row of the separated
    # rare group once.
    train = contaminated_windows()
    space, det = fitted(train, random_state=0)
    _, first = fitted(train, random_state=0, contamination="clean")  # no group: every row ceil(sqrt(copies))
    X = space.transform(train)

    def forest_score(d: WindowDetector, rows: np.ndarray) -> np.ndarray:
        return -d.forest_.score_samples(d._forest_input(rows))

    assert det.contamination_estimate_ > 0 and det.forest_ is not first.forest_
    assert forest_score(det, X[-60:]).mean() > forest_score(first, X[-60:]).mean() + 0.1
    assert forest_score(det, X[:2000]).max() < forest_score(det, X[-60:]).min()
    assert np.array_equal(det.forest_scores_, np.sort(forest_score(det, X)))


def test_second_pass_leaves_clean_training_alone() -> None:
    train = contaminated_windows(incidents=0)
    _, det = fitted(train)
    assert det.contamination_estimate_ == 0.0
    assert det.stats_.n_windows == len(train) and det.stats_.present.dtype == np.int64


def long_tail_windows(n: int = 600, seed: int = 0) -> list[dict[str, int]]:
    """Clean time windows of a system with a long tail of normal templates: template t is in 30/t % of them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = {"heartbeat": 2, "request": int(rng.integers(5, 30))}
        for t in range(1, 13):
            if rng.random() < 0.3 / t:
                w[f"tail{t}"] = int(rng.integers(1, 4))
        out.append(w)
    return out


def test_auto_does_not_take_a_long_tail_of_normal_templates_for_contamination() -> None:
    # About a sixth of these clean windows hold a template fewer than 5% of windows hold, at shares from
    # 2.5% to 4.3% and on up (7.5%, 10%...): the system's variety, not a group of incidents. auto must cut
    # at the clean level.
    train, test = long_tail_windows(600, seed=0), long_tail_windows(2000, seed=1)
    space, det = fitted(train)
    counts = space.transform(train)[:, : det.n_templates_]
    assert det.stats_.rare_state_share(counts, np.zeros(len(train))) > 0.1
    assert det.contamination_estimate_ == 0.0
    assert det.threshold_ == pytest.approx(-np.log10(det.target_fpr))
    _, clean = fitted(train, contamination="clean")
    X = space.transform(test)
    assert np.array_equal(det.predict(X), clean.predict(X))
    assert det.predict(X).mean() <= 0.02  # not the sixth of them that hold a rare template


class _SklearnPaths:
    """The forest's own ``score_samples``: what WindowDetector called before models.forest_paths."""

    def __init__(self, forest: object) -> None:
        self.forest = forest

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.forest.score_samples(X))  # type: ignore[attr-defined]


def test_scores_equal_the_sklearn_forest_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches repeat rows (each distinct row is scored once) and the forest is walked by ForestPaths: every
    # p-value must be what scoring each row alone through scikit-learn gives, bit for bit.
    train = hdfs_like(1500)
    space, det = fitted(train)
    probe = train[:400] + [{"recv": 3, "alloc": 1, "NEW": 2}, {"recv": 90, "alloc": 1}, {}, {"ERR": 4}] * 3
    X = space.transform(probe)
    batch = det.pvalues(X)
    monkeypatch.setattr(det, "_paths", lambda: _SklearnPaths(det.forest_))
    for i in range(len(X)):
        alone = det._pvalues(X[i:i + 1])
        assert all(batch[name][i] == alone[name][0] for name in alone), i
    monkeypatch.undo()
    monkeypatch.setattr("models.detector.CHUNK_ROWS", 7)  # the distinct rows scored in several chunks
    chunked = det.pvalues(X)
    assert all(np.array_equal(chunked[name], batch[name]) for name in batch)


def test_fit_is_the_same_as_with_the_sklearn_forest(monkeypatch: pytest.MonkeyPatch) -> None:
    train = hdfs_like(800, seed=3)
    _, fast = fitted(train)
    monkeypatch.setattr(WindowDetector, "_paths", lambda self: _SklearnPaths(self.forest_))
    _, reference = fitted(train)
    assert fast.fitted_state() == reference.fitted_state()
    assert np.array_equal(fast.train_scores_, reference.train_scores_)


def test_flattened_trees_are_derived_not_saved() -> None:
    import pickle  # noqa: PLC0415

    train = normal_windows(300)
    space, det = fitted(train)
    X = space.transform(train[:50])
    before = det.score(X)
    assert "_paths_cache" in det.__dict__
    again = pickle.loads(pickle.dumps(det))
    assert "_paths_cache" not in again.__dict__ and "_paths_cache" not in det.__getstate__()
    assert np.array_equal(again.score(X), before)
    restored = WindowDetector.restore(det.get_params(), json.loads(json.dumps(det.fitted_state())), det.forest_)
    assert "_paths_cache" not in restored.__dict__
    assert np.array_equal(restored.score(X), before)
    other = fitted(train, random_state=5)[1]
    restored.forest_ = other.forest_  # a new forest gets its own flattened trees
    assert restored._paths().forest is other.forest_


def test_session_windows_read_counts_past_the_range_as_heavy_tailed() -> None:
    """A session ten times longer than any in training is weak evidence; in a fixed-length window it is a burst."""
    train = [{"open": 1, "write": 1 + i % 4, "close": 1} for i in range(600)]
    probe = [{"open": 1, "write": 40, "close": 1}, {"open": 1, "write": 4000, "close": 1}, {"open": 1, "close": 1}]
    space, rate = fitted(train)
    _, session = fitted(train, window_kind="session")
    assert rate.get_params()["window_kind"] == "tumbling" and session.get_params()["window_kind"] == "session"
    X = space.transform(probe)
    rate_parts, session_parts = rate.components(X), session.components(X)
    assert rate_parts["excess"][0] > 3 > session_parts["excess"][0] > 0  # 10x: a burst, or a long session
    assert rate.predict(X).tolist()[0] and not session.predict(X).tolist()[0]
    assert session.predict(X).tolist()[1]  # a thousand times the range is still flagged
    # Everything but the count tails is the same model.
    for name in ("iforest", "rarity"):
        assert np.array_equal(rate_parts[name], session_parts[name])
    params = json.loads(json.dumps(session.get_params()))
    again = WindowDetector.restore(params, json.loads(json.dumps(session.fitted_state())), session.forest_)
    assert np.array_equal(again.score(X), session.score(X))


def test_an_unknown_window_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="window_kind"):
        WindowDetector(window_kind="hourly").fit(np.zeros((3, 2 + len(EXTRA_COLUMNS))))
