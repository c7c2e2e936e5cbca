"""A time range of a Kafka topic as training input: ``logwarden train --source kafka:TOPIC --since T --until T``.

The reader never joins a consumer group and never commits: it uses manual assignment of every partition
(``group_id=None``), finds where the range starts in each partition with ``offsets_for_times(since)`` and seeks
there. Records whose timestamp falls outside ``[since, until)`` are skipped and counted: producers' timestamps
need not grow with offsets, and one record stamped 2099 must not end the range early, so the end is *not*
``offsets_for_times(until)`` (the earliest offset at or after ``until``, which such a record would be). A
partition is read up to its end offset when reading starts (records produced meanwhile are not read, so the
read ends) or until :data:`STOP_AFTER` consecutive records lie at or after ``until``. ``offsets_for_times(until)``
only estimates the progress bar's total.

Partitions are merged by record timestamp (then partition, offset), so the one training chain sees the lines
in about the order they were produced, as the worker's per-partition chains do; with records keyed by entity
each entity's lines keep their order. Memory is bounded: a partition whose buffer holds
:data:`BUFFER_RECORDS` records is paused until the merge has drained it.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.errors import LogwardenError
from pipeline.records import RawLine
from pipeline.sources.kafka import client_config, raw_line

log = logging.getLogger(__name__)
BUFFER_RECORDS = 5_000
POLL_MS = 500
STOP_AFTER = 1_000  # consecutive records at or after --until that end a partition's read
IDLE_POLLS = 240  # consecutive empty polls (x POLL_MS) before giving up on a partition that should have data


@dataclass
class RangeStats:
    records: int = 0  # estimated records in the range (offsets_for_times; the progress total)
    read: int = 0
    outside: int = 0  # in the offset range, timestamp outside [since, until)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


class KafkaRange:
    """The records of ``topic`` with timestamps in ``[since, until)`` (epoch seconds; None: unbounded)."""

    def __init__(self, bootstrap_servers: str, topic: str, since: float | None, until: float | None,
                 max_line_bytes: int, consumer: Any = None) -> None:
        if since is not None and until is not None and since >= until:
            raise LogwardenError("--since must be before --until")
        self.topic = topic
        self.since_ms, self.until_ms = _ms(since), _ms(until)
        self.max_line_bytes = max_line_bytes
        self.stats = RangeStats()
        if consumer is None:
            try:
                consumer = KafkaConsumer(**client_config(
                    bootstrap_servers, group_id=None, enable_auto_commit=False, client_id="logwarden-train",
                    auto_offset_reset="earliest", max_poll_records=2000))
            except KafkaError as exc:
                raise LogwardenError(f"cannot connect to Kafka at {bootstrap_servers}: {exc}") from None
        self.consumer = consumer
        self.bounds, estimate = self._bounds()
        self.stats.records = sum(max(0, estimate[tp] - start) for tp, (start, _) in self.bounds.items())

    def _bounds(self) -> tuple[dict[TopicPartition, tuple[int, int]], dict[TopicPartition, int]]:
        """``(start, end offset now)`` per partition, and where the range probably ends (for progress)."""
        consumer = self.consumer
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            consumer.close()
            raise LogwardenError(f"Kafka topic {self.topic!r} does not exist or has no partitions")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        first = consumer.beginning_offsets(tps)
        last = consumer.end_offsets(tps)
        starts = dict(first)
        estimate = dict(last)
        if self.since_ms is not None:
            found = consumer.offsets_for_times({tp: self.since_ms for tp in tps})
            starts = {tp: (found[tp].offset if found.get(tp) is not None else last[tp]) for tp in tps}
        if self.until_ms is not None:
            found = consumer.offsets_for_times({tp: self.until_ms for tp in tps})
            estimate = {tp: (found[tp].offset if found.get(tp) is not None else last[tp]) for tp in tps}
        return {tp: (starts[tp], max(starts[tp], last[tp])) for tp in tps}, estimate

    def __iter__(self) -> Iterator[RawLine]:
        consumer = self.consumer
        try:
            active = {tp: end for tp, (start, end) in self.bounds.items() if end > start}
            if not active:
                return
            consumer.assign(list(active))
            for tp in active:
                consumer.seek(tp, self.bounds[tp][0])
            yield from self._merged(active)
        finally:
            consumer.close()

    def _merged(self, active: dict[TopicPartition, int]) -> Iterator[RawLine]:
        consumer = self.consumer
        buffers: dict[TopicPartition, deque[Any]] = {tp: deque() for tp in active}
        fetched_all: set[TopicPartition] = set()
        paused: set[TopicPartition] = set()
        beyond: dict[TopicPartition, int] = dict.fromkeys(active, 0)  # consecutive records at or after until
        idle = 0
        while buffers:
            # Emit while every partition still to be merged has a record buffered (or is done).
            heap = [(b[0].timestamp, tp.partition, b[0].offset, tp) for tp, b in buffers.items() if b]
            heapq.heapify(heap)
            while heap and all(buffers[tp] or tp in fetched_all for tp in buffers):
                _, _, _, tp = heapq.heappop(heap)
                record = buffers[tp].popleft()
                yield from self._emit(record)
                if buffers[tp]:
                    nxt = buffers[tp][0]
                    heapq.heappush(heap, (nxt.timestamp, tp.partition, nxt.offset, tp))
                elif tp in fetched_all:
                    del buffers[tp]
                if tp in paused and len(buffers.get(tp, ())) < BUFFER_RECORDS // 2:
                    consumer.resume(tp)
                    paused.discard(tp)
            for tp in [tp for tp, b in buffers.items() if not b and tp in fetched_all]:
                del buffers[tp]
            if not buffers:
                return
            batch = consumer.poll(timeout_ms=POLL_MS)
            idle = 0 if batch else idle + 1
            if idle > IDLE_POLLS:
                missing = sorted(f"{tp.topic}/{tp.partition}" for tp in buffers if tp not in fetched_all)
                raise LogwardenError(f"Kafka returned nothing for {idle * POLL_MS // 1000} s while reading "
                                     f"{', '.join(missing)}: the range's records are no longer there "
                                     "(retention?) or the broker is unreachable")
            for tp, records in batch.items():
                end = active[tp]
                for record in records:
                    if record.offset < end and tp not in fetched_all:
                        buffers[tp].append(record)
                        late = self.until_ms is not None and record.timestamp >= self.until_ms
                        beyond[tp] = beyond[tp] + 1 if late else 0
                        if beyond[tp] >= STOP_AFTER:  # well past the range: the rest of it is too
                            fetched_all.add(tp)
                            consumer.pause(tp)
                if tp in fetched_all:
                    continue
                if records and records[-1].offset >= end - 1:
                    fetched_all.add(tp)
                    consumer.pause(tp)
                elif len(buffers[tp]) >= BUFFER_RECORDS:
                    consumer.pause(tp)
                    paused.add(tp)
            for tp in buffers:
                if tp not in fetched_all and consumer.position(tp) >= active[tp]:
                    fetched_all.add(tp)

    def _emit(self, record: Any) -> Iterator[RawLine]:
        ts = record.timestamp
        if ts is not None and ts >= 0 and ((self.since_ms is not None and ts < self.since_ms)
                                           or (self.until_ms is not None and ts >= self.until_ms)):
            self.stats.outside += 1
            return
        self.stats.read += 1
        yield raw_line(record, self.max_line_bytes)
