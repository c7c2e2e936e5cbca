"""Stack traces through Kafka: the worker joins a Java and a Python trace into one record each, like ``detect``.

The log: ten services, one line each every few seconds, plain text with an ISO timestamp; after some ERROR lines
a service prints a Java or a Python stack trace whose lines name no service. ``logwarden replay --key-regex``
sends a trace's lines under the key of the line before them, so the worker (per partition and key) joins them
back into one record; the anomalies it indexes equal the ones ``detect`` finds on the file, record counts
included, and its metrics count every joined record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.sources.replay import replay
from tests.integration.worker_support import (
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    cli,
    indexed,
    wait_for,
    window_key,
    worker_args,
)
from tests.pipeline.stages.test_multiline import JAVA, PYTHON

pytestmark = pytest.mark.integration
KEY = r"svc-\d+"
TRACES = 16


def _write(path: Path) -> int:
    """The log; returns how many records it holds (a trace and the line before it are one)."""
    lines: list[str] = []
    records = 0
    for second in range(0, 40 * 60, 3):
        stamp = f"2026-11-30T10:{second // 60:02d}:{second % 60:02d}Z"
        service = (second // 3) % 10
        n = second // 3
        records += 1
        if n % 50 == 25 and n // 50 < TRACES:
            trace = JAVA if (n // 50) % 2 == 0 else PYTHON
            lines.append(f"{stamp} svc-{service} ERROR request {n} failed")
            lines += trace[1:]
        else:
            lines.append(f"{stamp} svc-{service} INFO handled request {n} in {n % 97}ms")
    path.write_text("\n".join(lines) + "\n")
    return records


def test_traces_in_a_topic_are_one_record_each(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    log = tmp_path / "services.log"
    records = _write(log)
    model = tmp_path / "model"
    window = ["--entity-regex", KEY, "--window", "tumbling", "--window-size", "1m", "--allowed-lateness", "5s"]
    cli("train", str(log), "--model-dir", str(model), *window)
    out = tmp_path / "expected.jsonl"
    done = cli("detect", str(log), "--model-dir", str(model), "--out", str(out))
    assert f"{TRACES} multi-line records" in done.stderr and f"{records} lines" in done.stderr
    want = {window_key(d): d for d in map(json.loads, out.read_text().splitlines())}
    assert any("\tat com.acme" in s for d in want.values() for s in d["log"]["samples"]), "no trace window flagged"

    topic = cleanup.worker_stream(kafka_topic_factory(partitions=3), kafka_group_id)
    sent = replay([str(log)], topic, kafka_bootstrap, key_regex=KEY, partitions=3, progress=False)
    assert sent.followed == sum(1 for _ in log.open()) - records  # every trace line under its record's key

    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          model, "--exit-when-idle", "4s"))
    try:
        wait_for("the worker to read every line",
                 lambda: worker.metric("logwarden_worker_records_total", topic=topic) >= sent.lines, 120)
        code = worker.wait(90)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]
    summary = worker.summary()
    assert summary["records"] == sent.lines and summary["multiline_records"] == TRACES

    docs = indexed(es_client, topic)
    assert set(docs) == set(want)
    for key, doc in docs.items():
        assert doc["log"]["count"] == want[key]["log"]["count"]  # records, not physical lines
        assert [t["id"] for t in doc["templates"]] == [t["id"] for t in want[key]["templates"]]
        assert doc["log"]["samples"] == want[key]["log"]["samples"]  # the whole trace, as in detect
