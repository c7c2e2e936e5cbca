"""The Kafka-topic model registry (``--model-dir kafka:TOPIC``) against the real broker.

* publish, list, show, load round-trip a model byte for byte (chunked, verified);
* a second writer fences the first: a writer still inside its transaction fails instead of racing;
* two workers on the same group, no shared directory: a promotion reaches both without a restart, a corrupted
  version is refused by both while the old model keeps serving, a rollback brings both back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from models.errors import ModelError
from models.registry import ModelRegistry
from pipeline.stream.model_topic import TopicRegistry
from tests.integration.test_worker_reload import serving, settled
from tests.integration.worker_support import (
    Rig,
    cleanup,  # noqa: F401 - fixture
    cli,
    expected,
    indexed,
    rig,  # noqa: F401 - fixture
    split_sample,
    wait_for,
)

pytestmark = pytest.mark.integration


def fresh(bundle_dir: Path):  # type: ignore[no-untyped-def]
    bundle = ModelRegistry(bundle_dir).load()
    bundle.version = ""
    return bundle


def test_publish_list_load_and_a_fenced_writer(kafka_bootstrap: str, kafka_topic: str) -> None:
    registry = TopicRegistry(kafka_bootstrap, kafka_topic, chunk_bytes=64 * 1024)  # several chunks per file
    source = ModelRegistry(expected().model_dir).load()
    v1 = registry.publish(fresh(expected().model_dir))
    v2 = registry.publish(fresh(expected().model_dir), make_current=False)
    assert registry.current_version() == v1 and registry.versions() == sorted([v1, v2])
    loaded = registry.load()
    assert loaded.version == v1 and loaded.settings == source.settings
    X = source.features.transform([{t: 2} for t in source.features.vocabulary_[:10]])
    assert np.allclose(loaded.detector.score(X), source.detector.score(X))
    listed = cli("models", "list", "--model-dir", f"kafka:{kafka_topic}", "--bootstrap-servers", kafka_bootstrap)
    lines = {line[2:].split()[0]: line for line in listed.stdout.splitlines()}
    assert set(lines) == {v1, v2} and lines[v1].startswith("* ")
    shown = json.loads(cli("models", "show", v2, "--model-dir", f"kafka:{kafka_topic}", "--bootstrap-servers",
                           kafka_bootstrap).stdout)
    assert shown["current"] is False and set(shown["files"]) >= {"forest.skops"}

    # A writer inside its transaction is fenced by the next writer: its commit fails, the other's change stands.
    stale = registry._transaction()
    stale.begin_transaction()
    stale.send(kafka_topic, key=b"current", value=json.dumps({"version": "bogus", "history": []}).encode(),
               partition=0)
    stale.flush()
    TopicRegistry(kafka_bootstrap, kafka_topic).promote(v2)
    with pytest.raises(KafkaError):
        stale.commit_transaction()
    stale.close(timeout=5)
    reader = TopicRegistry(kafka_bootstrap, kafka_topic)
    assert reader.current_version() == v2 and reader.history() == [v1, v2]

    assert reader.rollback() == (v2, v1)
    reader.delete(v2)
    assert reader.versions() == [v1]
    with pytest.raises(ModelError, match="is the current model"):
        reader.delete(v1)
    registry.close()
    reader.close()


def test_two_workers_follow_the_topic_registry(rig: Rig, tmp_path: Path) -> None:  # noqa: F811
    kafka_bootstrap, es_client = rig.bootstrap, rig.es
    models_topic = f"{rig.group}.models"
    rig.cleanup.topics.append(models_topic)
    registry = TopicRegistry(kafka_bootstrap, models_topic)
    v1 = registry.publish(fresh(expected().model_dir))
    chunks = split_sample(tmp_path, 3)
    topic = rig.topic
    workers = [rig.start(f"worker{i}", "--model-poll-interval", "1s", "--idle-close", "2s",
                         model_dir=f"kafka:{models_topic}") for i in range(2)]
    seen: dict[str, dict] = {}
    read = 0

    def records() -> float:
        return sum(w.metric("logwarden_worker_records_total", topic=topic) for w in workers)

    def chunk(i: int, version: str) -> None:
        nonlocal read
        read += rig.replay(chunks[i]).lines
        wait_for(f"chunk {i} to be read", lambda: records() >= read, 120)
        wait_for(f"chunk {i}'s windows to close",
                 lambda: all(w.metric("logwarden_worker_open_windows") == 0 for w in workers), 60)
        wait_for(f"chunk {i}'s anomalies", lambda: len(indexed(es_client, topic)) > len(seen), 60)
        docs = settled(es_client, topic)
        new = {k: d for k, d in docs.items() if k not in seen}
        assert {d["model"]["version"] for d in new.values()} == {version}, f"chunk {i}"
        seen.update(docs)

    def everyone(version: str) -> bool:
        return all(serving(w) == version for w in workers)

    spec = ["--model-dir", f"kafka:{models_topic}", "--bootstrap-servers", kafka_bootstrap]
    try:
        wait_for("both workers to own partitions", lambda: all(
            w.metric("logwarden_worker_assigned_partitions") >= 1 for w in workers), 90)
        assert everyone(v1)
        chunk(0, v1)

        v2 = registry.publish(fresh(expected().model_dir), make_current=False)
        cli("models", "promote", v2, *spec)
        wait_for("both workers to serve v2", lambda: everyone(v2), 60)
        chunk(1, v2)

        v3 = registry.publish(fresh(expected().model_dir), make_current=False)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)  # a bad chunk and a pointer, behind our back
        producer.send(models_topic, key=f"v/{v3}/f/forest.skops/0".encode(), value=b"not a forest", partition=0)
        producer.send(models_topic, key=b"current",
                      value=json.dumps({"version": v3, "history": [v1, v2, v3]}).encode(), partition=0)
        producer.flush()
        producer.close()
        wait_for("both workers to refuse v3", lambda: all(w.metric(
            "logwarden_worker_model_reloads_refused_total", reason="checksum") == 1 for w in workers), 60)
        assert everyone(v2)

        cli("models", "rollback", *spec)  # v3 -> v2 (serving)
        cli("models", "rollback", *spec)  # v2 -> v1
        wait_for("both workers back on v1", lambda: everyone(v1), 60)
        chunk(2, v1)
        assert all(w.proc.poll() is None for w in workers)
        assert all(w.metric("logwarden_worker_model_reloads_total") == 2 for w in workers)
    finally:
        for w in workers:
            w.kill(15)
        for w in workers:
            w.wait(60)
        registry.close()
