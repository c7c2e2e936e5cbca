"""Replay state too large for commit metadata round-trips through the compacted state topic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import ConfigResource

from pipeline.sources.kafka import make_producer
from pipeline.stream.ledger import SavedState, inline_metadata, reference_metadata
from pipeline.stream.state_topic import StateTopic, load_start
from tests.integration.worker_support import Cleanup, cleanup  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def test_large_state_is_written_to_the_state_topic_and_read_back_on_assignment(
    kafka_bootstrap: str, kafka_admin: KafkaAdminClient, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup,  # noqa: F811
) -> None:
    topic = kafka_topic_factory(partitions=1)
    state_topic = f"{kafka_group_id}.logwarden-state"
    cleanup.topics.append(state_topic)
    tp = TopicPartition(topic, 0)
    producer = make_producer(kafka_bootstrap)
    try:
        for i in range(10):
            producer.send(topic, value=f"line {i}".encode())
        producer.flush()
        big = SavedState(7, 1226262918.0, 1226262978.0, {("block", f"blk_{i:020d}"): 7 + i for i in range(400)},
                         {("block", "blk_x"): (9, 12)})
        assert inline_metadata(big) is None, "the test needs a state that does not fit the commit metadata"
        store = StateTopic(kafka_bootstrap, state_topic, producer)
        [(part, offset)] = store.write({tp: big}).values()
    finally:
        producer.close()
    configs = kafka_admin.describe_configs([ConfigResource("topic", state_topic, ["cleanup.policy"])])
    assert "compact" in str(configs), configs

    owner = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=kafka_group_id, enable_auto_commit=False)
    owner.assign([tp])
    owner.commit({tp: OffsetAndMetadata(7, reference_metadata(7, part, offset), -1)})
    owner.close(autocommit=False)

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
    finally:
        reader.close()
        successor.close(autocommit=False)
