"""Windows: closing by watermark, lateness, and the property that no record is lost or doubled."""

from __future__ import annotations

import heapq
import pickle
from array import array
from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.records import (
    MAX_UNSEEN_TEMPLATES,
    OTHER_UNSEEN_ID,
    OTHER_UNSEEN_TEMPLATE,
    TemplateMatch,
    Window,
    new_counts,
)
from pipeline.stages.windows import EventClock, Windower

T = TemplateMatch("T1", "hello <*>")


def test_session_closes_after_gap_when_watermark_passes() -> None:
    w = Windower("session", gap=10, max_length=1000)
    assert w.add(("b", "1"), 0, T, "l0") == []
    assert w.add(("b", "1"), 5, T, "l1") == []
    closed = w.add(("b", "2"), 20, T, "l2")  # watermark 20 > 5 + 10
    assert [(c.entity_id, c.count, c.start, c.end) for c in closed] == [("1", 2, 0, 5)]
    rest = w.flush()
    assert [(c.entity_id, c.count) for c in rest] == [("2", 1)]


def test_session_cut_at_max_length() -> None:
    w = Windower("session", gap=10, max_length=20)
    closed = []
    for t in range(0, 50, 5):
        closed += w.add(("b", "1"), t, T, f"l{t}")
    closed += w.flush()
    assert sum(c.count for c in closed) == 10
    assert all(c.end - c.start <= 20 for c in closed)
    assert len(closed) >= 2


def test_tumbling_aligned_buckets() -> None:
    w = Windower("tumbling", size=60)
    out = []
    for t in (0, 30, 59, 60, 61, 125):
        out += w.add(("host", "a"), t, T, str(t))
    out += w.flush()
    assert [(c.start, c.end, c.count) for c in out] == [(0, 60, 3), (60, 120, 2), (120, 180, 1)]


def test_late_record_is_counted_and_kept() -> None:
    w = Windower("tumbling", size=10, allowed_lateness=0)
    out = w.add(("h", "a"), 0, T, "a")
    out += w.add(("h", "a"), 25, T, "b")  # closes [0,10)
    out += w.add(("h", "a"), 3, T, "late")  # its window is closed: late
    assert w.stats.late_records == 1
    out += w.flush()
    late = [c for c in out if c.late]
    assert len(late) == 1 and late[0].count == 1 and late[0].start == 0
    assert sum(c.count for c in out) == 3


def test_allowed_lateness_keeps_window_open() -> None:
    w = Windower("tumbling", size=10, allowed_lateness=30)
    out = w.add(("h", "a"), 0, T, "a")
    out += w.add(("h", "a"), 25, T, "b")
    out += w.add(("h", "a"), 3, T, "c")  # within lateness: joins its window
    out += w.flush()
    assert w.stats.late_records == 0
    assert sorted(c.count for c in out) == [1, 2]


def test_samples_positions_and_unknown() -> None:
    w = Windower("session", gap=10)
    w.add(("b", "1"), 0, TemplateMatch("T1", "a"), "line a", "f", 7)
    w.add(("b", "1"), 1, TemplateMatch("N2", "b", known=False), "line b", "f", 9)
    assert w.open_positions() == {"f": 7}
    (win,) = w.flush()
    assert win.samples == {"T1": "line a", "N2": "line b"}
    assert win.unknown == {"N2"}
    assert win.first_lines == ["line a", "line b"]


def test_event_clock_carries_forward() -> None:
    clock = EventClock()
    assert clock.event_time(None, "f", 99.0) == 99.0
    assert clock.event_time(5.0, "f", 99.0) == 5.0
    assert clock.event_time(None, "f", 99.0) == 5.0
    assert clock.event_time(None, "g", 42.0) == 42.0


events = st.lists(
    st.tuples(st.integers(0, 4), st.floats(0, 500, allow_nan=False), st.sampled_from(["T1", "T2", "T3"])),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(events=events, kind=st.sampled_from(["session", "tumbling"]), lateness=st.sampled_from([0.0, 5.0, 50.0]),
       gap=st.sampled_from([1.0, 10.0, 100.0]))
def test_every_record_in_exactly_one_window(events, kind, lateness, gap) -> None:  # type: ignore[no-untyped-def]
    w = Windower(kind, gap=gap, max_length=60, size=gap * 3, allowed_lateness=lateness)
    out = []
    for i, (entity, ts, tid) in enumerate(events):
        out += w.add(("e", str(entity)), ts, TemplateMatch(tid, tid), f"line{i}", "src", i)
    out += w.flush()
    assert w.open_count == 0
    assert sum(win.count for win in out) == len(events)
    for entity in range(5):
        expected = sum(1 for e, _, _ in events if e == entity)
        assert sum(win.count for win in out if win.entity_id == str(entity)) == expected
    for tid in ("T1", "T2", "T3"):
        assert sum(win.counts[tid] for win in out) == sum(1 for *_, t in events if t == tid)
    assert w.stats.windows_closed == len(out)
    for win in out:
        if kind == "tumbling":
            assert win.end - win.start == gap * 3
        else:
            assert win.start <= win.end


def test_track_offsets_and_open_windows() -> None:
    w = Windower("session", gap=10, track_offsets=True)
    w.add(("b", "1"), 0, T, "a", "t/0", 5)
    w.add(("b", "2"), 1, T, "b", "t/0", 6)
    w.add(("b", "1"), 2, T, "c", "t/0", 7)
    assert sorted(win.entity_id for win in w.open_windows()) == ["1", "2"]
    closed = {win.entity_id: list(win.offsets or []) for win in w.flush()}
    assert closed == {"1": [5, 7], "2": [6]}
    assert w.open_windows() == []
    untracked = Windower("session", gap=10)
    untracked.add(("b", "1"), 0, T, "a", "t/0", 5)
    assert untracked.flush()[0].offsets is None


def test_quiet_windows_close_after_idle_processing_time_and_nothing_is_lost() -> None:
    from pipeline.records import TemplateMatch

    windower = Windower("session", gap=300.0, max_length=3600.0, allowed_lateness=60.0)
    match = TemplateMatch("A", "a")
    windower.add(("host", "a"), 1_000.0, match, "a1", now=10.0)
    windower.add(("host", "b"), 1_001.0, match, "b1", now=50.0)
    windower.add(("host", "a"), 1_002.0, match, "a2", now=60.0)
    assert windower.close_idle(now=100.0, idle=55.0) == []  # a touched at 60, b at 50: both within 55 s
    [quiet] = windower.close_idle(now=100.0, idle=45.0)      # b has been quiet for 50 s
    assert (quiet.entity_id, quiet.count) == ("b", 1) and windower.open_count == 1
    windower.add(("host", "b"), 1_003.0, match, "b2", now=101.0)  # b talks again: a new window
    rest = windower.flush()
    assert sorted((w.entity_id, w.count) for w in rest) == [("a", 2), ("b", 1)]
    assert windower.close_idle(now=1e9, idle=1.0) == []


def test_a_window_keeps_at_most_max_unseen_templates_and_folds_the_rest_into_one_other() -> None:
    """A stream of high-cardinality junk (every line a template the model never saw) costs bounded state per
    window: its templates' texts and sample lines stop at the cap; the rest is counted under one id."""
    from pipeline.stages.windows import MAX_UNSEEN_TEMPLATES, OTHER_UNSEEN_ID, OTHER_UNSEEN_TEMPLATE

    w = Windower("session", gap=10, max_length=10_000)
    known = TemplateMatch("Tk", "known <*>")
    n = MAX_UNSEEN_TEMPLATES * 4
    for i in range(n):
        w.add(("b", "1"), 0, TemplateMatch(f"Tjunk{i}", f"junk {i} " + "x" * 100, known=False), f"line {i}")
        w.add(("b", "1"), 0, known, "a known line")
    (window,) = w.flush()
    assert window.count == 2 * n  # nothing lost
    assert window.counts["Tk"] == n  # known templates are never folded
    assert len(window.unknown) == MAX_UNSEEN_TEMPLATES + 1
    assert window.counts[OTHER_UNSEEN_ID] == n - MAX_UNSEEN_TEMPLATES
    assert window.templates[OTHER_UNSEEN_ID] == OTHER_UNSEEN_TEMPLATE
    assert len(window.templates) == len(window.samples) == MAX_UNSEEN_TEMPLATES + 2
    assert sum(window.counts[t] for t in window.unknown) == n  # every unseen line still counts as unseen
    # A template already in the window keeps counting under its own id after the cap is reached.
    w.add(("b", "2"), 0, TemplateMatch("Tjunk0", "junk 0", known=False), "again")
    for i in range(1, MAX_UNSEEN_TEMPLATES + 5):
        w.add(("b", "2"), 0, TemplateMatch(f"Tjunk{i}", f"junk {i}", known=False), "x")
    w.add(("b", "2"), 0, TemplateMatch("Tjunk0", "junk 0", known=False), "again")
    (second,) = w.flush()
    assert second.counts["Tjunk0"] == 2 and second.counts[OTHER_UNSEEN_ID] == 5


class GeneralPathWindower(Windower):
    """Every record through ``_slot_for`` and ``_deadline``: the path ``add``'s shortcuts for a record that joins its
    entity's open session, its open tumbling bucket or its closed bucket's open late window, or opens an on-time
    session or bucket (and the deadlines inlined in ``_schedule`` and ``_close_due``, and ``advance`` inlined in
    ``add``) must agree with. Windows are made with a plain ``Counter()`` and counted with ``+= 1`` (what
    ``new_counts``, ``_opened`` and ``_put`` shortcut)."""

    def _new_window(self, key, ts, late):  # type: ignore[no-untyped-def]
        window = super()._new_window(key, ts, late)
        window.counts = Counter()
        return window

    def _put(self, window, match, line, origin, offset):  # type: ignore[no-untyped-def]
        tid = match.template_id
        template = match.template
        if tid not in window.templates and not match.known and len(window.unknown) >= MAX_UNSEEN_TEMPLATES:
            tid, template = OTHER_UNSEEN_ID, OTHER_UNSEEN_TEMPLATE
        window.counts[tid] += 1
        if tid not in window.templates:
            window.templates[tid] = template
            if not match.known:
                window.unknown.add(tid)
            if self.max_samples is None or len(window.samples) < self.max_samples:
                window.samples[tid] = line
        if len(window.first_lines) < self.max_first_lines:
            window.first_lines.append(line)
        if origin and (origin not in window.positions or offset < window.positions[origin]):
            window.positions[origin] = offset
        if self.track_offsets:
            if window.offsets is None:
                window.offsets = array("q")
            window.offsets.append(offset)

    def add(self, key, ts, match, line, origin="", offset=0, advance=True, now=None):  # type: ignore[no-untyped-def]
        self.stats.records += 1
        closed: list = []  # type: ignore[type-arg]
        slot, late = self._slot_for(key, ts, closed)
        window = self._open.get(slot)
        if window is None:
            window = self._new_window(key, ts, late)
            self._open[slot] = window
        if self.kind == "session":
            window.start = min(window.start, ts)
            window.end = max(window.end, ts)
        self._put(window, match, line, origin, offset)
        if now is not None:
            self._touched[slot] = now
        if late:
            self.stats.late_records += 1
        deadline = self._deadline(window)
        if self._scheduled.get(slot) != deadline:
            self._scheduled[slot] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, slot))
        closed.extend(self.advance(ts) if advance else [])
        return closed

    def _close_due(self):  # type: ignore[no-untyped-def]
        closed: list = []  # type: ignore[type-arg]
        while self._heap and self._heap[0][0] <= self.watermark:
            _, _, slot = heapq.heappop(self._heap)
            window = self._open.get(slot)
            if window is None or self._deadline(window) > self.watermark:
                continue
            del self._open[slot]
            del self._scheduled[slot]
            self._touched.pop(slot, None)
            closed.append(window)
        self.stats.windows_closed += len(closed)
        return closed


def _shape(windows: list) -> list:  # type: ignore[type-arg]
    return [(w.entity_id, w.kind, w.start, w.end, w.late, type(w.counts), list(w.counts.items()), w.templates,
             w.unknown, w.samples, w.first_lines, w.positions, list(w.offsets or ())) for w in windows]


@settings(max_examples=200, deadline=None)
@example(events=[(0, 10.0, "T1", True, True), (1, 4_102_444_800.0, "T2", False, True),  # a line dated 2099
                 (0, 11.0, "T1", True, True), (2, 12.0, "T2", True, True), (1, 4_102_444_801.0, "T1", True, False)],
         kind="tumbling", lateness=5.0, gap=10.0, max_length=60.0, bounds=(None, 5), track=True, origin="src")
@given(events=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 300, allow_nan=False), st.sampled_from(["T1", "T2"]),
                                 st.booleans(), st.booleans()), max_size=120),
       kind=st.sampled_from(["session", "tumbling"]), lateness=st.sampled_from([0.0, 5.0]),
       gap=st.sampled_from([1.0, 10.0, 100.0]), max_length=st.sampled_from([15.0, 60.0]),
       bounds=st.sampled_from([(None, 5), (None, 1), (0, 5), (1, 0), (-1, 2)]), track=st.booleans(),
       origin=st.sampled_from(["src", ""]))
def test_shortcuts_agree_with_the_general_path(events, kind, lateness, gap, max_length, bounds, track,  # type: ignore[no-untyped-def]
                                               origin) -> None:
    """The shortcuts (and a new window made holding its first record, ``_opened``) under every bound on samples and
    first lines, with and without offsets and an origin."""
    samples, first_lines = bounds
    options = {"gap": gap, "max_length": max_length, "size": gap * 3, "allowed_lateness": lateness,
               "track_offsets": track, "max_samples": samples, "max_first_lines": first_lines}
    fast, plain = Windower(kind, **options), GeneralPathWindower(kind, **options)
    for i, (entity, ts, tid, known, timed) in enumerate(events):
        match = TemplateMatch(tid, tid, known=known)
        got = fast.add(("e", str(entity)), ts, match, f"l{i}", origin, i, advance=timed, now=float(i))
        want = plain.add(("e", str(entity)), ts, match, f"l{i}", origin, i, advance=timed, now=float(i))
        assert _shape(got) == _shape(want)
        assert fast.watermark == plain.watermark
        assert fast._heap == plain._heap and fast._scheduled == plain._scheduled
    assert _shape(fast.close_idle(len(events) / 2, 10.0)) == _shape(plain.close_idle(len(events) / 2, 10.0))
    assert _shape(fast.flush()) == _shape(plain.flush())
    assert fast.stats == plain.stats


@given(ops=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-3, 5)), max_size=20))
def test_new_counts_is_an_empty_counter(ops: list[tuple[str, int]]) -> None:
    """``new_counts`` (a Counter made without ``Counter.__init__``) behaves as ``Counter()`` in everything."""
    fast, plain = new_counts(), Counter()
    assert type(fast) is Counter and fast == plain and repr(fast) == repr(plain) and not fast
    for tid, n in ops:
        assert fast[tid] == plain[tid]  # a missing id reads 0
        fast[tid] += n
        plain[tid] += n
    fast.update(["a", "c"])
    plain.update(["a", "c"])
    assert list(fast.items()) == list(plain.items()) and fast.most_common() == plain.most_common()
    assert fast.total() == plain.total() and +fast == +plain and fast + plain == plain + plain
    assert pickle.loads(pickle.dumps(fast)) == plain and fast.copy() == plain
    default = Window("f", "e", "session", 0.0, 0.0)
    assert type(default.counts) is Counter and default.counts == Counter() and default.counts is not Window(
        "f", "e", "session", 0.0, 0.0).counts
