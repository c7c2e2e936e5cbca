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

**Multi-line records** (:mod:`pipeline.stages.multiline`, the joiner ``detect`` uses on files) are joined here
per Kafka key before the chain: a record's lines may interleave with other keys' records in the partition. A
record is held until its key sends the next start line, a bound is reached or ``--multiline-timeout`` passes
(:meth:`PartitionStream.expire`, from the worker's idle check); records reach the chain in the order of their
first offsets, so the ledger's offset arithmetic holds. **A held line's offset is never committed past**: the
checkpoint commits at most the smallest offset the joiner holds, so a crash loses no held record (it is
rebuilt from its lines). The price of at-least-once: after a crash, a continuation line that lies above the
committed offset and belonged to a record already processed is read again as a record of its own.

**A window counts as flushed only once the sink accepted it.** Windows closed by :meth:`PartitionStream.read`
stay *pending*, and hold their records' offsets exactly like open windows do, until the worker has handed
them to the output and calls :meth:`accept`. An exception between closing and scoring therefore can never let a
checkpoint commit past them.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import TopicPartition

from pipeline.config import PipelineSettings
from pipeline.records import RawLine, Source, Window
from pipeline.sources.kafka import origin_of, raw_line, raw_lines
from pipeline.stages import presets
from pipeline.stages.assembly import ASSEMBLERS, Assembler
from pipeline.stages.chain import RecordChain, Step, Tagger
from pipeline.stages.multiline import joiner_for
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
        # A JSON topic (--format json) has one record per message: nothing to join, nothing to hold.
        self.joiner = joiner_for(settings, self.chain.decoder.starts_record) if input_format != "json" else None
        # A preset's split-line assembly (CRI P/F, Docker pieces), per Kafka key and stream, before joining.
        kind = presets.get(settings.preset).assembly if settings.preset else None
        self.assembler: Assembler | None = ASSEMBLERS[kind](int(settings.max_line_bytes)) if kind else None
        self.multiline_timeout = float(settings.multiline_timeout)
        self._sizes: dict[int, int] = {}  # original bytes of truncated records still held by the joiner

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
        metrics.records.labels(self.tp.topic).inc(len(records))
        max_bytes = int(self.max_line_bytes)
        now = time.monotonic()
        if self.joiner is None and self.assembler is None:
            raws = raw_lines(records, max_bytes, self.origin)
            return self._handle(zip(raws, [record.value or b"" for record in records], strict=True),
                                metrics, dead_letters)
        ready: list[tuple[RawLine, bytes]] = []
        for record in records:
            raw = raw_line(record, max_bytes)
            if raw.truncated:
                self._sizes[raw.offset] = len(record.value or b"")
            ready.extend((done, done.data) for done in self._join(self._assemble(raw, now), now))
        ready.extend((done, done.data) for done in self._expired(now))
        return self._handle(ready, metrics, dead_letters)

    def _assemble(self, raw: RawLine, now: float) -> list[RawLine]:
        return self.assembler.push(raw, now) if self.assembler is not None else [raw]

    def _join(self, lines: list[RawLine], now: float) -> list[RawLine]:
        joiner = self.joiner
        if joiner is None:
            return lines
        out: list[RawLine] = []
        for line in lines:
            out.extend(joiner.push(line, now))
        return out

    def _expired(self, now: float) -> list[RawLine]:
        """What the timeout hands on: pieces whose end never came, then records whose key went quiet."""
        timeout = self.multiline_timeout
        out: list[RawLine] = []
        if self.assembler is not None and self.assembler.holding:
            out.extend(self._join(self.assembler.expire(now, timeout), now))
        if self.joiner is not None and self.joiner.holding:
            out.extend(self.joiner.expire(now, timeout))
        return out

    def expire(self, now: float, metrics: WorkerMetrics, dead_letters: DeadLetters) -> Closed:
        """Hand on the multi-line records (and split lines) whose key sent nothing for ``--multiline-timeout``."""
        done = self._expired(now)
        if not done:
            return [], []
        return self._handle([(raw, raw.data) for raw in done], metrics, dead_letters)

    def _handle(self, ready: Iterable[tuple[RawLine, bytes]], metrics: WorkerMetrics,
                dead_letters: DeadLetters) -> Closed:
        """Window complete records (``(raw, its bytes as read)``); count, dead-letter what must be."""
        tp = self.tp
        no_entity = skipped = joined = lines = 0
        windows: list[Window] = []
        sources: list[Source] = []
        add, pending, monotonic = self.chain.add, self._pending, time.monotonic  # self.add(raw, accept=False)
        for raw, value in ready:
            step = add(raw, monotonic())
            closed = step.closed
            if closed:
                pending.extend(closed)
                for window in closed:
                    windows.append(window)
                    sources.append(self.source_of(window, raw.offset))
            if raw.lines > 1:
                joined += 1
                lines += raw.lines
            flags = step.record.flags
            if flags:
                for flag in flags:
                    metrics.decode_errors.labels(flag).inc()
                reasons = record_reasons(flags)
                if reasons:
                    size = self._sizes.pop(raw.offset, None) if raw.truncated else None
                    if raw.truncated and size is None and raw.lines == 1:
                        size = len(value)
                    data = raw.data if raw.truncated else value
                    extra = {"original.bytes": str(size)} if raw.truncated and size is not None else None
                    dead_letters.send(tp.topic, tp.partition, raw.offset, data, reasons, key=raw.key,
                                      detail=str(step.record.fields.get("error.message", "")), extra=extra)
            if raw.truncated:
                self._sizes.pop(raw.offset, None)
            if not step.windowed:
                no_entity += step.no_entity
            skipped += step.skipped
        if no_entity:
            metrics.no_entity.inc(no_entity)
        if skipped:
            metrics.replay_skipped.inc(skipped)
        if joined:
            metrics.multiline_records.inc(joined)
            metrics.multiline_lines.inc(lines)
        return windows, sources

    def source_of(self, window: Window, default: int = -1) -> Source:
        return self.tp.topic, self.tp.partition, window.positions.get(self.origin, default)

    def close_idle(self, now: float, idle: float) -> Closed:
        """Close windows idle for ``idle`` seconds of processing time; pending until :meth:`accept`."""
        closed = self.chain.close_idle(now, idle)
        self._pending.extend(closed)
        return closed, [self.source_of(window) for window in closed]

    def flush(self, metrics: WorkerMetrics | None = None, dead_letters: DeadLetters | None = None) -> list[Window]:
        """Hand on every held multi-line record, close every open window: end of input (``--exit-when-idle``);
        pending until :meth:`accept`. Without ``metrics``/``dead_letters`` held records are windowed uncounted."""
        closed: list[Window] = []
        rest = self._join(self.assembler.flush(), 0.0) if self.assembler is not None else []
        if self.joiner is not None:
            rest.extend(self.joiner.flush())
        if rest:
            held = [(raw, raw.data) for raw in rest]
            if metrics is not None and dead_letters is not None:
                closed.extend(self._handle(held, metrics, dead_letters)[0])
            else:
                for raw, _ in held:
                    closed.extend(self.add(raw, accept=False).closed)
        final = self.chain.flush()  # the held records' windows are pending already (add(accept=False))
        self._pending.extend(final)
        return closed + final

    def _closed(self, windows: list[Window]) -> None:
        for window in windows:
            self.ledger.closed(window, window.offsets if window.offsets is not None else array("q"))

    @property
    def open_count(self) -> int:
        return self.chain.windower.open_count

    def checkpoint(self) -> tuple[int, SavedState] | None:
        windower = self.chain.windower
        holding = [*windower.open_windows(), *self._pending]  # pending windows are not flushed yet
        # Lines read but not yet windowed: held by the assembler or the joiner (each keeps offsets in order).
        floors = [stage.held_offset() for stage in (self.assembler, self.joiner) if stage is not None]
        held = min((f for f in floors if f is not None), default=None)
        return self.ledger.checkpoint(holding, windower.watermark, self.chain.last_time, held=held)
