"""Poison input and rejected documents go to the dead-letter topic with reasons; the worker keeps going.

One JSON topic (``--format json``) carries HDFS lines as JSON objects plus three poison records: invalid
UTF-8 inside a JSON object, a 10 MB line, and a plain-text line. The daily index the documents go to is
created beforehand with a mapping that cannot take them (``entity.id`` as ``long``), so Elasticsearch
rejects every anomaly document: those must be dead-lettered too (not retried forever), with the reason.
``/metrics`` must count exactly what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    expected,
    read_topic,
    replay_now,
    wait_for,
    worker_args,
)

pytestmark = pytest.mark.integration
JSON_LINES = 3000
BIG = 10 * 1024 * 1024


def json_lines(limit: int) -> Iterator[bytes]:
    """The sample's first lines as ECS-style JSON objects."""
    with SAMPLE.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number >= limit:
                return
            date, time_, _pid, level, rest = line.rstrip("\n").split(" ", 4)
            _component, message = rest.split(": ", 1)
            stamp = datetime.strptime(date + time_, "%y%m%d%H%M%S").isoformat() + "Z"
            yield json.dumps({"@timestamp": stamp, "log.level": level, "message": message}).encode()


def test_poison_records_and_rejected_documents_are_dead_lettered(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_topic: str, kafka_group_id: str,
    cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = kafka_topic
    dlq = f"{topic}.dlq"
    cleanup.topics += [dlq, f"{kafka_group_id}.logwarden-state"]
    cleanup.prefixes.append(topic)
    lines = list(json_lines(JSON_LINES))
    poison = {
        100: b'{"@timestamp": "2008-11-09T20:35:40Z", "message": "Receiving block blk_42 bad \xff\xfe bytes"}',
        200: b'{"message": "' + b"x" * BIG + b'"}',
        300: b"this is not json blk_43",
    }
    for offset, value in sorted(poison.items()):
        lines.insert(offset, value)
    path = tmp_path / "poison.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    sent = replay_now(path, topic, kafka_bootstrap, partitions=1, max_line_bytes=16 * 1024 * 1024)
    assert sent.lines == len(lines) and sent.truncated == 0

    # Every anomaly document will be refused: the index exists with an incompatible mapping.
    es_client.indices.create(index=f"{topic}-anomalies-2008.11.09",
                             mappings={"properties": {"entity": {"properties": {"id": {"type": "long"}}}}})

    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          want.model_dir, "--format", "json",
                                                          "--exit-when-idle", "4s"))
    try:
        wait_for("every record read", lambda: worker.metric("logwarden_worker_records_total", topic=topic)
                 >= len(lines), 120)
        metrics = worker.metrics()
        code = worker.wait(90)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]

    assert metrics[("logwarden_worker_records_total", (("topic", topic),))] == len(lines)
    for reason, count in (("invalid_utf8", 1), ("truncated", 1), ("not_json", 2)):
        assert metrics[("logwarden_worker_decode_errors_total", (("reason", reason),))] == count
        assert metrics[("logwarden_worker_dead_letters_total", (("reason", reason),))] == count

    summary = worker.summary()
    rejected = summary["dead_letters"] - 4
    assert summary["windows_scored"] > 0 and rejected > 0, "some anomaly documents should have been rejected"
    assert summary["anomalies_indexed"] == 0

    letters = read_topic(kafka_bootstrap, dlq, expect=3 + rejected)
    assert len(letters) == 3 + rejected
    by_offset: dict[int, tuple[dict[str, str], bytes]] = {}
    documents = []
    for letter in letters:
        headers = {name: value.decode() for name, value in letter.headers}
        assert headers["source.topic"] == topic and headers["source.partition"] == "0"
        if headers["reason"] == "es_rejected":
            documents.append((headers, json.loads(letter.value)))
        else:
            by_offset[int(headers["source.offset"])] = (headers, letter.value)
    assert sorted(by_offset) == sorted(poison)
    assert by_offset[100][0]["reason"] == "invalid_utf8" and by_offset[100][1] == poison[100]
    assert by_offset[200][0]["reason"] == "truncated,not_json"
    assert by_offset[200][0]["original.bytes"] == str(len(poison[200]))
    assert len(by_offset[200][1]) == 65536  # the first --max-line-bytes bytes
    assert by_offset[300][0]["reason"] == "not_json" and by_offset[300][1] == poison[300]
    assert "JSON" in by_offset[300][0]["error.message"]
    assert len(documents) == rejected
    for headers, doc in documents:
        assert "parsing_exception" in headers["error.message"], headers["error.message"]
        assert doc["anomaly"]["is_anomaly"] is True and doc["entity"]["id"].startswith("blk_")
        assert 0 <= int(headers["source.offset"]) < len(lines)
