"""Crash: a worker killed with SIGKILL mid-stream and restarted leaves every expected document exactly once.

The kill lands after the worker has committed offsets while windows of other blocks were still open, so the
restart re-reads records of windows that were already flushed: without the replay state those would come
back as partial windows under new ids (extra documents).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    committed_offsets,
    count_indexed,
    expected,
    indexed,
    replay_in_background,
    wait_for,
    worker_args,
)

pytestmark = pytest.mark.integration


def test_sigkill_mid_stream_then_restart_indexes_every_document_exactly_once(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
    kafka_topic_factory: Callable[..., str], kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=4), kafka_group_id)
    args = worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url, want.model_dir)

    first = WorkerProcess(tmp_path, "first", args)
    try:
        wait_for("the first worker to be ready", lambda: first.http_status("/readyz") == 200, 60)
        thread, result = replay_in_background(SAMPLE, topic, kafka_bootstrap, rate=2500)
        # Kill once documents are indexed and offsets committed, while the stream is still flowing.
        wait_for("commits past offset 0 and a third of the anomalies indexed",
                 lambda: sum(committed_offsets(kafka_admin, kafka_group_id).values()) > 0
                 and count_indexed(es_client, topic) >= len(want.ids) // 3, 60)
        assert thread.is_alive(), "the replay finished before the kill: the test would not be mid-stream"
        first.kill(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        before_restart = count_indexed(es_client, topic)
        thread.join(120)
        assert "error" not in result, result.get("error")
    finally:
        first.close()
    assert 0 < before_restart < len(want.ids)

    second = WorkerProcess(tmp_path, "second", [*args, "--exit-when-idle", "4s"])
    try:
        code = second.wait(120)
    finally:
        second.close()
    assert code == 0, second.text()[-3000:]

    docs = indexed(es_client, topic)
    assert es_client.count(index=f"{topic}-anomalies")["count"] == len(want.ids)
    assert set(docs) == want.ids
    summary = second.summary()
    # The restart really re-read records of flushed windows and skipped them (else the test proves nothing).
    assert summary["replay_skipped"] > 0, second.text()[-3000:]


def test_sigterm_flushes_commits_and_leaves_the_group_then_a_restart_completes(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
    kafka_topic_factory: Callable[..., str], kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=4), kafka_group_id)
    args = worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url, want.model_dir)

    first = WorkerProcess(tmp_path, "first", args)
    try:
        wait_for("the first worker to be ready", lambda: first.http_status("/readyz") == 200, 60)
        thread, result = replay_in_background(SAMPLE, topic, kafka_bootstrap, rate=2500)
        wait_for("a third of the anomalies indexed", lambda: count_indexed(es_client, topic) >= len(want.ids) // 3, 60)
        first.kill(signal.SIGTERM)
        assert first.wait(30) == 0, first.text()[-3000:]
        thread.join(120)
        assert "error" not in result, result.get("error")
    finally:
        first.close()
    # Left the group on the way out: nobody waits for a session timeout before taking its partitions over.
    group = kafka_admin.describe_groups([kafka_group_id])[kafka_group_id]
    assert group["members"] == [], group
    assert sum(committed_offsets(kafka_admin, kafka_group_id).values()) > 0
    # Everything it closed was flushed before it committed and left.
    assert count_indexed(es_client, topic) == first.summary()["anomalies_indexed"]

    second = WorkerProcess(tmp_path, "second", [*args, "--exit-when-idle", "4s"])
    try:
        assert second.wait(120) == 0, second.text()[-3000:]
    finally:
        second.close()
    assert set(indexed(es_client, topic)) == want.ids
    assert es_client.count(index=f"{topic}-anomalies")["count"] == len(want.ids)
