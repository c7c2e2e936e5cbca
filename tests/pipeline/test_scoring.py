from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from models.artifacts import ModelBundle
from models.detector import WindowDetector
from models.explain import explain, reason_text
from models.features import FeatureSpace
from pipeline.records import Window, iso_utc, iso_utc_fast
from pipeline.scoring import MAX_SAMPLES, Scorer, document_id, rounded6, window_key


def make_scorer() -> Scorer:
    windows = [{"A": 3, "B": 1}, {"A": 6, "B": 2}, {"A": 3, "B": 1, "C": 1}] * 20
    space = FeatureSpace().fit(windows, {"A": "a <*>", "B": "b", "C": "c"})
    det = WindowDetector(n_estimators=30).fit(space.transform(windows))
    return Scorer(ModelBundle(miner_state={}, features=space, detector=det, settings={}, version="v1"))


def window(counts: dict[str, int], unknown: bool = False) -> Window:
    w = Window("message", "blk_1", "session", 1_000.0, 1_060.5, counts=Counter(counts))
    w.templates = {tid: f"text {tid}" for tid in counts}
    w.samples = {tid: f"line of {tid}" for tid in counts}
    w.first_lines = [f"line {i}" for i in range(5)]
    return w


def test_document_shape_and_convention() -> None:
    scorer = make_scorer()
    normal, novel = scorer.score([window({"A": 3, "B": 1}), window({"A": 3, "NEW": 2})])
    assert normal["@timestamp"] == "1970-01-01T00:17:40.500Z"
    assert normal["window"] == {"start": "1970-01-01T00:16:40.000Z", "end": "1970-01-01T00:17:40.500Z",
                                "kind": "session", "late": False}
    assert normal["entity"] == {"id": "blk_1", "field": "message"}
    assert normal["log"]["count"] == 4 and normal["model"]["version"] == "v1"
    assert novel["anomaly"]["score"] > normal["anomaly"]["score"]
    assert novel["anomaly"]["is_anomaly"] and novel["templates"][0]["id"] == "NEW"
    # Every document carries the components on the score's scale and the one that decided it.
    for doc in (normal, novel):
        assert set(doc["anomaly"]["components"]) == {"iforest", "rarity", "excess"}
        assert all(v >= 0 for v in doc["anomaly"]["components"].values())
        assert doc["model"]["warnings"] == []
    assert novel["anomaly"]["reason"] == "rarity" and "new template" in novel["anomaly"]["reason_text"]
    assert novel["anomaly"]["components"]["rarity"] > normal["anomaly"]["components"]["rarity"]
    # The sample of the explained (new) template comes first; at most five samples.
    assert novel["log"]["samples"][0] == "line of NEW" and len(novel["log"]["samples"]) <= 5


def test_document_id_is_deterministic_and_distinguishes_windows() -> None:
    scorer = make_scorer()
    a1, = scorer.score([window({"A": 3})])
    a2, = scorer.score([window({"A": 9, "B": 4})])  # same entity/start/kind/version: same id (overwrite)
    assert document_id(a1) == document_id(a2)
    other = dict(a1, window=dict(a1["window"], start="1970-01-01T00:00:00.000Z"))
    late = dict(a1, window=dict(a1["window"], late=True))
    newer = dict(a1, model={"version": "v2"})
    assert len({document_id(d) for d in (a1, other, late, newer)}) == 4


def test_two_late_windows_of_one_bucket_keep_their_own_documents() -> None:
    """Late records that arrive after the first late window of a bucket closed make a second one."""
    from pipeline.records import TemplateMatch
    from pipeline.stages.windows import Windower

    windower = Windower("tumbling", size=60.0, allowed_lateness=0.0)
    match = TemplateMatch("A", "a <*>")
    key = ("host", "web-1")
    windower.add(key, 1_000.0, match, "on time", "logs/0", 1)
    windower.add(key, 1_200.0, match, "moves the watermark", "logs/0", 2)
    windower.add(key, 1_010.0, match, "late, first", "logs/0", 3)
    closed = windower.add(key, 1_300.0, match, "closes the first late window", "logs/0", 4)
    windower.add(key, 1_015.0, match, "late, second", "logs/0", 5)
    closed += windower.add(key, 1_400.0, match, "closes the second", "logs/0", 6)
    late = [w for w in closed if w.late]
    assert len(late) == 2 and late[0].start == late[1].start  # the same bucket, twice
    docs = make_scorer().score(late)
    assert docs[0]["window"]["offset"] == 3 and docs[1]["window"]["offset"] == 5
    assert document_id(docs[0]) != document_id(docs[1])


def test_the_same_entity_in_two_streams_is_two_documents() -> None:
    scorer = make_scorer()
    first, second = window({"A": 3}), window({"A": 3})
    first.stream, second.stream = "logs/0", "audit/0"
    a, b = scorer.score([first, second])
    assert (a["window"]["stream"], b["window"]["stream"]) == ("logs/0", "audit/0")
    assert document_id(a) != document_id(b)
    file_doc, = scorer.score([window({"A": 3})])
    assert "stream" not in file_doc["window"]  # detect's documents: no stream, ids as before


def test_training_flags_reach_every_document() -> None:
    scorer = make_scorer()
    scorer.bundle.stats["flags"] = ["few_windows", "short_windows"]
    flagged = Scorer(scorer.bundle)
    (doc,) = flagged.score([window({"A": 3, "B": 1})])
    assert doc["model"]["warnings"] == ["few_windows", "short_windows"]


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.floats(-62135596800.0, 253402300799.0, allow_nan=False), max_size=30))
def test_memoised_iso_times_are_those_rendered_afresh(times: list[float]) -> None:
    scorer = make_scorer()
    scorer._iso.update({-1e15 - i: "unused" for i in range(4095)})  # nearly full: it must start over, not grow
    for ts in [*times, *times]:
        assert scorer._iso_utc(ts) == iso_utc(ts)
    assert len(scorer._iso) <= 4096


_halves = st.sampled_from([0.0, 0.0005, 0.0015, 0.5, 0.9995, 0.9999995, 0.9999994999, 0.0000005, 0.0000015, 0.999])


@settings(max_examples=500, deadline=None)
@given(whole=st.one_of(st.integers(-62135596800, 253402300799), st.integers(0, 2**31), st.sampled_from(
    [0, 86_399, 86_400, 951_782_400, 4_102_444_800, 253402300797, 253402300798, 253402300799])), fraction=_halves,
    any_time=st.floats(-62135596800.0, 253402300799.0, allow_nan=False))
def test_fast_iso_times_are_those_datetime_renders(whole: int, fraction: float, any_time: float) -> None:
    """Half-microsecond fractions (datetime rounds them half to even), a fraction that rounds up into the next second
    or day, leap days, the last seconds of year 9999 and times before 1970 (the general path) render alike."""
    for ts in (whole + fraction, float(whole), any_time, -any_time):
        try:
            want = iso_utc(ts)
        except (ValueError, OverflowError) as exc:
            try:
                iso_utc_fast(ts)
            except type(exc):
                continue
            raise AssertionError(f"{ts!r}: iso_utc raises {exc!r}, iso_utc_fast does not") from None
        assert iso_utc_fast(ts) == want, repr(ts)
    for ts in (float("nan"), float("inf"), -0.0, 1e-7, 5e-7, 1.5e-6):
        try:
            want = iso_utc(ts)
        except (ValueError, OverflowError):
            continue
        assert iso_utc_fast(ts) == want


def test_window_fields_through_the_memo() -> None:
    scorer = make_scorer()
    w = window({"T1": 1})
    w.start, w.end = 1_228_854_975.5, 1_228_854_975.5
    docs = scorer.score([w, w])
    assert [d["window"]["start"] for d in docs] == [iso_utc(w.start)] * 2
    assert [d["@timestamp"] for d in docs] == [iso_utc(w.end)] * 2


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [0.0, -0.0, 1e-7, -5e-7, 0.0000005, 2.5e-6, 1.2345675, 123.4567895])), max_size=40))
def test_rounded_once_per_distinct_value_is_round(values: list[float]) -> None:
    got, want = rounded6(values), [round(value, 6) for value in values]
    assert [repr(v) for v in got] == [repr(v) for v in want]  # repr: -0.0 is not 0.0, nan is nan


def reference_document(scorer: Scorer, window: Window, score: float, components: dict[str, float], reason: str,
                       explanation: list[dict]) -> dict:  # type: ignore[type-arg]
    """One window's document built plainly, field by field (what the scorer's batch loop must equal)."""
    samples: list[str] = []
    for entry in explanation:
        line = window.samples.get(entry["id"])
        if line is not None and line not in samples:
            samples.append(line)
    for line in window.first_lines:
        if len(samples) >= MAX_SAMPLES:
            break
        if line not in samples:
            samples.append(line)
    fields = {"start": iso_utc(window.start), "end": iso_utc(window.end), "kind": window.kind, "late": window.late}
    if window.stream:
        fields["stream"] = window.stream
    if window.positions:
        fields["offset"] = min(window.positions.values())
    threshold = float(scorer.detector.threshold_)
    return {
        "@timestamp": iso_utc(window.end),
        "entity": {"id": window.entity_id, "field": window.entity_field},
        "window": fields,
        "anomaly": {"score": round(score, 6), "threshold": round(threshold, 6), "is_anomaly": score > threshold,
                    "components": {name: round(value, 6) for name, value in components.items()},
                    "reason": reason, "reason_text": reason_text(reason)},
        "model": {"version": scorer.version, "warnings": scorer.warnings},
        "templates": explanation,
        "log": {"count": window.count, "samples": samples},
    }


_shapes = st.lists(st.tuples(
    st.dictionaries(st.sampled_from(["A", "B", "C", "NEW", "X"]), st.integers(0, 9), min_size=1),
    st.lists(st.sampled_from(["line 0", "line 1", "line of A", "line of NEW", "other"]), max_size=6),
    st.sampled_from([0.0, 60.0, 1_228_854_975.5]), st.booleans(), st.sampled_from(["", "logs/0"]),
    st.dictionaries(st.sampled_from(["f", "g"]), st.integers(0, 50), max_size=2)), min_size=1, max_size=12)


def _window(counts: dict[str, int], first: list[str], start: float, late: bool, stream: str,
            positions: dict[str, int]) -> Window:
    """A tumbling window of one of ``_shapes``'s tuples, with texts, samples, first lines and offsets."""
    w = Window("host", "web-1", "tumbling", start, start + 60.0, counts=Counter(counts), late=late, stream=stream)
    w.templates = {tid: f"text {tid}" for tid in counts}
    w.samples = {tid: f"line of {tid}" for tid in counts if tid != "B"}
    w.first_lines, w.positions = list(first), dict(positions)
    return w


@settings(max_examples=100, deadline=None)
@given(shapes=_shapes)
def test_batch_documents_are_the_plain_per_window_ones(shapes: list) -> None:  # type: ignore[type-arg]
    scorer = make_scorer()
    windows = [_window(*shape) for shape in shapes]
    docs = scorer.score(windows)
    X = scorer.space.transform([w.counts for w in windows])
    scores, components, reasons = scorer.detector.score_and_reasons(X)
    for i, (doc, window) in enumerate(zip(docs, windows, strict=True)):
        want = reference_document(scorer, window, float(scores[i]),
                                  {name: float(values[i]) for name, values in components.items()}, reasons[i],
                                  explain(window.counts, scorer.space, window.templates))
        assert json.dumps(doc) == json.dumps(want)


_copies = st.lists(st.tuples(st.integers(0, 3), st.lists(st.sampled_from(["x", "y", "line of A"]), max_size=3),
                             st.integers(0, 99)), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(shapes=_shapes, copies=_copies)
def test_distinct_windows_scored_once_give_the_documents_of_every_window_scored(shapes: list,  # type: ignore[type-arg]
                                                                                copies: list) -> None:  # type: ignore[type-arg]
    """Windows repeating another's counts and templates (with lines, times and offsets of their own) get the documents
    the general path (every window through the model) gives, and no two documents share an entry or component dict."""
    windows = _copied([_window(*shape) for shape in shapes], copies)
    fast, plain = make_scorer(), make_scorer_plain()
    docs = fast.score(windows)
    assert json.dumps(docs) == json.dumps(plain.score(windows))
    entries = [id(entry) for doc in docs for entry in doc["templates"]]
    parts = [id(doc["anomaly"]["components"]) for doc in docs]
    assert len(set(entries)) == len(entries) and len(set(parts)) == len(parts)
    assert len({id(doc["templates"]) for doc in docs}) == len(docs)


def test_distinct_windows_are_alike_item_by_item() -> None:
    a = window({"A": 2, "B": 1})
    b = window({"A": 2, "B": 1})
    b.first_lines, b.start = ["another line"], 5.0
    other_order = window({"B": 1, "A": 2})
    other_text = window({"A": 2, "B": 1})
    other_text.templates = {"A": "text A", "B": "another text"}
    assert window_key(a) == window_key(b)
    assert len({window_key(w) for w in (a, other_order, other_text)}) == 3


def _copied(windows: list[Window], copies: list) -> list[Window]:  # type: ignore[type-arg]
    """``windows`` with ``copies`` of them inserted (counts and templates alike, lines, times and offsets their own)."""
    out = list(windows)
    for which, first, offset in copies:
        like = windows[which % len(windows)]
        w = Window("host", f"web-{offset}", "tumbling", like.start + offset, like.end + offset,
                   counts=Counter(like.counts), templates=dict(like.templates), samples=dict(like.samples),
                   first_lines=list(first), positions={"f": offset})
        out.insert(offset % (len(out) + 1), w)
    return out


@settings(max_examples=60, deadline=None)
@given(shapes=_shapes, copies=_copies, cuts=st.lists(st.integers(0, 40), max_size=6), bound=st.integers(1, 6))
def test_results_kept_across_batches_give_the_documents_of_every_window_scored(
        shapes: list, copies: list, cuts: list[int], bound: int) -> None:  # type: ignore[type-arg]
    """One scorer over consecutive batches (its memo small enough to start over) gives the general path's documents,
    and what a consumer does to a document (its entries, its components) never reaches a later one."""
    windows = _copied([_window(*shape) for shape in shapes], copies)
    want = json.dumps(make_scorer_plain().score(windows))
    fast = make_scorer()
    fast.memo_windows = bound
    docs: list[dict] = []  # type: ignore[type-arg]
    edges = [0, *sorted(cut % (len(windows) + 1) for cut in cuts), len(windows)]
    for lo, hi in zip(edges, edges[1:], strict=False):
        batch = fast.score(windows[lo:hi])
        docs.extend(json.loads(json.dumps(batch)))
        for doc in batch:  # a consumer that changes what it got
            doc["anomaly"]["components"]["iforest"] = -1.0
            for entry in doc["templates"]:
                entry["observed"] = -1
        assert len(fast._memo) <= bound
    assert json.dumps(docs) == want


def make_scorer_plain() -> Scorer:
    plain = make_scorer()
    plain.distinct = False
    return plain


@settings(max_examples=80, deadline=None)
@given(shapes=_shapes, copies=_copies, cuts=st.lists(st.integers(0, 40), max_size=6), modes=st.lists(st.booleans()),
       bound=st.sampled_from([1, 3, 2048]))
def test_anomalies_only_are_the_anomalous_documents_of_every_window(
        shapes: list, copies: list, cuts: list[int], modes: list[bool], bound: int) -> None:  # type: ignore[type-arg]
    """``score_counted(every=False)`` gives, batch by batch, the anomalous windows' documents of :meth:`Scorer.score`
    on the general path, in order, their positions and the same count of windows with a new template; one
    scorer switching between the two (results kept unexplained, explained later) gives both."""
    windows = _copied([_window(*shape) for shape in shapes], copies)
    plain, fast = make_scorer_plain(), make_scorer()
    fast.memo_windows = bound
    edges = [0, *sorted(cut % (len(windows) + 1) for cut in cuts), len(windows)]
    for i, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
        batch = windows[lo:hi]
        every = plain.score(batch)
        anomalous = [doc for doc in every if doc["anomaly"]["is_anomaly"]]
        unseen = sum(any(entry["new"] for entry in doc["templates"]) for doc in every)
        all_of_them = modes[i] if i < len(modes) else False
        docs, positions, new = fast.score_counted(batch, every=all_of_them)
        assert json.dumps(docs) == json.dumps(every if all_of_them else anomalous)
        assert positions == [at for at, doc in enumerate(every) if doc["anomaly"]["is_anomaly"]] and new == unseen
