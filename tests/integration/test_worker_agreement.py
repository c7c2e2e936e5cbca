"""Agreement and scale-out: workers over a 4-partition topic index exactly what ``logwarden detect`` finds.

Also checks the worker's own observability: ``/metrics`` counts what the test sent, ``/healthz`` and
``/readyz`` answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from tests.integration.conftest import both_es_servers, unavailable
from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    Rig,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    cli,
    committed_offsets,
    count_indexed,
    expected,
    filebeat_ecs,
    indexed,
    replay_held,
    replay_now,
    rig,  # noqa: F401 - fixture
    wait_for,
    window_key,
    worker_args,
)

pytestmark = pytest.mark.integration


@both_es_servers
def test_one_worker_indexes_exactly_what_detect_finds(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    _one_worker_agrees(kafka_bootstrap, es_url, es_client, kafka_topic_factory, kafka_group_id, cleanup, tmp_path)


def test_one_worker_indexes_exactly_what_detect_finds_in_opensearch(
    kafka_bootstrap: str, opensearch_url: str, os_client: Any, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    """The same worker with ``--sink opensearch`` (and the same --es-* flags) indexes the same documents."""
    cleanup.search = os_client
    _one_worker_agrees(kafka_bootstrap, opensearch_url, os_client, kafka_topic_factory, kafka_group_id, cleanup,
                       tmp_path, "--sink", "opensearch")


def _one_worker_agrees(kafka_bootstrap: str, url: str, search: Any, kafka_topic_factory: Callable[..., str],
                       kafka_group_id: str, cleanup: Cleanup, tmp_path: Path, *extra: str) -> None:  # noqa: F811
    """One worker over a 4-partition topic: every anomaly of ``detect``, same scores, /metrics right."""
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=4), kafka_group_id)
    sent = replay_now(SAMPLE, topic, kafka_bootstrap)
    assert sent.lines == want.lines and sent.keyed == want.lines

    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, url,
                                                          want.model_dir, "--exit-when-idle", "4s", *extra))
    try:
        wait_for("the worker to read every record",
                 lambda: worker.metric("logwarden_worker_records_total", topic=topic) >= want.lines, 120)
        metrics = worker.metrics()
        assert worker.http_status("/healthz") == 200
        assert worker.http_status("/readyz") == 200
        code = worker.wait(60)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]

    # /metrics matches what was sent: every record once, none undecodable, none dead-lettered.
    assert metrics[("logwarden_worker_records_total", (("topic", topic),))] == want.lines
    assert not [k for k in metrics if k[0] in ("logwarden_worker_dead_letters_total",
                                               "logwarden_worker_decode_errors_total") and metrics[k]]
    assert metrics[("logwarden_worker_assigned_partitions", ())] == 4
    current = (want.model_dir / "CURRENT").read_text().strip()
    assert _labels(metrics, "logwarden_worker_model_info")["version"] == current
    assert metrics[("logwarden_worker_sink_up", ())] == 1

    docs = indexed(search, topic)
    assert set(docs) == want.ids
    assert {doc["entity"]["id"] for doc in docs.values()} == want.entities
    for key, doc in docs.items():
        assert doc["anomaly"]["score"] == want.docs[key]["anomaly"]["score"]
        assert doc["log"]["count"] == want.docs[key]["log"]["count"]
    summary = worker.summary()
    assert summary["anomalies_indexed"] == len(want.ids)
    assert len(summary["partitions_owned"]) == 4


def _labels(metrics: dict, name: str) -> dict[str, str]:
    for (metric, labels), _ in metrics.items():
        if metric == name:
            return dict(labels)
    return {}


def test_two_workers_in_one_group_share_partitions_and_agree(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
    kafka_topic_factory: Callable[..., str], kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    """The second worker joins mid-stream: the first one checkpoints the partitions it gives up (flush,
    replay state, commit) and the second one rebuilds their open windows from the committed offsets."""
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=4), kafka_group_id)
    args = worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url, want.model_dir,
                       "--exit-when-idle", "6s")
    workers = [WorkerProcess(tmp_path, "worker1", args)]
    try:
        wait_for("the first worker to be ready", lambda: workers[0].http_status("/readyz") == 200, 60)
        # From two thirds of the sample on the stream only trickles until the second worker owns its partitions:
        # it joins mid-stream however long its start-up takes (at full rate a worker that keeps up read the
        # whole sample and went idle before a second one started on a loaded machine).
        thread, result, release = replay_held(SAMPLE, topic, kafka_bootstrap, hold_at=2 * want.lines // 3)
        wait_for("commits past offset 0 and some anomalies indexed",
                 lambda: sum(committed_offsets(kafka_admin, kafka_group_id).values()) > 0
                 and count_indexed(es_client, topic) >= 3, 60)
        assert thread.is_alive(), "the replay finished before the second worker joined"
        workers.append(WorkerProcess(tmp_path, "worker2", args))
        wait_for("both workers to own two partitions",
                 lambda: all(w.metric("logwarden_worker_assigned_partitions") == 2 for w in workers), 60)
        assert thread.is_alive(), "the replay finished before the second worker took partitions over"
        release.set()
        thread.join(120)
        assert "error" not in result, result.get("error")
        codes = [w.wait(120) for w in workers]
    finally:
        for w in workers:
            w.close()
    assert codes == [0, 0], "\n".join(w.text()[-2000:] for w in workers)

    docs = indexed(es_client, topic)
    assert set(docs) == want.ids
    assert es_client.count(index=f"{topic}-anomalies")["count"] == len(want.ids)
    summaries = [w.summary() for w in workers]
    for summary in summaries:
        assert summary["partitions_owned"], "each worker must have owned some partitions"
        assert summary["records"] > 0, "each worker must have read some records"
    assert sum(s["records"] for s in summaries) >= want.lines
    taken_over = [e["message"] for e in workers[1].events() if "starting at committed offset" in e["message"]]
    assert taken_over, "the second worker should have resumed partitions from the first one's commits"


def test_records_produced_by_kcat_as_filebeat_ecs_json_agree_with_detect(
    rig: Rig, tmp_path: Path,  # noqa: F811
) -> None:
    """Produced by a client users run: ``kcat`` (librdkafka, its own partitioner) sends Filebeat-style ECS JSON
    keyed by block id; the worker finds what ``detect`` finds in the same JSON (which agrees with the text)."""
    kcat = shutil.which("kcat")
    if kcat is None:
        unavailable("kcat is missing (apt-get install kcat; .ci/run installs it)")
    want = expected()
    keyed = filebeat_ecs(SAMPLE, tmp_path / "ecs.keyed")
    out = tmp_path / "detect.jsonl"
    cli("detect", str(keyed.with_suffix(".jsonl")), "--model-dir", str(want.model_dir), "--out", str(out))
    reference = {window_key(d): d for d in map(json.loads, out.read_text().splitlines())}
    assert set(reference) == want.ids
    done = subprocess.run([kcat, "-P", "-b", rig.bootstrap, "-t", rig.topic, "-K", "\t", "-l", str(keyed)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    worker = rig.start("worker", "--exit-when-idle", "4s")
    assert worker.wait(180) == 0, worker.text()[-3000:]
    summary = worker.summary()
    assert summary["records"] == want.lines and summary["decode_errors"] == 0 and summary["dead_letters"] == 0
    assert len(summary["partitions_owned"]) == 4
    docs = rig.docs()
    assert set(docs) == set(reference)
    for key, doc in docs.items():
        for part in ("anomaly", "templates", "entity"):
            assert doc[part] == reference[key][part], (key, part)
        assert doc["log"]["count"] == reference[key]["log"]["count"]
        assert doc["log"]["samples"] == reference[key]["log"]["samples"]
