"""Commit bookkeeping: the committed offset, the replay state, and the crash/replay property.

The property at the heart of the delivery scheme: crash anywhere after any checkpoint, restart from the
committed offset with the saved state, and the union of what was indexed before the crash and what the
restart indexes is exactly what one uninterrupted run indexes: same document ids (entity, start, kind,
late) with the same contents, no partial window under a new id.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import TopicPartition

from pipeline.config import PipelineSettings
from pipeline.records import RawLine, TemplateMatch, Window
from pipeline.stream.ledger import (
    INLINE_LIMIT,
    PartitionLedger,
    SavedState,
    _finite,
    inline_metadata,
    parse_metadata,
    reference_metadata,
    state_from_metadata,
)
from pipeline.stream.partition import PartitionStream

TP = TopicPartition("logs", 3)
ORIGIN = "logs/3"


def tag(message: str) -> TemplateMatch:
    word = message.split()[1] if len(message.split()) > 1 else "?"
    return TemplateMatch(f"T{word}", f"<*> {word}")


def line(ts: float | None, users: list[str], verb: str = "login") -> bytes:
    message = " ".join(f"user {u} did {verb}" for u in users) if users else f"system did {verb}"
    doc: dict[str, object] = {"message": message}
    if ts is not None:
        doc["@timestamp"] = ts
    return json.dumps(doc).encode()


def make_stream(kind: str, ledger: PartitionLedger, state: SavedState | None = None) -> PartitionStream:
    settings = PipelineSettings(entity_regex=r"user (?P<user>\w+)", window=kind, session_gap=10.0, max_session=40.0,
                                window_size=15.0, allowed_lateness=3.0)
    return PartitionStream(TP, settings, tag, ledger, state)


def key(window: Window) -> tuple[str, str, float, str, bool]:
    return window.entity_field, window.entity_id, window.start, window.kind, window.late


def content(window: Window) -> tuple[float, int, tuple[tuple[str, int], ...]]:
    return window.end, window.count, tuple(sorted(window.counts.items()))


def run(kind: str, lines: list[bytes], start: int = 0, ledger: PartitionLedger | None = None,
        state: SavedState | None = None, checkpoint_every: int = 0, crash_at: int | None = None):
    """Process lines[start:crash_at]; returns (windows flushed, windows closed since last checkpoint,
    last (offset, state) checkpoint)."""
    ledger = ledger or PartitionLedger(ORIGIN, start if start else None, state)
    stream = make_stream(kind, ledger, state)
    flushed: list[Window] = []
    pending: list[Window] = []
    point = None
    end = len(lines) if crash_at is None else crash_at
    for offset in range(start, end):
        outcome = stream.add(RawLine(lines[offset], ORIGIN, offset, None, 1000.0 + offset))
        pending.extend(outcome.closed)
        if checkpoint_every and (offset + 1) % checkpoint_every == 0:
            flushed.extend(pending)  # the sink flush: closed windows are indexed
            pending = []
            point = stream.checkpoint()
    if crash_at is None:
        pending.extend(stream.flush())
        flushed.extend(pending)
        pending = []
    return flushed, pending, point


def index_of(windows: list[Window]) -> dict:
    return {key(w): content(w) for w in windows}


# Time steps around the session gap (10 s) so sessions both continue and end; several entities so that
# one entity's window stays open while others close (the interleaving the replay state is for). A step of
# None is a line without a timestamp (the event clock carries the last time forward); negative steps are
# out-of-order records (late beyond the allowed 3 s now and then).
ordered_streams = st.lists(
    st.tuples(st.integers(0, 9), st.lists(st.sampled_from("abcdef"), min_size=1, max_size=2),
              st.sampled_from(["login", "read", "write", "fail"])),
    min_size=60, max_size=200,
)
any_order_streams = st.lists(
    st.tuples(st.one_of(st.integers(-12, 9), st.none()), st.lists(st.sampled_from("abcdef"), min_size=1, max_size=2),
              st.sampled_from(["login", "read", "write", "fail"])),
    min_size=60, max_size=200,
)


def render(events: list[tuple[float | None, list[str], str]]) -> list[bytes]:
    now = 1_700_000_000.0
    out = []
    for step, users, verb in events:
        if step is not None:
            now += step
        out.append(line(None if step is None else now, users, verb))
    return out


def crash_and_replay(events, kind, every, data) -> None:
    lines = render(events)
    expected = index_of(run(kind, lines)[0])
    crash_at = data.draw(st.integers(0, len(lines)))
    flushed, in_flight, point = run(kind, lines, checkpoint_every=every, crash_at=crash_at)
    index = index_of(flushed)
    # Windows closed after the last checkpoint may or may not have reached Elasticsearch before the crash.
    if data.draw(st.booleans()):
        index.update(index_of(in_flight))
    start, state = (0, None) if point is None else point
    after, _, _ = run(kind, lines, start=start, state=state,
                      ledger=PartitionLedger(ORIGIN, start, state) if point else None)
    for window in after:
        index[key(window)] = content(window)  # same _id: overwrite
    assert index == expected


@settings(max_examples=150, deadline=None)
@given(ordered_streams, st.sampled_from(["session", "tumbling"]), st.integers(1, 30), st.data())
def test_crash_and_replay_index_exactly_the_uninterrupted_documents(events, kind, every, data) -> None:
    crash_and_replay(events, kind, every, data)


@settings(max_examples=150, deadline=None)
@given(any_order_streams, st.sampled_from(["session", "tumbling"]), st.integers(1, 30), st.data())
def test_crash_and_replay_with_out_of_order_and_untimed_records(events, kind, every, data) -> None:
    crash_and_replay(events, kind, every, data)


def test_commit_offset_stays_below_open_windows() -> None:
    ledger = PartitionLedger(ORIGIN, None)
    stream = make_stream("session", ledger)
    t0 = 1_700_000_000.0
    stream.add(RawLine(line(t0, ["a"]), ORIGIN, 10, None, 0.0))
    stream.add(RawLine(line(t0 + 1, ["b"]), ORIGIN, 11, None, 0.0))
    stream.add(RawLine(line(t0 + 8, ["b"]), ORIGIN, 12, None, 0.0))
    closed = stream.add(RawLine(line(t0 + 14, ["c"]), ORIGIN, 13, None, 0.0)).closed  # watermark t0+11
    assert [w.entity_id for w in closed] == ["a"]
    offset, state = stream.checkpoint()
    assert offset == 11  # b's window (11, 12) is still open
    assert state.skip == {}  # nothing of a lies at or after 11
    closed = stream.add(RawLine(line(t0 + 40, ["c"]), ORIGIN, 14, None, 0.0)).closed  # closes b, cuts c
    assert sorted(w.entity_id for w in closed) == ["b", "c"]
    offset, state = stream.checkpoint()
    assert offset == 14 and state.skip == {}
    assert ledger.checkpoint([], stream.windower.watermark, None)[0] == 15  # nothing open: the next offset


def test_skip_state_covers_flushed_entities_after_the_commit() -> None:
    ledger = PartitionLedger(ORIGIN, None)
    stream = make_stream("session", ledger)
    t0 = 1_700_000_000.0
    stream.add(RawLine(line(t0, ["long"]), ORIGIN, 0, None, 0.0))          # stays open: keeps the commit at 0
    stream.add(RawLine(line(t0 + 1, ["short"]), ORIGIN, 1, None, 0.0))
    stream.add(RawLine(line(t0 + 2, ["short"]), ORIGIN, 2, None, 0.0))
    stream.add(RawLine(line(t0 + 9, ["long"]), ORIGIN, 3, None, 0.0))
    closed = stream.add(RawLine(line(t0 + 16, ["long"]), ORIGIN, 4, None, 0.0)).closed
    assert [w.entity_id for w in closed] == ["short"]
    offset, state = stream.checkpoint()
    assert offset == 0
    # Every record of "short" at offsets 0..2 is in its flushed window: a replay from 0 skips them.
    assert state.skip == {("user", "short"): 2}


def test_interleaved_flushed_records_are_listed_explicitly() -> None:
    ledger = PartitionLedger(ORIGIN, 0)
    ledger.done(9)
    flushed = Window("user", "x", "tumbling", 0.0, 15.0, positions={ORIGIN: 2})
    ledger.closed(flushed, [2, 5, 7])  # interleaves with the open window below (out-of-order records)
    still_open = Window("user", "x", "tumbling", 15.0, 30.0, positions={ORIGIN: 4})
    offset, state = ledger.checkpoint([still_open], 100.0, 101.0)
    assert offset == 4
    assert state.extra == {("user", "x"): (5, 7)}  # 2 is below the commit; 4, 6, 8, 9 are not flushed
    assert [o for o in range(4, 10) if ledger.should_skip(("user", "x"), o)] == [5, 7]
    again = SavedState.from_dict(json.loads(state.to_json()))
    assert again == state


def test_saved_state_round_trips_through_json() -> None:
    state = SavedState(1000, 17.25, None, {("block", "blk_1"): 1003, ("message", "x y"): 1000},
                       {("message", "x y"): (1002, 1005), ("block", "blk_2"): (1001,)})
    again = SavedState.from_dict(json.loads(state.to_json()))
    assert again == state
    text = inline_metadata(state)
    assert text is not None
    data = parse_metadata(text)
    assert data is not None and state_from_metadata(data, 1000) == state
    assert state_from_metadata(data, 999) is None  # state of another offset is never used


def test_large_state_does_not_fit_inline() -> None:
    big = SavedState(0, None, None, {("block", f"blk_{i:020d}"): i for i in range(500)})
    assert inline_metadata(big) is None
    ref = parse_metadata(reference_metadata(0, [0, 40, 42, "ab", 3]))
    assert ref is not None and ref["ref"] == [0, 40, 42, "ab", 3] and len(big.to_json()) > INLINE_LIMIT


def test_foreign_or_corrupt_metadata_is_ignored() -> None:
    for text in ("", None, "{not json", '{"other": 1}', "[]", '{"logwarden": 99}'):
        assert parse_metadata(text) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
       st.dictionaries(st.tuples(st.text(max_size=5), st.text(max_size=20)), st.integers(0, 10**6), max_size=20))
def test_state_json_property(offset, watermark, deltas) -> None:
    state = SavedState(offset, watermark, None, {k: offset + d for k, d in deltas.items()})
    assert SavedState.from_dict(json.loads(state.to_json())) == state


def test_watermark_before_the_commit_is_restored() -> None:
    ledger = PartitionLedger(ORIGIN, None)
    stream = make_stream("session", ledger)
    t0 = 1_700_000_000.0
    stream.add(RawLine(line(t0 + 100, ["z"]), ORIGIN, 0, None, 0.0))
    stream.add(RawLine(line(t0, ["a"]), ORIGIN, 1, None, 0.0))  # behind the watermark: a late window
    offset, state = stream.checkpoint()
    assert offset == 0 and state.watermark is None  # nothing before offset 0
    stream.add(RawLine(line(t0 + 200, ["y"]), ORIGIN, 2, None, 0.0))  # closes z and the late a
    offset, state = stream.checkpoint()
    assert offset == 2 and math.isclose(state.watermark, t0 + 100 - 3.0)


def feed(ledger: PartitionLedger, first: int, count: int, long_open: list[Window], every: int = 1000) -> None:
    """Records whose watermark and clock change at every offset, checkpointed every ``every`` records."""
    for offset in range(first, first + count):
        ledger.before(offset, 1_700_000_000.0 + offset, 1_700_000_003.0 + offset)
        ledger.done(offset)
        if (offset + 1) % every == 0:
            ledger.checkpoint(long_open, 1_700_000_001.0 + offset, 1_700_000_004.0 + offset)


def test_marks_are_kept_only_where_a_commit_point_can_be() -> None:
    """A long-open window pins the commit; the ledger must not keep a mark per record until it closes."""
    import tracemalloc

    long_open = [Window("user", f"u{i}", "session", 0.0, 1.0, positions={ORIGIN: i * 7}) for i in range(3)]
    ledger = PartitionLedger(ORIGIN, None)
    feed(ledger, 0, 2_000, long_open)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed(ledger, 2_000, 20_000, long_open)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / 20_000 < 5, f"{held / 20_000:.1f} bytes per record held after the checkpoints"
    # The values saved with the commit are still those in force just before the oldest open window.
    offset, state = ledger.checkpoint(long_open, 0.0, 0.0)
    assert (offset, state.watermark, state.clock) == (0, 1_700_000_000.0, 1_700_000_003.0)
    later = [long_open[1], long_open[2]]
    offset, state = ledger.checkpoint(later, 0.0, 0.0)
    assert offset == 7 and state.watermark == 1_700_000_007.0 and state.clock == 1_700_000_010.0


def test_checkpoint_at_the_next_offset_saves_the_current_values() -> None:
    ledger = PartitionLedger(ORIGIN, None)
    feed(ledger, 0, 50, [], every=10)
    offset, state = ledger.checkpoint([], 123.0, 456.0)
    assert (offset, state.watermark, state.clock) == (50, 123.0, 456.0)


def test_window_opened_after_a_thinning_checkpoint_gets_the_values_in_force() -> None:
    """The values before offset 10 equal those at the checkpoint but not the kept mark's (offset 2)."""
    ledger = PartitionLedger(ORIGIN, None)
    for offset in range(10):
        ledger.before(offset, 100.0 + offset, 200.0 + offset)
        ledger.done(offset)
    ledger.checkpoint([Window("user", "a", "session", 0.0, 1.0, positions={ORIGIN: 2})], 110.0, 210.0)
    assert ledger.marks == 1
    ledger.before(10, 110.0, 210.0)  # opens a window; the values have not changed since the checkpoint
    ledger.done(10)
    offset, state = ledger.checkpoint([Window("user", "b", "session", 0.0, 1.0, positions={ORIGIN: 10})], 111.0, 211.0)
    assert (offset, state.watermark, state.clock) == (10, 110.0, 210.0)


def test_state_over_the_byte_bound_drops_its_oldest_entries() -> None:
    state = SavedState(100, 5.0, 6.0, {("block", f"blk_{i:06d}"): 100 + i for i in range(1_000)},
                       {("block", "blk_000003"): (2_000,), ("message", "only late \u00e9\"x"): (150, 151)})
    assert state.bounded(state.size()) is state  # fits: unchanged
    for limit in (state.size() - 1, state.size() // 2, 300, 10):
        small = state.bounded(limit)
        assert small.size() <= limit or not small.entities()
        assert small.dropped == state.entities() - small.entities() > 0
        newest = {k: max((state.skip.get(k, -1), *state.extra.get(k, ()))) for k in small.skip.keys() | small.extra}
        gone = (state.skip.keys() | state.extra.keys()) - newest.keys()
        assert all(max((state.skip.get(k, -1), *state.extra.get(k, ()))) <= min(newest.values(), default=10**9)
                   for k in gone)  # only older entries were dropped
        assert (small.offset, small.watermark, small.clock) == (100, 5.0, 6.0)
        assert SavedState.from_dict(json.loads(small.to_json())) == small
    assert ("block", "blk_000003") in state.bounded(state.size() // 2).extra  # its late record is recent


def test_ledger_forgets_entries_the_bound_dropped(monkeypatch) -> None:
    import pipeline.stream.ledger as ledger_module

    ledger = PartitionLedger(ORIGIN, 0)
    ledger.done(499)
    for i in range(500):
        ledger.closed(Window("block", f"blk_{i:06d}", "session", 0.0, 1.0, positions={ORIGIN: i}), [i])
    still_open = Window("block", "long", "session", 0.0, 1.0, positions={ORIGIN: 0})
    monkeypatch.setattr(ledger_module, "MAX_STATE_BYTES", 2_000)
    offset, state = ledger.checkpoint([still_open], 10.0, 11.0)
    assert offset == 0 and state.size() <= 2_000 and state.dropped == 500 - state.entities() > 0
    assert min(state.skip.values()) > 499 - state.entities()  # the newest were kept
    assert len(ledger.skip) == state.entities()
    again = ledger.checkpoint([still_open], 10.0, 11.0)[1]
    assert again.dropped == 0 and again == state  # dropped once, counted once


def reference_before(ledger: PartitionLedger, offset: int, watermark: float, clock: float | None) -> None:
    """``PartitionLedger.before`` without its unchanged-values shortcut (kept here as its specification)."""
    if ledger.next_offset is None:
        ledger.next_offset = offset
    values = (_finite(watermark), _finite(clock))
    if values != ledger._last or not ledger._at:
        ledger._mark(offset, *values)


_times = st.sampled_from([0.0, -0.0, 5.0, 7.5, math.inf, -math.inf, math.nan])


@given(st.lists(st.tuples(_times, st.one_of(st.none(), _times)), max_size=30), st.booleans())
def test_before_shortcut_records_the_marks_of_the_plain_rule(calls, resumed) -> None:
    state = SavedState(3, 5.0, None) if resumed else None
    fast, plain = PartitionLedger("t/0", 3 if resumed else None, state), PartitionLedger("t/0", 3 if resumed else None,
                                                                                        state)
    for offset, (watermark, clock) in enumerate(calls, start=3):
        fast.before(offset, watermark, clock)
        reference_before(plain, offset, watermark, clock)
        assert fast._last == plain._last  # never NaN: non-finite values are kept as None
    assert (list(fast._at), fast.next_offset) == (list(plain._at), plain.next_offset)
    assert [str(v) for v in fast._wm] == [str(v) for v in plain._wm]  # NaN (none) and -0.0 as written
    assert [str(v) for v in fast._clk] == [str(v) for v in plain._clk]
