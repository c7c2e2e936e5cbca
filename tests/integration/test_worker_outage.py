"""Outage: Elasticsearch stops for 30 s mid-stream (five times the 6 s session timeout); nothing is lost, nothing
doubled (the documents equal an uninterrupted run's, whole), no offset passes an unindexed anomaly, during the
outage or through the catch-up after it, the worker keeps its group membership (no partition lost, assigned
once) and its memory stays bounded while input keeps arriving (partitions paused: nothing is fetched).

Elasticsearch is frozen with SIGSTOP (clients time out, as against a hung or unreachable node) and thawed
with SIGCONT in a ``finally``, so the shared server always comes back unchanged. During the outage the test
samples the group's committed offsets every second; an anomaly not yet acknowledged by Elasticsearch must
never lie below the committed offset of its partition.

Which documents were acknowledged before the outage is read without a race: the worker's
``anomalies_indexed`` counter (scraped while Elasticsearch is frozen, when no acknowledgement can arrive)
says how many, and the documents' ``_seq_no`` (one shard: the sample's windows all start on one day) says
which: the first ones indexed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from tests.integration.worker_support import (
    ENTITY_REGEX,
    SAMPLE,
    Cleanup,
    CommitWatch,
    Reference,
    Rig,
    assert_same_documents,
    cleanup,  # noqa: F401 - fixture
    count_indexed,
    elasticsearch_stopped,
    expected,
    indexed,
    reference_run,  # noqa: F401 - fixture
    replay_in_background,
    rig,  # noqa: F401 - fixture
    topic_layout,
    wait_for,
)

pytestmark = pytest.mark.integration
OUTAGE_SECONDS = 30
RSS_GROWTH_LIMIT = 64 << 20  # bytes the worker may grow by while paused (input keeps arriving meanwhile)


def test_elasticsearch_down_30s_mid_stream_loses_nothing_and_commits_nothing_unsafe(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
    kafka_topic_factory: Callable[..., str], kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    want = expected()
    reference = reference_run(4)
    topic = rig.topic
    worker = rig.start("worker", "--exit-when-idle", "5s", "--es-timeout", "2s")
    snapshots: list[dict[int, int]] = []
    rss: list[int] = []
    try:
        wait_for("the worker to be ready", lambda: worker.http_status("/readyz") == 200, 60)
        thread, result = replay_in_background(SAMPLE, topic, kafka_bootstrap, rate=1200)
        wait_for("some anomalies indexed", lambda: count_indexed(es_client, topic) >= 3, 60)
        watch = CommitWatch(rig, reference).__enter__()  # samples through the outage and the catch-up
        with elasticsearch_stopped(es_url):
            started = time.monotonic()
            time.sleep(3)  # any flush in flight has timed out by now; no acknowledgement can arrive
            acknowledged = worker.metric("logwarden_worker_anomalies_indexed_total")
            paused_seen = False
            while time.monotonic() - started < OUTAGE_SECONDS:
                snapshots.append(_committed(kafka_admin, kafka_group_id))
                paused_seen |= worker.metric("logwarden_worker_paused") == 1
                rss.append(worker.rss_bytes())
                time.sleep(1)
            assert worker.metric("logwarden_worker_anomalies_indexed_total") == acknowledged
            assert worker.metric("logwarden_worker_sink_up") == 0
            # Readiness follows the last flush: not ready once one failed (the first takes a timeout to fail).
            assert worker.http_status("/readyz") == 503
            assert worker.proc.poll() is None, "the worker must ride out the outage"
        assert paused_seen, "partitions should be paused while Elasticsearch is down"
        thread.join(120)
        assert "error" not in result, result.get("error")
        wait_for("the catch-up to end", lambda: worker.metric("logwarden_worker_records_total", topic=topic)
                 >= want.lines or worker.proc.poll() is not None, 120)
        lost = worker.metric("logwarden_worker_partitions_lost_total")
        code = worker.wait(180)
        watch.__exit__()
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]

    # Nothing lost, nothing doubled: the documents are the uninterrupted run's.
    docs = indexed(es_client, topic)
    assert_same_documents(docs, reference.docs)
    assert es_client.count(index=f"{topic}-anomalies")["count"] == len(want.ids)
    # The group kept the worker through an outage five session timeouts long; memory stayed bounded.
    assert lost == 0 and len(worker.messages("partitions assigned")) == 1, worker.messages("partitions")
    assert rss and min(rss) > 0 and max(rss) - rss[0] < RSS_GROWTH_LIMIT, rss
    # Commits sampled through the catch-up (after the thaw) never passed an unindexed anomaly either.
    watch.check()

    # The first `acknowledged` documents by _seq_no are those Elasticsearch took before the outage.
    hits = es_client.search(index=f"{topic}-anomalies", size=10_000, seq_no_primary_term=True,
                            query={"match_all": {}})["hits"]["hits"]
    assert len({hit["_index"] for hit in hits}) == 1
    order = sorted(hits, key=lambda hit: hit["_seq_no"])
    before = {hit["_source"]["entity"]["id"] for hit in order[: int(acknowledged)]}
    assert 0 < len(before) < len(want.ids), "the outage must fall mid-stream"
    pattern = re.compile(ENTITY_REGEX.encode())
    layout = topic_layout(kafka_bootstrap, topic, 4, lambda value: _entity(pattern, value))
    unindexed = [layout[entity] for entity in want.entities - before]
    assert snapshots and all(snapshots)
    for snapshot in snapshots:
        for partition, first_offset in unindexed:
            assert snapshot.get(partition, 0) <= first_offset, (
                f"offset {snapshot[partition]} of partition {partition} was committed past an anomaly "
                f"starting at {first_offset} that Elasticsearch had not acknowledged"
            )


def _committed(admin: KafkaAdminClient, group: str) -> dict[int, int]:
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def _entity(pattern: re.Pattern[bytes], value: bytes) -> str | None:
    match = pattern.search(value)
    return match.group(0).decode() if match else None
