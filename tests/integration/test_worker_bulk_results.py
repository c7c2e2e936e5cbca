"""Mixed per-item bulk results from a proxy in front of the real Elasticsearch (``tests/integration/es_proxy.py``).

Documents meet, in turn: nothing, a 400 mapping error (every time), 429 twice, 503 once, a 409 version
conflict (the write went through), 500 once. The worker must retry 429 and 5xx items with backoff until they
index, dead-letter the 400 ones with Elasticsearch's reason, count the 409 as indexed, and never commit an
offset past a window that is neither indexed nor dead-lettered. The documents in Elasticsearch then equal the
uninterrupted run's minus exactly the dead-lettered ones, and those are on the dead-letter topic whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.scoring import document_id
from tests.integration.es_proxy import bulk_proxy
from tests.integration.worker_support import (
    CommitWatch,
    Reference,
    Rig,
    assert_same_documents,
    cleanup,  # noqa: F401 - fixture
    comparable,
    reference_run,  # noqa: F401 - fixture
    rig,  # noqa: F401 - fixture
    wait_for,
    window_key,
)

pytestmark = pytest.mark.integration
# Fate of the k-th distinct document the proxy sees (cycled): (status, for how many attempts) or None.
CYCLE: list[tuple[int, int] | None] = [None, (400, 99), (429, 2), (503, 1), (409, 1), (500, 1)]


class Fates:
    def __init__(self) -> None:
        self.of: dict[str, tuple[int, int] | None] = {}

    def plan(self, doc_id: str, attempt: int) -> int | None:
        fate = self.of.setdefault(doc_id, CYCLE[len(self.of) % len(CYCLE)])
        return fate[0] if fate is not None and attempt < fate[1] else None

    def ids(self, status: int) -> set[str]:
        return {i for i, fate in self.of.items() if fate is not None and fate[0] == status}


class DeadLetterReader:
    """Accumulates the dead-letter topic's documents (window key -> (document, headers))."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self.consumer.assign([TopicPartition(topic, 0)])
        self.consumer.seek_to_beginning()
        self.found: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
        self.lock = threading.Lock()

    def keys(self) -> set[str]:
        with self.lock:
            for records in self.consumer.poll(timeout_ms=300).values():
                for record in records:
                    doc = json.loads(record.value)
                    self.found[window_key(doc)] = (doc, dict(record.headers))
            return set(self.found)

    def close(self) -> None:
        self.consumer.close()


def test_429_and_5xx_items_are_retried_400_dead_lettered_409_counted_and_commits_wait_for_all(
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    reference = reference_run(4)
    fates = Fates()
    with bulk_proxy(rig.es_url, fates.plan) as proxy:
        worker = rig.start("worker", "--exit-when-idle", "5s", es_url=proxy.url)
        wait_for("the worker to be ready", lambda: worker.http_status("/readyz") == 200, 60)
        dead = DeadLetterReader(rig.bootstrap, f"{rig.topic}.dlq")
        try:
            thread, result = rig.replay_in_background(rate=2500)
            with CommitWatch(rig, reference, dead_lettered=dead.keys) as watch:
                thread.join(120)
                assert "error" not in result, result.get("error")
                code = worker.wait(180)
            dead.keys()
        finally:
            dead.close()
    assert code == 0, worker.text()[-3000:]
    watch.check()

    rejected = fates.ids(400)
    assert rejected and fates.ids(429) and fates.ids(503) and fates.ids(409) and fates.ids(500)
    # 400: sent once, never retried, dead-lettered whole with Elasticsearch's reason.
    assert all(len(proxy.attempts[i]) == 1 for i in rejected), {i: proxy.attempts[i] for i in rejected}
    extra = {document_id(doc): (fates.of.get(document_id(doc)), headers.get("error.message"))
             for doc, headers in dead.found.values() if document_id(doc) not in rejected}
    assert not extra, extra
    assert {document_id(doc) for doc, _ in dead.found.values()} == rejected
    for key, (doc, headers) in dead.found.items():
        assert comparable(doc) == comparable(reference.docs[key])
        assert b"document_parsing_exception" in headers["error.message"], headers
    # 429 (twice) and 5xx (once): retried after a growing pause until indexed.
    for doc_id in fates.ids(429):
        (t0, s0), (t1, s1), (t2, s2) = proxy.attempts[doc_id]
        assert (s0, s1, s2) == (429, 429, 200) or (s0, s1, s2) == (429, 429, 201)
        assert t1 - t0 >= 0.4 and t2 - t1 >= 0.8 and t2 - t1 > t1 - t0, proxy.attempts[doc_id]
    for doc_id in fates.ids(503) | fates.ids(500):
        statuses = [s for _, s in proxy.attempts[doc_id]]
        assert statuses[0] >= 500 and statuses[-1] in (200, 201), statuses
    # 409: indexed, not dead-lettered, and the documents are the uninterrupted run's minus the rejected.
    summary = worker.summary()
    assert summary["dead_letters"] == len(rejected)
    assert summary["anomalies_indexed"] == len(reference.docs) - len(rejected)
    want = {k: d for k, d in reference.docs.items() if k not in dead.found}
    assert_same_documents(rig.docs(), want)
