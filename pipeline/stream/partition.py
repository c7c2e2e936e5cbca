"""The stages of ``logwarden detect`` for one Kafka partition: decode, tag, find entities, window.

One instance per assigned partition, so each partition has its own decoder (it learns the stream's time
layout), event clock and windower (watermark). With records keyed by entity, all of an entity's records
are in one partition, in order, and its windows come out exactly as ``detect`` makes them from a file.

Replays after a restart or a rebalance follow the :class:`~pipeline.commits.PartitionLedger`: a record's
part for an entity that is already in a flushed window is skipped (the watermark still advances), and
the windower starts from the watermark and event clock saved with the committed offset.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from pipeline.config import PipelineSettings
from pipeline.records import LogRecord, RawLine, TemplateMatch, Window
from pipeline.sources.kafka import origin_of, raw_line
from pipeline.stages.decoding import Decoder
from pipeline.stages.entities import EntityExtractor
from pipeline.stages.windows import EventClock, make_windower
from pipeline.stream.dead_letters import NOT_WINDOWED, DeadLetters, record_reasons
from pipeline.stream.ledger import PartitionLedger, SavedState
from pipeline.stream.metrics import WorkerMetrics

JSON_MODES = {"auto": "auto", "json": "strict", "text": "off"}


@dataclass
class Outcome:
    """What one record did: the decoded record, windows it closed, whether it was windowed at all."""

    record: LogRecord
    closed: list[Window] = field(default_factory=list)
    windowed: bool = False
    skipped: int = 0


class PartitionStream:
    def __init__(
        self,
        tp: TopicPartition,
        settings: PipelineSettings,
        tag: Callable[[str], TemplateMatch],
        ledger: PartitionLedger,
        state: SavedState | None = None,
        input_format: str = "auto",
        not_windowed: frozenset[str] = NOT_WINDOWED,
    ) -> None:
        self.tp = tp
        self.origin = origin_of(tp)
        self.tag = tag
        self.ledger = ledger
        self.not_windowed = not_windowed
        self.max_line_bytes = settings.max_line_bytes
        self.decoder = Decoder(settings.log_format, settings.time_format, json_mode=JSON_MODES[input_format])
        self.extractor = EntityExtractor(settings.entity_regex, settings.entity_field)
        # Track every record's offset: the replay state must skip exactly the records of flushed windows.
        self.windower = make_windower(settings.window, settings.session_gap, settings.max_session,
                                      settings.window_size, settings.allowed_lateness, track_offsets=True)
        self.clock = EventClock()
        self.last_time: float | None = None
        if state is not None:
            if state.watermark is not None:
                self.windower.watermark = state.watermark
            if state.clock is not None:
                self.clock.event_time(state.clock, self.origin, 0.0)
                self.last_time = state.clock

    def add(self, raw: RawLine) -> Outcome:
        """Decode and window one record (``raw.offset`` is its Kafka offset)."""
        record = self.decoder.decode(raw)
        outcome = Outcome(record)
        offset = raw.offset
        ledger = self.ledger
        if self.not_windowed.intersection(record.flags):
            ledger.done(offset)
            return outcome
        windower = self.windower
        ledger.before(offset, windower.watermark, self.last_time)
        ts = self.clock.event_time(record.timestamp, self.origin, raw.arrival)
        if record.timestamp is not None and ts == record.timestamp:
            self.last_time = ts
        keys = self.extractor.entities(record)
        match: TemplateMatch | None = None
        line = record.raw or record.message
        for key in keys:
            if ledger.should_skip(key, offset):
                outcome.skipped += 1
                closed = windower.advance(ts)
            else:
                if match is None:
                    match = self.tag(record.message)
                closed = windower.add(key, ts, match, line, self.origin, offset)
            if closed:
                self._closed(closed)
                outcome.closed.extend(closed)
        outcome.windowed = bool(keys)
        ledger.done(offset)
        return outcome

    def read(self, records: Sequence[Any], metrics: WorkerMetrics, dead_letters: DeadLetters,
             closed: list[Window], sources: list[tuple[str, int, int]]) -> None:
        """Window a batch of consumed records; closed windows (and their source) are appended to the lists.

        Counts records, decoder flags, records without entity and replay skips; dead-letters what must be
        (see :mod:`pipeline.stream.dead_letters`).
        """
        tp = self.tp
        metrics.records.labels(tp.topic).inc(len(records))
        no_entity = skipped = 0
        max_bytes = int(self.max_line_bytes)
        for record in records:
            raw = raw_line(record, max_bytes)
            outcome = self.add(raw)
            flags = outcome.record.flags
            if flags:
                for flag in flags:
                    metrics.decode_errors.labels(flag).inc()
                reasons = record_reasons(flags)
                if reasons:
                    value = raw.data if raw.truncated else (record.value or b"")
                    extra = {"original.bytes": str(len(record.value or b""))} if raw.truncated else None
                    dead_letters.send(tp.topic, tp.partition, record.offset, value, reasons, key=record.key,
                                      detail=str(outcome.record.fields.get("error.message", "")), extra=extra)
            if not outcome.windowed and not self.not_windowed.intersection(flags):
                no_entity += 1
            skipped += outcome.skipped
            for window in outcome.closed:
                closed.append(window)
                sources.append((tp.topic, tp.partition, window.positions.get(self.origin, record.offset)))
        if no_entity:
            metrics.no_entity.inc(no_entity)
        if skipped:
            metrics.replay_skipped.inc(skipped)

    def flush(self) -> list[Window]:
        """Close every open window: end of input (``--exit-when-idle``)."""
        closed = self.windower.flush()
        self._closed(closed)
        return closed

    def _closed(self, windows: list[Window]) -> None:
        for window in windows:
            self.ledger.closed(window, window.offsets if window.offsets is not None else array("q"))

    @property
    def open_count(self) -> int:
        return self.windower.open_count

    def checkpoint(self) -> tuple[int, SavedState] | None:
        return self.ledger.checkpoint(self.windower.open_windows(), self.windower.watermark, self.last_time)
