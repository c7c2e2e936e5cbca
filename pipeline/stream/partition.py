"""One assigned Kafka partition: the shared record chain, plus the partition's commit bookkeeping.

The per-record work (decode, event time, entity, template, window) is :class:`pipeline.stages.chain.RecordChain`,
the same object ``logwarden detect`` runs over a file: one per partition, so each partition has its own decoder
(it learns the stream's time layout), event clock and windower (watermark). With records keyed by entity, all
of an entity's records are in one partition, in order, and its windows come out exactly as ``detect`` makes
them from a file.

What is added here is the worker's side: the :class:`~pipeline.stream.ledger.PartitionLedger` (the chain's
``replay`` hook: on a replay after a restart or rebalance, a record's part for an entity already in a flushed
window is skipped, and the chain starts from the watermark and event clock saved with the committed offset),
metrics, and dead letters for records that must be (see :mod:`pipeline.stream.dead_letters`).

**A window counts as flushed only once the sink accepted it.** Windows closed by :meth:`PartitionStream.read`
stay *pending*, and hold their records' offsets exactly like open windows do, until the worker has handed
them to the output and calls :meth:`accept`. An exception between closing and scoring therefore can never let a
checkpoint commit past them.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Sequence
from typing import Any

from kafka import TopicPartition

from pipeline.config import PipelineSettings
from pipeline.records import RawLine, Source, Window
from pipeline.sources.kafka import origin_of, raw_line
from pipeline.stages.chain import RecordChain, Step, Tagger
from pipeline.stages.windows import Windower
from pipeline.stream.dead_letters import DeadLetters, record_reasons
from pipeline.stream.ledger import PartitionLedger, SavedState
from pipeline.stream.metrics import WorkerMetrics

JSON_MODES = {"auto": "auto", "json": "strict", "text": "off"}

Closed = tuple[list[Window], list[Source]]


class PartitionStream:
    def __init__(
        self,
        tp: TopicPartition,
        settings: PipelineSettings,
        tag: Tagger,
        ledger: PartitionLedger,
        state: SavedState | None = None,
        input_format: str = "auto",
    ) -> None:
        self.tp = tp
        self.origin = origin_of(tp)
        self.ledger = ledger
        self.max_line_bytes = settings.max_line_bytes
        # Track every record's offset: the replay state must skip exactly the records of flushed windows.
        self._pending: list[Window] = []
        self.chain = RecordChain(settings, tag, json_mode=JSON_MODES[input_format], replay=ledger,
                                 track_offsets=True, origin=self.origin,
                                 watermark=state.watermark if state is not None else None,
                                 clock=state.clock if state is not None else None)

    @property
    def windower(self) -> Windower:
        return self.chain.windower

    def add(self, raw: RawLine, accept: bool = True) -> Step:
        """Decode and window one record (``raw.offset`` is its Kafka offset).

        ``accept=False``: the windows it closes stay pending until :meth:`accept`.
        """
        step = self.chain.add(raw, time.monotonic())
        if accept:
            self._closed(step.closed)
        else:
            self._pending.extend(step.closed)
        return step

    def accept(self) -> None:
        """Every pending window reached the output (its anomalies are in the sink, to be flushed)."""
        pending, self._pending = self._pending, []
        self._closed(pending)

    def read(self, records: Sequence[Any], metrics: WorkerMetrics, dead_letters: DeadLetters) -> Closed:
        """Window a batch of consumed records; returns the windows they closed and where each was read.

        Counts records, decoder flags, records without entity and replay skips; dead-letters what must be.
        """
        tp = self.tp
        metrics.records.labels(tp.topic).inc(len(records))
        no_entity = skipped = 0
        max_bytes = int(self.max_line_bytes)
        windows: list[Window] = []
        sources: list[Source] = []
        for record in records:
            raw = raw_line(record, max_bytes)
            step = self.add(raw, accept=False)
            flags = step.record.flags
            if flags:
                for flag in flags:
                    metrics.decode_errors.labels(flag).inc()
                reasons = record_reasons(flags)
                if reasons:
                    value = raw.data if raw.truncated else (record.value or b"")
                    extra = {"original.bytes": str(len(record.value or b""))} if raw.truncated else None
                    dead_letters.send(tp.topic, tp.partition, record.offset, value, reasons, key=record.key,
                                      detail=str(step.record.fields.get("error.message", "")), extra=extra)
            no_entity += step.no_entity
            skipped += step.skipped
            for window in step.closed:
                windows.append(window)
                sources.append(self.source_of(window, record.offset))
        if no_entity:
            metrics.no_entity.inc(no_entity)
        if skipped:
            metrics.replay_skipped.inc(skipped)
        return windows, sources

    def source_of(self, window: Window, default: int = -1) -> Source:
        return self.tp.topic, self.tp.partition, window.positions.get(self.origin, default)

    def close_idle(self, now: float, idle: float) -> Closed:
        """Close windows idle for ``idle`` seconds of processing time; pending until :meth:`accept`."""
        closed = self.chain.close_idle(now, idle)
        self._pending.extend(closed)
        return closed, [self.source_of(window) for window in closed]

    def flush(self) -> list[Window]:
        """Close every open window: end of input (``--exit-when-idle``); pending until :meth:`accept`."""
        closed = self.chain.flush()
        self._pending.extend(closed)
        return closed

    def _closed(self, windows: list[Window]) -> None:
        for window in windows:
            self.ledger.closed(window, window.offsets if window.offsets is not None else array("q"))

    @property
    def open_count(self) -> int:
        return self.chain.windower.open_count

    def checkpoint(self) -> tuple[int, SavedState] | None:
        windower = self.chain.windower
        holding = [*windower.open_windows(), *self._pending]  # pending windows are not flushed yet
        return self.ledger.checkpoint(holding, windower.watermark, self.chain.last_time)
