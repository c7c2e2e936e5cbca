"""Replay: the same offset range consumed a second time, by a new consumer group, into the same indices leaves
every document as it was (deterministic ``_id`` s overwrite; the windows come out the same), and adds none."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from tests.integration.worker_support import (
    Reference,
    WorkerProcess,
    assert_same_documents,
    expected,
    indexed,
    reference_run,  # noqa: F401 - fixture
    worker_args,
)

pytestmark = pytest.mark.integration


def _versions(es: Elasticsearch, prefix: str) -> dict[str, int]:
    es.indices.refresh(index=f"{prefix}-anomalies*")
    hits = es.search(index=f"{prefix}-anomalies*", size=10_000, version=True, query={"match_all": {}})["hits"]["hits"]
    return {hit["_id"]: int(hit["_version"]) for hit in hits}


def test_the_same_offsets_read_again_by_a_new_group_leave_every_document_unchanged(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
    reference_run: Callable[[int], Reference], tmp_path: Path,  # noqa: F811
) -> None:
    reference = reference_run(4)
    before = _versions(es_client, reference.topic)
    group = f"lw-test-replay-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(tmp_path, "again", worker_args(reference.topic, group, reference.topic, kafka_bootstrap,
                                                         es_url, expected().model_dir, "--exit-when-idle", "4s"))
    try:
        code = worker.wait(180)
    finally:
        worker.close()
        kafka_admin.delete_groups([group])
        if f"{group}.logwarden-state" in kafka_admin.list_topics():
            kafka_admin.delete_topics([f"{group}.logwarden-state"])
    assert code == 0, worker.text()[-3000:]
    assert worker.summary()["anomalies_indexed"] == len(reference.docs)
    after = _versions(es_client, reference.topic)
    assert set(after) == set(before)
    assert all(after[i] > before[i] for i in before), "the second group did not write the documents again"
    assert_same_documents(indexed(es_client, reference.topic), reference.docs)
