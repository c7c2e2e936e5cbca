"""Event-time windows per entity, closed by a watermark.

Two kinds:

* **session** — an entity's records separated by at most ``gap`` seconds form one window, cut at
  ``max_length`` seconds so that a chatty entity still gets scored. ``window.end`` is the time of
  the last record.
* **tumbling** — fixed, epoch-aligned buckets of ``size`` seconds per entity.

The watermark is the largest event time seen minus ``allowed_lateness``. A window closes when the
watermark passes its deadline (session: last record + gap, or start + max_length; tumbling: bucket
end). Closing happens only when the watermark moves forward, so a burst of records is windowed before
anything closes. Only event times read from records move the watermark: a record that carries none is
windowed at its fallback time (``add(..., advance=False)``, see :class:`EventClock`) without moving it, so a
single untimed or implausibly timed record can never push the watermark past the rest of the stream.

**Idle windows** (:meth:`Windower.close_idle`): a window whose last record was added more than a given
processing time ago is closed even though the watermark did not pass its deadline. The watermark moves only
with new records, so without this a partition that goes quiet would keep its last windows (and their anomalies)
open until more data arrives. The worker calls it; ``detect`` ends its input instead.

A record whose window has already closed (its event time is behind the watermark) is **late**: it is
counted in ``stats.late_records`` and put into a window flagged ``late=True``, which closes the next time
the watermark moves. Nothing is dropped: every record added is in exactly one emitted window
(``flush()`` emits whatever is still open at end of input), which the property tests check.

**Bounded per window.** A window keeps the text and first line of every template it holds, so that explanations
can quote them. Templates the model knows are bounded by its vocabulary, but a stream of high-cardinality junk
(a never-seen template on every line: random tokens, a dump of binary data) would make one window hold every
line. So a window keeps at most :data:`MAX_UNSEEN_TEMPLATES` distinct unseen templates; the lines of any further
one count under the single id :data:`OTHER_UNSEEN_ID`, itself an unseen template. The window's line count and
unseen-line count stay exact; only its number of distinct unseen templates stops at the cap plus one, far beyond
anything a training window holds, so such a window scores as what it is: unlike normal.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Hashable
from dataclasses import dataclass

from pipeline.records import (
    MAX_UNSEEN_TEMPLATES,
    OTHER_UNSEEN_ID,
    OTHER_UNSEEN_TEMPLATE,
    TemplateMatch,
    Window,
    new_counts,
)

__all__ = ["MAX_UNSEEN_TEMPLATES", "OTHER_UNSEEN_ID", "OTHER_UNSEEN_TEMPLATE", "EventClock", "Windower",
           "make_windower"]

EntityKey = tuple[str, str]


@dataclass
class WindowStats:
    records: int = 0
    late_records: int = 0
    windows_closed: int = 0


class EventClock:
    """Event time for records that carry none (the one rule, for files and Kafka alike): the last event time
    seen from the same origin, else the arrival time (when the line was read; a Kafka record's timestamp).

    Keeps a file without timestamps on some lines (stack traces, continuation lines) in time order. An
    untimed record never moves the watermark (the chain adds it with ``advance=False``): before any timed
    record it sits in a window at its arrival time, which closes at end of input or when idle, while the
    historical records after it are windowed by their own times, not made late by the wall clock.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def event_time(self, timestamp: float | None, origin: str, arrival: float) -> float:
        if timestamp is not None and math.isfinite(timestamp):
            self._last[origin] = timestamp
            return timestamp
        return self._last.get(origin, arrival)


class Windower:
    """Groups tagged records into windows. Use :func:`make_windower` to build one from settings."""

    def __init__(
        self,
        kind: str,
        gap: float = 300.0,
        max_length: float = 3600.0,
        size: float = 60.0,
        allowed_lateness: float = 0.0,
        max_samples: int | None = None,  # None: the first line of every template (explanations quote any)
        max_first_lines: int = 5,
        track_offsets: bool = False,
    ) -> None:
        if kind not in ("session", "tumbling"):
            raise ValueError(f"unknown window kind {kind!r}")
        self.kind = kind
        self._session = kind == "session"
        self.gap = gap
        self.max_length = max_length
        self.size = size
        self.allowed_lateness = allowed_lateness
        self.max_samples = max_samples
        self.max_first_lines = max_first_lines
        self.track_offsets = track_offsets
        self.watermark = -math.inf
        self.stats = WindowStats()
        self._open: dict[Hashable, Window] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        # Last deadline pushed per open slot: a record that leaves the deadline as it was (most records of
        # a tumbling window, every further late record) pushes nothing.
        self._scheduled: dict[Hashable, float] = {}
        self._touched: dict[Hashable, float] = {}  # processing time of each open slot's last record
        self._seq = 0

    # -- public API -------------------------------------------------------------------------------
    def add(
        self, key: EntityKey, ts: float, match: TemplateMatch, line: str, origin: str = "", offset: int = 0,
        advance: bool = True, now: float | None = None,
    ) -> list[Window]:
        """Add one record of entity ``key`` at event time ``ts``; return windows closed as a result.

        ``advance=False``: ``ts`` is a fallback time (the record carried none), it does not move the watermark.
        ``now`` is the processing time (monotonic seconds) for :meth:`close_idle`.
        """
        self.stats.records += 1
        closed: list[Window] = []
        window = self._open.get(key) if self._session else None
        # ``min``/``max`` of two written out (``b if b < a else a`` is ``min(a, b)``, equal values and NaN alike): a
        # builtin call costs more than the comparison, and these run once or twice per record
        if window is not None and (window.start - self.gap <= ts <= window.end + self.gap
                                   and (ts if ts > window.end else window.end) - (
                                       ts if ts < window.start else window.start) <= self.max_length):
            # the common case of a session: the record joins the entity's open session (what ``_slot_for`` finds
            # first), and the session grows to take it in
            if ts < window.start:
                window.start = ts
            if ts > window.end:
                window.end = ts
            self._put(window, match, line, origin, offset)
            if now is not None:
                self._touched[key] = now
            cut = window.start + self.max_length  # ``_schedule``, inlined
            deadline = cut if cut < (due := window.end + self.gap) else due
            if self._scheduled.get(key) != deadline:
                self._scheduled[key] = deadline
                self._seq += 1
                heapq.heappush(self._heap, (deadline, self._seq, key))
        elif self._session and window is None and not ts + self.gap <= self.watermark:  # as ``_slot_for`` tests it
            # a session that opens on time (the entity has none open): ``_slot_for``, ``_new_window`` and
            # ``_schedule`` of an on-time session, inlined (on one-line sessions, every record of the stream)
            window = self._opened(key, ts, ts, match, line, origin, offset)
            self._open[key] = window
            if now is not None:
                self._touched[key] = now
            cut = ts + self.max_length
            deadline = cut if cut < (due := ts + self.gap) else due
            self._scheduled[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
        elif not self._session and (window := self._open.get(
                bucket := (key, math.floor(ts / self.size) * self.size))) is not None:
            # the common case of a tumbling window: the record's bucket is open (what ``_slot_for`` finds first; a
            # bucket's slot never holds a late window, and its deadline, the bucket's end, is scheduled already)
            self._put(window, match, line, origin, offset)
            if now is not None:
                self._touched[bucket] = now
        elif not self._session and not bucket[1] + self.size <= self.watermark:  # as ``_slot_for`` tests it
            # a tumbling bucket that opens on time: ``_slot_for``, ``_new_window`` and ``_schedule`` of an on-time
            # bucket, inlined (its slot has no deadline yet: a slot's deadline goes when the slot closes)
            end = bucket[1] + self.size
            window = self._opened(key, end - self.size, end, match, line, origin, offset)
            self._open[bucket] = window
            if now is not None:
                self._touched[bucket] = now
            self._scheduled[bucket] = end
            self._seq += 1
            heapq.heappush(self._heap, (end, self._seq, bucket))
        elif not self._session and (window := self._open.get(late_slot := (key, bucket[1], "late"))) is not None:
            # a late record whose bucket's late window is open (what ``_slot_for`` gives a record behind the watermark
            # in a closed bucket): the general path's steps for it, inlined; the late window's deadline, -inf, is
            # scheduled already (Zookeeper-2k: half of its records)
            self._put(window, match, line, origin, offset)
            if now is not None:
                self._touched[late_slot] = now
            self.stats.late_records += 1
        else:
            slot, late = self._slot_for(key, ts, closed)
            window = self._open.get(slot)
            if window is None:
                window = self._new_window(key, ts, late)
                self._open[slot] = window
            if self._session:
                window.start = min(window.start, ts)
                window.end = max(window.end, ts)
            self._put(window, match, line, origin, offset)
            if now is not None:
                self._touched[slot] = now
            if late:
                self.stats.late_records += 1
            self._schedule(slot, window)
        if advance and ts - self.allowed_lateness > self.watermark:  # else ``advance`` would close nothing
            self.watermark = ts - self.allowed_lateness  # ``advance``, inlined
            if self._heap and self._heap[0][0] <= self.watermark:
                if closed:
                    closed.extend(self._close_due())
                else:  # the shortcuts above close nothing themselves: the due windows are the answer
                    closed = self._close_due()
        return closed

    def advance(self, event_time: float) -> list[Window]:
        """Move the watermark to ``event_time - allowed_lateness`` (never backwards); close windows."""
        mark = event_time - self.allowed_lateness
        if mark <= self.watermark:
            return []
        self.watermark = mark
        return self._close_due()

    def flush(self) -> list[Window]:
        """Close every open window (end of input, shutdown or partition revocation)."""
        closed = sorted(self._open.values(), key=lambda w: (w.end, w.entity_id, w.start))
        self._open.clear()
        self._heap.clear()
        self._scheduled.clear()
        self._touched.clear()
        self.stats.windows_closed += len(closed)
        return closed

    def close_idle(self, now: float, idle: float) -> list[Window]:
        """Close the windows whose last record was added (``add(..., now=...)``) more than ``idle`` ago."""
        cutoff = now - idle
        slots = [slot for slot, touched in self._touched.items() if touched < cutoff]
        closed = []
        for slot in slots:
            del self._touched[slot]
            window = self._open.pop(slot, None)
            if window is not None:
                self._scheduled.pop(slot, None)  # its heap entry is skipped when popped (slot not open)
                closed.append(window)
        closed.sort(key=lambda w: (w.end, w.entity_id, w.start))
        self.stats.windows_closed += len(closed)
        return closed

    @property
    def open_count(self) -> int:
        return len(self._open)

    def open_windows(self) -> list[Window]:
        """The windows still open (not closed or flushed), in no particular order."""
        return list(self._open.values())

    def open_positions(self) -> dict[str, int]:
        """Smallest offset per origin among records in open windows (for safe Kafka commits)."""
        low: dict[str, int] = {}
        for window in self._open.values():
            for origin, offset in window.positions.items():
                if origin not in low or offset < low[origin]:
                    low[origin] = offset
        return low

    # -- internals --------------------------------------------------------------------------------
    def _slot_for(self, key: EntityKey, ts: float, closed: list[Window]) -> tuple[Hashable, bool]:
        if self.kind == "tumbling":
            start = math.floor(ts / self.size) * self.size
            slot: Hashable = (key, start)
            if slot in self._open:
                return slot, self._open[slot].late
            if start + self.size <= self.watermark:
                return (key, start, "late"), True
            return slot, False
        current = self._open.get(key)
        if current is not None:
            fits_gap = current.start - self.gap <= ts <= current.end + self.gap
            span = max(current.end, ts) - min(current.start, ts)
            if fits_gap and span <= self.max_length:
                return key, False
            if ts > current.end:
                # The session ended (gap passed or it grew too long): close it, start a new one.
                del self._open[key]
                self._scheduled.pop(key, None)
                self._touched.pop(key, None)
                self.stats.windows_closed += 1
                closed.append(current)
                return key, False
        if ts + self.gap <= self.watermark or current is not None:
            return (key, "late"), True
        return key, False

    def _new_window(self, key: EntityKey, ts: float, late: bool) -> Window:
        end = ts if self.kind == "session" else math.floor(ts / self.size) * self.size + self.size
        start = ts if self.kind == "session" else end - self.size
        return Window(entity_field=key[0], entity_id=key[1], kind=self.kind, start=start, end=end, late=late)

    def _opened(self, key: EntityKey, start: float, end: float, match: TemplateMatch, line: str, origin: str,
                offset: int) -> Window:
        """A new on-time window holding its first record: :meth:`_put` of that record into ``Window(...)``, its fields
        made with their contents (one-line sessions and buckets open a window for nearly every record)."""
        known = match.known
        if (not known and MAX_UNSEEN_TEMPLATES < 1) or (self.max_samples is not None and self.max_samples < 1) or (
                self.max_first_lines < 1):
            window = Window(key[0], key[1], self.kind, start, end)  # a bound of nothing: the general path
            self._put(window, match, line, origin, offset)
            return window
        tid = match.template_id
        counts = new_counts()
        counts[tid] = 1
        window = Window(key[0], key[1], self.kind, start, end, counts, {tid: match.template},
                        set() if known else {tid}, {tid: line}, [line], {origin: offset} if origin else {})
        if self.track_offsets:
            window.offsets = array("q", (offset,))
        return window

    def _put(self, window: Window, match: TemplateMatch, line: str, origin: str, offset: int) -> None:
        """Count the record's template in the window (a session's span is already extended to its time)."""
        tid = match.template_id
        if tid in window.templates:  # the common case: a template the window holds already
            window.counts[tid] += 1
        else:
            template = match.template
            if not match.known and len(window.unknown) >= MAX_UNSEEN_TEMPLATES:
                tid, template = OTHER_UNSEEN_ID, OTHER_UNSEEN_TEMPLATE
            counts = window.counts
            counts[tid] = counts.get(tid, 0) + 1  # ``+= 1`` without Counter's Python-level ``__missing__``
            if tid not in window.templates:
                window.templates[tid] = template
                if not match.known:
                    window.unknown.add(tid)
                if self.max_samples is None or len(window.samples) < self.max_samples:
                    window.samples[tid] = line
        first_lines = window.first_lines
        if len(first_lines) < self.max_first_lines:
            first_lines.append(line)
        if origin:
            positions = window.positions
            lowest = positions.get(origin)
            if lowest is None or offset < lowest:
                positions[origin] = offset
        if self.track_offsets:
            if window.offsets is None:
                window.offsets = array("q")
            window.offsets.append(offset)

    def _deadline(self, window: Window) -> float:
        if window.late:
            return -math.inf
        if self.kind == "tumbling":
            return window.end
        return min(window.end + self.gap, window.start + self.max_length)

    def _schedule(self, slot: Hashable, window: Window) -> None:
        if self._session and not window.late:  # ``_deadline``, inlined for the common case
            cut = window.start + self.max_length
            deadline = cut if cut < (due := window.end + self.gap) else due
        else:
            deadline = self._deadline(window)
        if self._scheduled.get(slot) == deadline:
            return
        self._scheduled[slot] = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, slot))

    def _close_due(self) -> list[Window]:
        closed: list[Window] = []
        heap, open_slots, mark, tumbling = self._heap, self._open, self.watermark, not self._session
        gap, max_length, touched = self.gap, self.max_length, self._touched
        while heap and heap[0][0] <= mark:
            _, _, slot = heapq.heappop(heap)
            window = open_slots.get(slot)
            if window is None:
                continue
            if window.late:  # ``_deadline``, inlined
                deadline = -math.inf
            elif tumbling:
                deadline = window.end
            else:
                cut = window.start + max_length
                deadline = cut if cut < (due := window.end + gap) else due
            if deadline > mark:
                continue  # a later entry for this window is still in the heap
            del open_slots[slot]
            del self._scheduled[slot]
            if touched:  # empty unless records came with a processing time (the worker's)
                touched.pop(slot, None)
            closed.append(window)
        self.stats.windows_closed += len(closed)
        return closed


def make_windower(kind: str, session_gap: float, max_session: float, window_size: float,
                  allowed_lateness: float, track_offsets: bool = False) -> Windower:
    return Windower(kind=kind, gap=session_gap, max_length=max_session, size=window_size,
                    allowed_lateness=allowed_lateness, track_offsets=track_offsets)
