"""Replay state too large for commit metadata round-trips through the compacted state topic.

Against the real broker: a state of 50,000 entities (about 2 MB of JSON, more than the producer's 1 MiB
request cap and the broker's default ``max.message.bytes``) goes through the full commit path
(:meth:`Checkpoint.commit`: state write, then the commit pointing at it) and comes back whole with
:func:`load_start`; a commit that points at chunks which are not all there falls back to a cold start.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import ConfigResource

from pipeline.sources.kafka import make_producer
from pipeline.stream.checkpoint import Checkpoint
from pipeline.stream.ledger import SavedState, inline_metadata, parse_metadata
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.state_topic import StateTopic, load_start
from tests.integration.worker_support import Cleanup, cleanup  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

ENTITIES = 50_000


class SinkUp:
    """An output (or dead letters) that always flushes; takes the timeout a revocation passes."""

    pending = 0  # nothing buffered (what the checkpoint reads before its flush)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class NoDeadLetters:
    def flush(self) -> None:
        return None


class FixedPoint:
    def __init__(self, offset: int, state: SavedState) -> None:
        self.point = (offset, state)

    def checkpoint(self) -> tuple[int, SavedState]:
        return self.point


def many_entities(offset: int, count: int) -> SavedState:
    """Entities open since the oldest window: HDFS-like block ids, each flushed up to some later offset."""
    return SavedState(offset, 1226262918.0, 1226262978.0,
                      {("block", f"blk_-{7_000_000_000_000_000_000 + i * 7919}"): offset + 1 + i * 3
                       for i in range(count)},
                      {("block", "blk_x"): (offset + 9, offset + 12)})


def test_state_of_50000_entities_is_saved_through_the_commit_path_and_read_back(
    kafka_bootstrap: str, kafka_admin: KafkaAdminClient, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup,  # noqa: F811
) -> None:
    topic = kafka_topic_factory(partitions=1)
    state_topic = f"{kafka_group_id}.logwarden-state"
    cleanup.topics.append(state_topic)
    tp = TopicPartition(topic, 0)
    big = many_entities(7, ENTITIES)
    assert len(big.to_json()) > 1 << 20, "the test needs a state larger than one Kafka message"
    assert inline_metadata(big) is None
    producer = make_producer(kafka_bootstrap)  # the worker's producer: requests capped at 1 MiB
    owner = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=kafka_group_id, enable_auto_commit=False)
    metrics = WorkerMetrics()
    try:
        for i in range(10):
            producer.send(topic, value=f"line {i}".encode())
        producer.flush()
        owner.assign([tp])
        checkpoint = Checkpoint(owner, SinkUp(), NoDeadLetters(), StateTopic(kafka_bootstrap, state_topic, producer),
                                metrics)  # type: ignore[arg-type]
        assert checkpoint.commit({tp: FixedPoint(7, big)})
    finally:
        owner.close(autocommit=False)
        producer.close()
    assert metrics.totals()["commits"] == 1
    described = str(kafka_admin.describe_configs(
        [ConfigResource("topic", state_topic, ["cleanup.policy", "max.message.bytes", "min.compaction.lag.ms"])]))
    for name, value in StateTopic.CONFIGS.items():
        assert name in described and value in described, (name, value, described)

    successor = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=kafka_group_id, enable_auto_commit=False)
    reader = StateTopic(kafka_bootstrap, state_topic, producer=None)  # type: ignore[arg-type]
    try:
        successor.assign([tp])
        start, state = load_start(successor, tp, reader)
        assert start == 7
        assert state == big
        first = []
        for _ in range(20):
            first = successor.poll(timeout_ms=500).get(tp, [])
            if first:
                break
        assert first and first[0].offset == 7  # the consumer resumes at the committed offset

        # A commit whose reference names chunks that are not all there (here: one more than was written)
        # is never half-used: the successor starts without replay state.
        committed = successor.committed(tp, metadata=True)
        data = parse_metadata(committed.metadata)
        assert data is not None and "ref" in data
        data["ref"][-1] += 1
        successor.commit({tp: OffsetAndMetadata(7, json.dumps(data), -1)})
        start, state = load_start(successor, tp, reader)
        assert start == 7 and state is None
    finally:
        reader.close()
        successor.close(autocommit=False)
