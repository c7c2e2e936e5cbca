"""Hot reload against the real servers: one running worker, a registry changed under it, no restart.

The sample is replayed in four chunks. Between chunks the test changes the registry and waits until the
worker has reacted (its ``/metrics``), and every chunk's new documents must carry the version serving then:

1. v1 serves from the start;
2. v2 is promoted: picked up without a restart, later documents carry v2;
3. v3, corrupted, is made current behind the registry's back: refused (log line, refused metric), v2 keeps serving;
4. two rollbacks (v3 -> v2, which serves already; v2 -> v1): v1 is back.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from models.registry import ModelRegistry
from tests.integration.worker_support import (
    Rig,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    cli,
    expected,
    indexed,
    rig,  # noqa: F401 - fixture
    split_sample,
    wait_for,
)

pytestmark = pytest.mark.integration


def serving(worker: WorkerProcess) -> str | None:
    for (name, labels), value in worker.metrics().items():
        if name == "logwarden_worker_model_info" and value == 1:
            return dict(labels).get("version")
    return None


def settled(es_client: Elasticsearch, topic: str, quiet: float = 4.0) -> dict[str, dict]:
    """The indexed documents once their count has not changed for ``quiet`` seconds (several commit intervals:
    windows closed together may be flushed in more than one bulk request)."""
    docs = indexed(es_client, topic)
    stable_since = time.monotonic()
    deadline = stable_since + 60
    while time.monotonic() - stable_since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        now = indexed(es_client, topic)
        if len(now) != len(docs):
            docs, stable_since = now, time.monotonic()
    return docs


def republish(registry: ModelRegistry, make_current: bool) -> str:
    """A new version with v1's content (a retraining that learnt the same thing)."""
    bundle = registry.load(registry.history()[0])
    bundle.version = ""
    return registry.publish(bundle, make_current=make_current)


def test_promotion_corruption_and_rollback_reach_a_running_worker(rig: Rig, tmp_path: Path) -> None:  # noqa: F811
    model_dir = tmp_path / "models"
    shutil.copytree(expected().model_dir, model_dir)
    registry = ModelRegistry(model_dir)
    v1 = registry.current_version()
    assert v1 is not None
    chunks = split_sample(tmp_path, 4)
    es_client, topic = rig.es, rig.topic
    worker = rig.start("worker", "--model-poll-interval", "1s", "--idle-close", "2s", model_dir=model_dir)
    seen: dict[str, dict] = {}
    read = 0

    def chunk(i: int, version: str) -> None:
        """Replay chunk i, wait until its windows are indexed, check the new documents' version."""
        nonlocal read
        read += rig.replay(chunks[i]).lines
        wait_for(f"chunk {i} to be read",
                 lambda: worker.metric("logwarden_worker_records_total", topic=topic) >= read, 120)
        wait_for(f"chunk {i}'s windows to close", lambda: worker.metric("logwarden_worker_open_windows") == 0, 60)
        wait_for(f"chunk {i}'s anomalies", lambda: len(indexed(es_client, topic)) > len(seen), 60)
        docs = settled(es_client, topic)
        new = {k: d for k, d in docs.items() if k not in seen}
        assert {d["model"]["version"] for d in new.values()} == {version}, f"chunk {i}"
        seen.update(docs)

    try:
        wait_for("the worker's metrics", lambda: serving(worker) == v1, 60)
        chunk(0, v1)

        v2 = republish(registry, make_current=True)
        wait_for("v2 to be picked up", lambda: serving(worker) == v2, 60)
        assert worker.metric("logwarden_worker_model_reloads_total") == 1
        chunk(1, v2)

        v3 = republish(registry, make_current=False)
        forest = registry.path_of(v3) / "forest.skops"
        forest.write_bytes(forest.read_bytes()[:-64])  # a truncated copy: its sha256 no longer matches
        (model_dir / "CURRENT").write_text(v3 + "\n")
        wait_for("v3 to be refused", lambda: worker.metric("logwarden_worker_model_reloads_refused_total",
                                                            reason="checksum") == 1, 60)
        assert serving(worker) == v2
        assert any(f"refusing model {v3}" in e.get("message", "") and e.get("level") == "error"
                   for e in worker.events())
        chunk(2, v2)

        cli("models", "rollback", "--model-dir", str(model_dir))  # v3 -> v2: serving already
        cli("models", "rollback", "--model-dir", str(model_dir))  # v2 -> v1
        wait_for("the rollback to v1", lambda: serving(worker) == v1, 60)
        assert worker.metric("logwarden_worker_model_reloads_total") == 2
        chunk(3, v1)
        assert worker.metric("logwarden_worker_model_reloads_refused_total", reason="checksum") == 1
        assert worker.proc.poll() is None  # never restarted
    finally:
        worker.kill(15)
        worker.wait(60)
