"""explain_batch must give exactly what explain gives window by window (same entries, same order)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import explain as explain_module
from models.explain import explain, explain_batch, holds_new
from models.features import FeatureSpace

IDS = [f"T{i:02d}" for i in range(12)] + ["a", "Z", "m7"]  # unsorted-looking ids: the id tie-break matters


def _windows(rng: np.random.Generator, n: int, vocabulary: list[str], new: float) -> list[dict[str, int]]:
    rates = rng.uniform(0.0, 4.0, len(vocabulary)) * (rng.random(len(vocabulary)) < 0.7)
    out = []
    for _ in range(n):
        window = {tid: int(c) for tid, c in zip(vocabulary, rng.poisson(rates), strict=True) if c}
        if rng.random() < new:
            for k in range(int(rng.integers(1, 8))):
                window[f"new{int(rng.integers(0, 10))}x{k}"] = int(rng.integers(1, 5))
        if rng.random() < 0.1:
            window[vocabulary[int(rng.integers(0, len(vocabulary)))]] = int(rng.integers(1, 200))  # a burst
        out.append(window)
    return out


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**16), vocabulary=st.integers(1, len(IDS)), train=st.integers(1, 300),
       test=st.integers(0, 120), new=st.floats(0.0, 1.0), limit=st.integers(0, 8), old_model=st.booleans())
def test_batch_equals_window_by_window(seed: int, vocabulary: int, train: int, test: int, new: float, limit: int,
                                       old_model: bool) -> None:
    rng = np.random.default_rng(seed)
    ids = list(rng.permutation(IDS)[:vocabulary])
    space = FeatureSpace().fit(_windows(rng, train, ids, 0.0), {tid: f"text of {tid}" for tid in ids})
    if old_model:  # saved before presence/min/max existed: no template statistics, no shares
        space = FeatureSpace.from_dict({k: v for k, v in space.to_dict().items()
                                        if k not in ("presence", "min", "max", "n_windows")})
    windows = _windows(rng, test, ids, new) + [{}]
    names = [{tid: f"window text {tid}" for tid in w if rng.random() < 0.5} for w in windows]
    expected = [explain(w, space, t, limit=limit) for w, t in zip(windows, names, strict=True)]
    assert explain_batch(windows, space, names, limit=limit) == expected


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), vocabulary=st.integers(1, len(IDS)), test=st.integers(0, 60),
       new=st.floats(0.0, 1.0), limit=st.integers(0, 6), zeros=st.booleans())
def test_holds_new_says_whether_the_explanation_has_a_new_entry(seed: int, vocabulary: int, test: int, new: float,
                                                                 limit: int, zeros: bool) -> None:
    rng = np.random.default_rng(seed)
    ids = list(rng.permutation(IDS)[:vocabulary])
    space = FeatureSpace().fit(_windows(rng, 50, ids, 0.0), {tid: f"text of {tid}" for tid in ids})
    windows = _windows(rng, test, ids, new) + [{}]
    if zeros:  # ids held with a count of 0 (a known one, a new one)
        windows += [{ids[0]: 0}, {"never": 0}, {ids[0]: 0, "never": 0}]
    for w in windows:
        assert holds_new(w, space, limit) == any(e["new"] for e in explain(w, space, {}, limit=limit)), w


def test_batch_is_cut_into_bounded_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    space = FeatureSpace().fit(_windows(rng, 400, IDS, 0.0), {})
    windows = _windows(rng, 300, IDS, 0.3)
    names: list[dict[str, str]] = [{} for _ in windows]
    whole = explain_batch(windows, space, names)
    monkeypatch.setattr(explain_module, "BATCH_CELLS", 40)  # a few windows per piece
    assert explain_batch(windows, space, names) == whole == [explain(w, space, {}) for w in windows]


def test_entries_are_fresh_dicts_per_window() -> None:
    space = FeatureSpace().fit([{"A": 1}, {"A": 2}, {"B": 1}], {})
    first, second = explain_batch([{"A": 9, "N": 1}, {"A": 9, "N": 1}], space, [{}, {}])
    assert first == second and all(a is not b for a, b in zip(first, second, strict=True))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), vocabulary=st.integers(1, len(IDS)), train=st.integers(1, 200),
       test=st.integers(0, 80), new=st.floats(0.0, 1.0), zeros=st.floats(0.0, 0.5), limit=st.integers(0, 8))
def test_batch_on_the_scorers_count_matrix_equals_window_by_window(seed: int, vocabulary: int, train: int,
                                                                   test: int, new: float, zeros: float,
                                                                   limit: int) -> None:
    """The scorer hands over its count matrix; windows may also list a known or new id with count 0."""
    rng = np.random.default_rng(seed)
    ids = list(rng.permutation(IDS)[:vocabulary])
    space = FeatureSpace().fit(_windows(rng, train, ids, 0.0), {tid: f"text of {tid}" for tid in ids})
    windows = _windows(rng, test, ids, new) + [{}]
    for window in windows:
        if rng.random() < zeros:
            window[ids[int(rng.integers(0, len(ids)))]] = 0
            window["new-zero"] = 0
    names = [{tid: f"window text {tid}" for tid in w if rng.random() < 0.5} for w in windows]
    expected = [explain(w, space, t, limit=limit) for w, t in zip(windows, names, strict=True)]
    raw = space.count_matrix(windows)
    assert explain_batch(windows, space, names, limit=limit, raw=raw) == expected
    assert explain_batch(windows, space, names, limit=limit) == expected
