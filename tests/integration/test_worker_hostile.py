"""Messy real input never crashes, freezes or degrades the worker (issue: real-world input).

A JSON topic (four partitions, keyed by block) carries the whole sample as Filebeat-style JSON objects, plus
records no rule foresaw: the first record of the stream has no timestamp (its event time would be the Kafka
timestamp, the wall clock, while the rest is 2008), one is dated 2099, one is ``"@timestamp": 1e25`` (past year
9999), and one holds an escaped lone surrogate (``"\\ud800"``). Each of them names a block of its own, so it is
windowed and would, before the fix, have frozen its partition (every later record late) or crashed the worker.

The worker must end with exactly the anomaly documents ``detect`` finds on the clean sample, for every block
of the sample; offsets committed to the end of every partition; the bad records counted (``bad_timestamp``)
or dead-lettered (``invalid_utf8``, with the original bytes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from tests.integration.test_worker_poison import json_lines
from tests.integration.worker_support import (
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    committed_offsets,
    expected,
    indexed,
    read_topic,
    replay_now,
    wait_for,
    worker_args,
)

pytestmark = pytest.mark.integration

HOSTILE = {
    0: b'{"message": "Receiving block blk_9000000001 src: /10.0.0.1:1 dest: /10.0.0.2:2"}',
    5000: b'{"@timestamp": "2099-01-01T00:00:00Z", "message": "Receiving block blk_9000000002 src: /1:1 dest: /2:2"}',
    9000: b'{"@timestamp": 1e25, "message": "Receiving block blk_9000000003 src: /1:1 dest: /2:2"}',
    # Dated like its neighbour (below), so that only its text is odd.
    12000: b'{"@timestamp": "NEIGHBOUR", "message": "Receiving block blk_9000000004 name \\ud800 odd"}',
}
INJECTED = {f"blk_900000000{i}" for i in range(1, 5)}


def test_hostile_records_change_nothing_for_the_rest_of_the_stream(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient, kafka_topic: str,
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = kafka_topic
    cleanup.topics += [f"{topic}.dlq", f"{kafka_group_id}.logwarden-state"]
    cleanup.prefixes.append(topic)
    lines = list(json_lines(want.lines))
    for offset, value in sorted(HOSTILE.items()):
        neighbour = json.loads(lines[offset - 1])["@timestamp"] if offset else ""
        lines.insert(offset, value.replace(b"NEIGHBOUR", neighbour.encode()))
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    replay_now(path, topic, kafka_bootstrap, partitions=4)

    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          want.model_dir, "--format", "json",
                                                          "--exit-when-idle", "4s"))
    try:
        wait_for("every record read", lambda: worker.metric("logwarden_worker_records_total", topic=topic)
                 >= len(lines), 180)
        metrics = worker.metrics()
        code = worker.wait(120)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]

    docs = indexed(es_client, topic)
    sample_docs = {key: doc for key, doc in docs.items() if doc["entity"]["id"] not in INJECTED}
    assert set(sample_docs) == want.ids
    for key, doc in sample_docs.items():
        assert doc["anomaly"]["score"] == want.docs[key]["anomaly"]["score"]
        assert doc["log"]["count"] == want.docs[key]["log"]["count"]
        assert doc["window"]["late"] is False

    committed = committed_offsets(kafka_admin, kafka_group_id)
    assert sum(committed.values()) == len(lines), committed  # every partition committed to its end

    assert metrics[("logwarden_worker_decode_errors_total", (("reason", "bad_timestamp"),))] == 2
    assert metrics[("logwarden_worker_dead_letters_total", (("reason", "invalid_utf8"),))] == 1
    [letter] = read_topic(kafka_bootstrap, f"{topic}.dlq", expect=1)
    assert letter.value == lines[12000] and b"\\ud800" in letter.value
    assert dict(letter.headers)["reason"] == b"invalid_utf8"
