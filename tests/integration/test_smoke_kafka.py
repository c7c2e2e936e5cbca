"""Smoke test: the real broker from scripts/services carries 10,000 messages through a consumer group.

Checks what the pipeline relies on: nothing lost or duplicated, order kept within each partition, and the
group's committed offsets stored by the broker (so a restarted worker resumes where it stopped).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

pytestmark = pytest.mark.integration

N_MESSAGES = 10_000
PARTITIONS = 3


def test_produce_and_consume_through_a_group(
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    kafka_topic_factory: Callable[..., str],
    kafka_group_id: str,
) -> None:
    topic = kafka_topic_factory(partitions=PARTITIONS)

    # Produce: keys spread the messages over the partitions; remember where each one landed.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, acks="all")
    futures = [producer.send(topic, key=f"host-{i % 17}".encode(), value=f"{i}".encode()) for i in range(N_MESSAGES)]
    producer.flush(timeout=60)
    producer.close()
    sent: dict[int, list[int]] = defaultdict(list)
    for i, future in enumerate(futures):
        meta = future.get(timeout=10)
        sent[meta.partition].append(i)
    assert len(sent) == PARTITIONS, f"keys should reach every partition, got {sorted(sent)}"

    # Consume through a consumer group until everything arrived (bounded in time).
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=kafka_group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> [(offset, value)]
    total = 0
    deadline = time.monotonic() + 120
    while total < N_MESSAGES and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                received[tp.partition].append((record.offset, int(record.value)))
                total += 1
    consumer.commit()
    consumer.close()

    assert total == N_MESSAGES, f"received {total} of {N_MESSAGES} messages"
    for partition, expected in sent.items():
        got = received[partition]
        assert [offset for offset, _ in got] == list(range(len(expected))), "offsets must be contiguous"
        assert [value for _, value in got] == expected, f"partition {partition} lost its order"

    offsets = kafka_admin.list_group_offsets({kafka_group_id: None})[kafka_group_id]
    by_partition = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    assert by_partition == {p: len(values) for p, values in sent.items()}

    # A second member of the group finds nothing left: the commit is what a restarted worker resumes from.
    again = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=kafka_group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    leftovers = sum(len(r) for r in again.poll(timeout_ms=3000).values())
    again.close()
    assert leftovers == 0
