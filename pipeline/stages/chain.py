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

Records flagged with a reason in :data:`NOT_WINDOWED` (``not_json``: its time and fields are unknown) are
decoded and returned but not windowed; the caller counts or dead-letters them.

:meth:`RecordChain.add` returns a :class:`Step`: the decoded record, the windows this record closed (each
knows its smallest offset per origin in ``Window.positions``) and what happened to it. Stages return values;
nothing is appended to lists handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.config import PipelineSettings
from pipeline.records import LogRecord, RawLine, TemplateMatch, Window
from pipeline.stages.decoding import Decoder
from pipeline.stages.entities import EntityExtractor
from pipeline.stages.windows import EntityKey, EventClock, Windower, make_windower

NOT_WINDOWED = frozenset({"not_json"})

Tagger = Callable[[str], TemplateMatch]


class Replay(Protocol):
    """What a stream's commit bookkeeping sees of each record (implemented by the worker's ledger)."""

    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        """Called before a windowed record, with the watermark and event clock in force before it."""

    def should_skip(self, key: EntityKey, offset: int) -> bool:
        """True when this record's part for ``key`` is already in a flushed window."""

    def done(self, offset: int) -> None:
        """Called after every record, windowed or not."""


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
        return not self.windowed and not NOT_WINDOWED.intersection(self.record.flags)


class RecordChain:
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
    ) -> None:
        """``watermark``/``clock`` (with ``origin``) resume a stream where a saved state left it."""
        self.tag = tag
        self.replay = replay
        self.decoder = Decoder(settings.log_format, settings.time_format, json_mode=json_mode,
                               tz=settings.zone_info, default_year=settings.year)
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

    def add(self, raw: RawLine) -> Step:
        """Decode and window one raw line (``raw.offset`` is its line number or Kafka offset)."""
        record = self.decoder.decode(raw)
        step = Step(record)
        replay = self.replay
        offset = raw.offset
        if NOT_WINDOWED.intersection(record.flags):
            if replay is not None:
                replay.done(offset)
            return step
        windower = self.windower
        if replay is not None:
            replay.before(offset, windower.watermark, self.last_time)
        ts = self.clock.event_time(record.timestamp, record.origin, record.arrival)
        if record.timestamp is not None and ts == record.timestamp:
            self.last_time = ts
        keys = self.extractor.entities(record)
        match: TemplateMatch | None = None
        line = record.raw or record.message
        for key in keys:
            if replay is not None and replay.should_skip(key, offset):
                step.skipped += 1
                closed = windower.advance(ts)
            else:
                if match is None:
                    match = self.tag(record.message)
                closed = windower.add(key, ts, match, line, record.origin, offset)
            if closed:
                step.closed.extend(closed)
        step.windowed = bool(keys)
        if replay is not None:
            replay.done(offset)
        return step

    def flush(self) -> list[Window]:
        """Close every open window: end of input."""
        return self.windower.flush()

    @property
    def late_records(self) -> int:
        return self.windower.stats.late_records
