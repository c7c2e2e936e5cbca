"""THE per-record chain: decode -> event time -> entity -> template -> window, written once.

``logwarden train``/``detect``/``parse`` (:mod:`pipeline.embedded`) and every partition of a streaming
worker (:mod:`pipeline.stream.partition`) push their raw lines through a :class:`RecordChain`. That the worker
finds exactly the windows ``detect`` finds on the same lines is the product's central promise, and it holds
because there is no second implementation of these steps to drift apart.

One chain per stream: a set of files, or one Kafka partition. The chain owns the stream's decoder (it learns
the stream's time layout), event clock and windower (watermark). What differs between callers is passed in:

* ``tag``: message -> :class:`~pipeline.records.TemplateMatch` (training tags with a Drain cluster handle and
  maps handles to final ids at the end; detection and the worker match against a trained miner);
* ``json_mode`` of the decoder (a JSON topic is ``strict``);
* ``replay``: the worker's commit bookkeeping, which sees every record and may skip an entity's part of a
  record that is already in a flushed window (see :mod:`pipeline.stream.ledger`). Files have none.

**Event time** (the rule is the same for files and Kafka): a record's own timestamp when it is plausible;
otherwise the record is *untimed* and takes the last event time seen on its stream, else its arrival time
(:class:`~pipeline.stages.windows.EventClock`), without moving the watermark. A timestamp is implausible, and
counted as ``bad_timestamp``, when it lies outside what a date can hold (years 1-9999, finite) or more than
``max_clock_skew`` ahead of the record's arrival time (when it was read: its Kafka timestamp, or now for a
file or a Kafka record without a timestamp): a log line cannot come from the future, and one dated 2099 must
not push the watermark past every record after it. The default skew (one day) is larger than any time-zone
error (UTC+14), so a stream logged in local time without an offset is not rejected wholesale.

**Errors are data**: an exception raised by a stage for one record (a bug, or input no rule foresaw) does
not stop the stream. The record comes back flagged ``stage_error`` with the reason in
``fields['error.message']``, is not windowed, and the worker dead-letters it.

Records flagged with a reason in :data:`NOT_WINDOWED` (``not_json``: its time and fields are unknown) are
decoded and returned but not windowed; the caller counts or dead-letters them.

:meth:`RecordChain.add` returns a :class:`Step`: the decoded record, the windows this record closed (each
knows its smallest offset per origin in ``Window.positions``) and what happened to it. Stages return values;
nothing is appended to lists handed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.config import PipelineSettings
from pipeline.records import LogRecord, RawLine, TemplateMatch, Window
from pipeline.stages.decoding import Decoder
from pipeline.stages.entities import EntityExtractor
from pipeline.stages.formats import TEMPLATE_FIELD
from pipeline.stages.presets import layout_of
from pipeline.stages.templates import template_id
from pipeline.stages.windows import EntityKey, EventClock, Windower, make_windower

log = logging.getLogger(__name__)

NOT_WINDOWED = frozenset({"not_json", "stage_error"})
MIN_EVENT_TIME = -62135596800.0  # 0001-01-01T00:00:00Z
MAX_EVENT_TIME = 253402300799.0  # 9999-12-31T23:59:59Z

Tagger = Callable[[str], TemplateMatch]


class Replay(Protocol):
    """What a stream's commit bookkeeping sees of each record (implemented by the worker's ledger)."""

    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        """Called before a windowed record, with the watermark and event clock in force before it."""

    def should_skip(self, key: EntityKey, offset: int) -> bool:
        """True when this record's part for ``key`` is already in a flushed window."""

    def done(self, offset: int) -> None:
        """Called after every record, windowed or not, with the offset of its last line."""


class Tally(Protocol):
    """What :meth:`RecordChain.windows_of` counts per line (a job's stats)."""

    lines: int
    untimed: int
    no_entity: int


@dataclass(slots=True)
class Step:
    """What one record did: the decoded record, the windows it closed, whether it was windowed."""

    record: LogRecord
    closed: list[Window] = field(default_factory=list)
    windowed: bool = False
    skipped: int = 0

    @property
    def no_entity(self) -> bool:
        """Decoded and windowable, but no entity rule matched (counted, not windowed)."""
        return not self.windowed and NOT_WINDOWED.isdisjoint(self.record.flags)


def make_decoder(settings: PipelineSettings, json_mode: str = "auto") -> Decoder:
    """The stream's decoder: ``--log-format``, else the preset's layout or parser (``presets.layout_of``)."""
    layout = layout_of(settings.preset, settings.log_format)
    return Decoder(None, settings.time_format, json_mode=json_mode, tz=settings.zone_info,
                   default_year=settings.year, layout=layout)


class RecordChain:
    # A record of one entity skips the loop over entities (tests switch it off to compare with the loop).
    _one_key = True

    def __init__(
        self,
        settings: PipelineSettings,
        tag: Tagger,
        *,
        json_mode: str = "auto",
        replay: Replay | None = None,
        track_offsets: bool = False,
        watermark: float | None = None,
        clock: float | None = None,
        origin: str = "",
        known: Callable[[str], bool] | None = None,
    ) -> None:
        """``watermark``/``clock`` (with ``origin``) resume a stream where a saved state left it; a non-empty
        ``origin`` (a Kafka ``topic/partition``) is also written into every window as ``Window.stream``.
        ``known``: whether a template id made by a preset's parser (access logs) is in the model."""
        self.stream = origin
        self.tag = tag
        self.replay = replay
        self.max_clock_skew = settings.max_clock_skew
        self.stage_errors = 0
        self.decoder = make_decoder(settings, json_mode)
        self.known = known
        self.extractor = EntityExtractor(settings.entity_regex, settings.entity_field)
        self.windower: Windower = make_windower(settings.window, settings.session_gap, settings.max_session,
                                                settings.window_size, settings.allowed_lateness,
                                                track_offsets=track_offsets)
        self.clock = EventClock()
        # The last event time read from a record itself (not a fallback): saved with the replay state.
        self.last_time: float | None = None
        if watermark is not None:
            self.windower.watermark = watermark
        if clock is not None:
            self.clock.event_time(clock, origin, 0.0)
            self.last_time = clock

    def add(self, raw: RawLine, now: float | None = None) -> Step:
        """Decode and window one raw line (``raw.offset`` is its line number or Kafka offset).

        ``now``: processing time (monotonic seconds), for :meth:`close_idle`; None where idleness never matters.
        """
        replay = self.replay
        try:
            return self._add(raw, now)
        except Exception as exc:  # noqa: BLE001 - errors are data: one record never stops the stream
            return self._failed(raw, exc)
        finally:
            if replay is not None:
                replay.done(raw.last_offset)

    def _add(self, raw: RawLine, now: float | None) -> Step:
        record = self.decoder.decode(raw)
        if record.flags and not NOT_WINDOWED.isdisjoint(record.flags):
            return Step(record)
        replay = self.replay
        offset = raw.offset
        windower = self.windower
        if replay is not None:
            replay.before(offset, windower.watermark, self.last_time)
        stamp = record.timestamp
        timed = stamp is not None and self._plausible(record)
        ts = self.clock.event_time(stamp if timed else None, record.origin, record.arrival)
        if timed:
            self.last_time = ts
        keys = self.extractor.entities(record)
        line = record.raw or record.message
        if len(keys) == 1 and self._one_key:
            # the common case (one entity, with or without replay bookkeeping): what the loop below does for a
            # single key, without it; the windower's list of closed windows is the step's
            key = keys[0]
            if replay is not None and replay.should_skip(key, offset):
                closed = windower.advance(ts) if timed else []
                return Step(record, self._stamped(closed) if closed else closed, True, 1)
            closed = windower.add(key, ts, self._template(record), line, record.origin, offset, timed, now)
            return Step(record, self._stamped(closed) if closed else closed, True)
        step = Step(record)
        match: TemplateMatch | None = None
        for key in keys:
            if replay is not None and replay.should_skip(key, offset):
                step.skipped += 1
                closed = windower.advance(ts) if timed else []
            else:
                if match is None:
                    match = self._template(record)
                closed = windower.add(key, ts, match, line, record.origin, offset, advance=timed, now=now)
            if closed:
                step.closed.extend(self._stamped(closed))
        step.windowed = bool(keys)
        return step

    def windows_of(self, lines: Iterable[RawLine], tally: Tally, check: Callable[[], object] | None = None,
                   check_at: int = 0) -> Iterator[list[Window]]:
        """:meth:`add` of every line of a file job (no ``now``), yielding each non-empty list of windows a line closed,
        with the job's counts kept in ``tally``: ``lines``; ``untimed``, a windowable record without a timestamp;
        ``no_entity``, one no entity rule matched. ``check()`` is called once ``tally.lines`` reaches ``check_at``,
        after that line's counts and before its windows are yielded.

        Every line goes through :meth:`add`, the one implementation the worker runs too (an inlined copy of its
        steps for file jobs was faster, and was a second chain that ``detect`` and the worker could disagree by).
        ``tests/pipeline/stages/test_chain_windows_of.py`` checks the counts and windows against that loop.
        """
        for raw in lines:
            step = self.add(raw)
            tally.lines += 1
            record = step.record
            if record.timestamp is None and NOT_WINDOWED.isdisjoint(record.flags):
                tally.untimed += 1
            if tally.lines == check_at and check is not None:
                check()
            if step.no_entity:
                tally.no_entity += 1
            if step.closed:
                yield step.closed

    def _template(self, record: LogRecord) -> TemplateMatch:
        """The miner's template, or the one the preset's parser made (access logs: method, path, status class)."""
        fixed = record.fields.get(TEMPLATE_FIELD)
        if fixed is None:
            return self.tag(record.message)
        tid = template_id(fixed)
        return TemplateMatch(tid, fixed, known=self.known(tid) if self.known is not None else True)

    def _stamped(self, windows: list[Window]) -> list[Window]:
        if self.stream:
            for window in windows:
                window.stream = self.stream
        return windows

    def _plausible(self, record: LogRecord) -> bool:
        """False (and the record flagged ``bad_timestamp``) for a time no real log line can carry."""
        ts = record.timestamp
        assert ts is not None
        # no arrival time (a Kafka record without a timestamp): the clock bounds the future instead, so the check
        # is never off; only a time within the skew of now could be judged differently on a later replay
        arrival = record.arrival if record.arrival > 0 else time.time()
        if MIN_EVENT_TIME <= ts <= MAX_EVENT_TIME and ts <= arrival + self.max_clock_skew:  # False for nan and inf
            return True
        if "bad_timestamp" not in record.flags:
            record.flags = (*record.flags, "bad_timestamp")
            self.decoder.stats.bad_timestamp += 1
        return False

    def _failed(self, raw: RawLine, exc: Exception) -> Step:
        self.stage_errors += 1
        self.decoder.stats.stage_error += 1
        reason = f"{type(exc).__name__}: {exc}"
        if self.stage_errors <= 10:
            log.warning("%s@%d: a stage failed on this record, which is not windowed (%s)", raw.origin,
                        raw.offset, reason, exc_info=self.stage_errors == 1)
        text = raw.data.decode("utf-8", "replace")
        record = LogRecord(text, None, {"error.message": reason}, raw.origin, raw.offset, raw.arrival,
                           ("stage_error",), text)
        return Step(record)

    def close_idle(self, now: float, idle: float) -> list[Window]:
        """Close windows that got no record for ``idle`` seconds of processing time (see ``windows``)."""
        return self._stamped(self.windower.close_idle(now, idle))

    def flush(self) -> list[Window]:
        """Close every open window: end of input."""
        return self._stamped(self.windower.flush())

    @property
    def late_records(self) -> int:
        return self.windower.stats.late_records
