from __future__ import annotations

import numpy as np
import pytest

from models.detector import WindowDetector
from models.explain import explain
from models.features import EXTRA_COLUMNS, FeatureSpace


def normal_windows(n: int = 200, seed: int = 0) -> list[dict[str, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        out.append({"A": 3 * k, "B": k, "C": int(rng.integers(0, 2))})
    return out


def test_feature_space_columns_and_unseen() -> None:
    space = FeatureSpace().fit([{"A": 2, "B": 1}, {"A": 4}], {"A": "a <*>", "B": "b"})
    assert space.vocabulary_ == ["A", "B"]
    assert space.mean_ == [3.0, 0.5]
    X = space.transform([{"A": 1, "Z": 2, "Y": 1}])
    assert X.shape == (1, 2 + len(EXTRA_COLUMNS))
    assert X[0, 0] == pytest.approx(np.log1p(1))
    assert X[0, 1] == 0
    assert X[0, -1] == 2  # two distinct unseen templates
    assert X[0, -2] == pytest.approx(np.log1p(3))
    assert space.unseen({"A": 1, "Z": 2}) == {"Z": 2}
    again = FeatureSpace.from_dict(space.to_dict())
    assert np.array_equal(again.transform([{"A": 1, "Z": 2}]), space.transform([{"A": 1, "Z": 2}]))


def test_detector_flags_odd_windows_and_novelty() -> None:
    train = normal_windows()
    space = FeatureSpace().fit(train, {})
    det = WindowDetector(contamination=0.03, random_state=1)
    assert det.fit(space.transform(train)) is det
    train_flags = det.predict(space.transform(train))
    assert train_flags.mean() <= 0.05
    usual = det.score(space.transform([{"A": 3, "B": 1}]))[0]
    novel = det.score(space.transform([{"A": 3, "B": 1, "NEW": 1}]))[0]
    assert novel - usual > det.novelty_weight - 0.1
    assert novel > det.threshold_


def test_detector_rejects_bad_params() -> None:
    with pytest.raises(ValueError):
        WindowDetector(contamination=0.9).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        WindowDetector().fit(np.zeros((0, 2)))


def test_explain_puts_new_templates_first_and_deviations_next() -> None:
    train = normal_windows()
    space = FeatureSpace().fit(train, {"A": "a", "B": "b", "C": "c"})
    entries = explain({"A": 30, "B": 1, "N1": 2}, space, {"N1": "brand new <*>"})
    assert entries[0] == {"id": "N1", "template": "brand new <*>", "observed": 2, "expected": 0.0, "new": True}
    assert entries[1]["id"] == "A" and entries[1]["observed"] == 30 and not entries[1]["new"]
    missing = explain({"C": 1}, space, {})
    assert {e["id"] for e in missing} >= {"A", "B"}  # usual templates that are absent are named too
    assert all(e["observed"] == 0 for e in missing if e["id"] in ("A", "B"))
