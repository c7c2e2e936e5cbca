"""The Kafka time-range reader over a scripted consumer: range bounds from offsets_for_times, partitions merged
by timestamp, records outside the range skipped and counted, a full buffer paused, nothing committed."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest
from kafka import TopicPartition

from pipeline.errors import LogwardenError
from pipeline.sources import kafka_range
from pipeline.sources.kafka_range import KafkaRange
from tests.fakes import consumer_record

Found = namedtuple("Found", "offset timestamp")


class ScriptedConsumer:
    """Partitions of ``(timestamp_ms, value)`` records; polls hand out a few records per partition."""

    def __init__(self, parts: dict[int, list[tuple[int, bytes]]], per_poll: int = 2) -> None:
        self.parts = {TopicPartition("logs", p): records for p, records in parts.items()}
        self.per_poll = per_poll
        self.positions: dict[TopicPartition, int] = {}
        self.paused_now: set[TopicPartition] = set()
        self.ever_paused: set[TopicPartition] = set()
        self.closed = False
        self.commits = 0

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {tp.partition for tp in self.parts} if topic == "logs" else None

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.parts[tp]) for tp in tps}

    def offsets_for_times(self, query: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        found = {}
        for tp, ms in query.items():
            hit = next((i for i, (ts, _) in enumerate(self.parts[tp]) if ts >= ms), None)
            found[tp] = None if hit is None else Found(hit, self.parts[tp][hit][0])
        return found

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_now.update(tps)
        self.ever_paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_now.difference_update(tps)

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        batch = {}
        for tp in self.assigned:
            if tp in self.paused_now:
                continue
            start = self.positions[tp]
            records = self.parts[tp][start: start + self.per_poll]
            if records:
                batch[tp] = [consumer_record(tp, start + i, value, timestamp=ts)
                             for i, (ts, value) in enumerate(records)]
                self.positions[tp] = start + len(records)
        return batch

    def commit(self, *_: Any) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closed = True


def _range(consumer: ScriptedConsumer, since: float | None = None, until: float | None = None) -> KafkaRange:
    return KafkaRange("unused:9092", "logs", since, until, 65536, consumer=consumer)


def test_partitions_are_merged_by_timestamp_within_the_range() -> None:
    consumer = ScriptedConsumer({
        0: [(1000, b"a0"), (3000, b"a1"), (5000, b"a2"), (9000, b"a3")],
        1: [(2000, b"b0"), (4000, b"b1"), (99_000_000, b"b2-2099ish"), (6000, b"b3"), (8000, b"b4")],
        2: [],
    })
    source = _range(consumer, since=2.0, until=8.0)
    assert source.bounds[TopicPartition("logs", 0)] == (1, 4)  # from the first record at >= 2000
    # The far-future record does not end the range: b3 after it is still in it.
    assert source.bounds[TopicPartition("logs", 1)] == (0, 5)
    lines = [line.data for line in source]
    assert lines == [b"b0", b"a1", b"b1", b"a2", b"b3"]  # 8000 and later, and the far future one, are out
    assert source.stats.read == 5 and source.stats.outside == 3
    assert source.stats.records == 2 + 2  # the estimate stops at the first record stamped at or after until


def test_a_partition_stops_once_it_is_well_past_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_range, "STOP_AFTER", 3)
    consumer = ScriptedConsumer({0: [(1000, b"in"), *((9000 + i, b"after") for i in range(50))]}, per_poll=2)
    source = _range(consumer, until=5.0)
    assert [line.data for line in source] == [b"in"]
    assert consumer.positions[TopicPartition("logs", 0)] < 10  # did not read the other 40 records
    assert consumer.closed and consumer.commits == 0


def test_a_partition_that_runs_ahead_is_paused_not_buffered_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_range, "BUFFER_RECORDS", 4)
    consumer = ScriptedConsumer({0: [(i * 10, b"x%d" % i) for i in range(40)], 1: [(5000, b"late")]}, per_poll=3)
    consumer.per_poll = 3
    lines = [line.data for line in _range(consumer)]
    assert lines[-1] == b"late" and len(lines) == 41


def test_an_unknown_topic_and_an_inverted_range_are_one_line() -> None:
    with pytest.raises(LogwardenError, match="'nope' does not exist"):
        KafkaRange("unused:9092", "nope", None, None, 65536, consumer=ScriptedConsumer({0: []}))
    with pytest.raises(LogwardenError, match="--since must be before --until"):
        _range(ScriptedConsumer({0: []}), since=5.0, until=1.0)
    assert list(_range(ScriptedConsumer({0: [(1000, b"a")]}), since=50.0)) == []  # nothing in the range
