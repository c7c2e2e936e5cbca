"""A worker that starts on a damaged registry and damaged replay states falls back and runs, never crashes.

The registry's current version has a truncated ``forest.skops`` (as a crash during a copy or a full disk leaves
it); the version made current before it is intact. The group's committed offsets (all 0, so nothing is skipped
and the result is comparable) carry damaged replay states, one kind per partition: inline metadata cut in
half, metadata of the wrong shape, a reference to state-topic records that do not exist, and none at all.

The worker must serve the last good version (one error line naming the damaged one, the refusal counted in
``logwarden_worker_model_reloads_refused_total{reason="checksum"}``), start every damaged partition cold with
one warning each, and index exactly what ``detect`` finds with the good version, committing to the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition

from pipeline.sources.kafka import ensure_topics
from pipeline.stream.ledger import METADATA_MARK, SavedState, inline_metadata
from pipeline.stream.state_topic import StateTopic
from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    committed_offsets,
    expected,
    indexed,
    replay_now,
    wait_for,
    worker_args,
)

pytestmark = pytest.mark.integration


def damaged_registry(good: Path, root: Path) -> tuple[str, str]:
    """A copy of the registry at ``good`` with a second, damaged version made current; (good id, damaged id)."""
    shutil.copytree(good, root)
    version = (root / "CURRENT").read_text().strip()
    damaged = version[:-6] + "dead00"
    shutil.copytree(root / "versions" / version, root / "versions" / damaged)
    forest = root / "versions" / damaged / "forest.skops"
    forest.write_bytes(forest.read_bytes()[: forest.stat().st_size // 2])
    (root / "HISTORY").write_text(f"{version}\n{damaged}\n")
    (root / "CURRENT").write_text(f"{damaged}\n")
    return version, damaged


def test_worker_starts_on_a_damaged_model_and_damaged_replay_states(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient, kafka_topic: str,
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = cleanup.worker_stream(kafka_topic, kafka_group_id)
    good, damaged = damaged_registry(want.model_dir, tmp_path / "registry")
    sent = replay_now(SAMPLE, topic, kafka_bootstrap, partitions=4)
    assert sent.lines == want.lines

    inline = inline_metadata(SavedState(0, 1.0, 1.0, {("message", "blk_1"): 3}, {}))
    assert inline is not None
    damage = {
        0: inline[: len(inline) // 2],
        1: json.dumps({METADATA_MARK: 1, "state": [1, 2, 3]}),
        2: json.dumps({METADATA_MARK: 1, "o": 0, "ref": [0, 10_000, 10_003, "ab" * 32, 4]}),
        3: "",
    }
    # The state topic exists but ends before the records partition 2's reference names (deleted, recreated).
    ensure_topics(kafka_bootstrap, {f"{kafka_group_id}.logwarden-state": (1, StateTopic.CONFIGS)})
    committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=kafka_group_id, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in damage]
        committer.assign(parts)
        committer.commit({tp: OffsetAndMetadata(0, damage[tp.partition], -1) for tp in parts})
    finally:
        committer.close()
    assert committed_offsets(kafka_admin, kafka_group_id) == dict.fromkeys(damage, 0)

    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          tmp_path / "registry", "--exit-when-idle", "4s",
                                                          "--model-poll-interval", "1s"))
    try:
        wait_for("every record read", lambda: worker.metric("logwarden_worker_records_total", topic=topic)
                 >= want.lines, 180)
        metrics = worker.metrics()
        code = worker.wait(120)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]
    events = worker.events()
    errors = [e["message"] for e in events if e.get("level") == "error"]
    assert len(errors) == 1, errors  # one line, not one per poll of the model watcher
    assert damaged in errors[0] and "forest.skops" in errors[0] and f"serving {good}" in errors[0]
    assert metrics[("logwarden_worker_model_reloads_refused_total", (("reason", "checksum"),))] == 1
    assert [labels for (name, labels), value in metrics.items()
            if name == "logwarden_worker_model_info" and value == 1 and ("version", good) in labels]

    warnings = [e["message"] for e in events if e.get("level") == "warning" and "replay state of" in e["message"]]
    for partition in (0, 1, 2):
        mine = [w for w in warnings if f"{topic}/{partition} " in w]
        assert len(mine) == 1 and "starting without it" in mine[0], warnings
    assert not [w for w in warnings if f"{topic}/3 " in w]  # no metadata is no damage
    assert "Traceback" not in worker.text()

    docs = indexed(es_client, topic)
    assert set(docs) == want.ids
    for key, doc in docs.items():
        assert doc["model"]["version"] == good
        assert doc["anomaly"]["score"] == want.docs[key]["anomaly"]["score"]
        assert doc["log"]["count"] == want.docs[key]["log"]["count"]
    assert sum(committed_offsets(kafka_admin, kafka_group_id).values()) == want.lines
