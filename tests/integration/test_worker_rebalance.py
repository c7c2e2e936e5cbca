"""Rebalance under traffic while Elasticsearch is slow: a second worker joins, then leaves, records keep flowing.

Every bulk request waits 2.5 s in a proxy (``tests/integration/es_proxy.py``), longer than the revocation
budget (a third of the 6 s session timeout): a revocation checkpoint cannot finish its flush in time and must
give up without a commit rather than block the heartbeats of its member. The documents must equal a single
uninterrupted worker's, whole, and no member may expire (no partition lost) on either side.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.integration.es_proxy import bulk_proxy
from tests.integration.worker_support import (
    CommitWatch,
    Reference,
    Rig,
    assert_same_documents,
    cleanup,  # noqa: F401 - fixture
    reference_run,  # noqa: F401 - fixture
    rig,  # noqa: F401 - fixture
    wait_for,
)

pytestmark = pytest.mark.integration


def test_a_worker_joining_then_leaving_under_traffic_with_slow_elasticsearch_changes_no_document(
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    reference = reference_run(4)
    with bulk_proxy(rig.es_url, delay=2.5) as proxy:
        first = rig.start("first", "--exit-when-idle", "6s", es_url=proxy.url)
        wait_for("the first worker to be ready", lambda: first.http_status("/readyz") == 200, 60)
        thread, result = rig.replay_in_background(rate=400)  # about 50 s of traffic
        with CommitWatch(rig, reference) as watch:
            time.sleep(3)
            second = rig.start("second", es_url=proxy.url)
            wait_for("both workers to own two partitions",
                     lambda: all(w.metric("logwarden_worker_assigned_partitions") == 2 for w in (first, second)), 60)
            assert thread.is_alive(), "the replay ended before the second worker joined"
            wait_for("the second worker to read and commit",
                     lambda: second.metric("logwarden_worker_commits_total") > 0
                     and second.metric("logwarden_worker_records_total", topic=rig.topic) > 0, 60)
            assert thread.is_alive(), "the replay ended before the second worker left"
            second.kill(signal.SIGTERM)
            assert second.wait(60) == 0, second.text()[-3000:]
            wait_for("the first worker to own every partition again",
                     lambda: first.metric("logwarden_worker_assigned_partitions") == 4, 60)
            left_mid_stream = thread.is_alive()
            thread.join(120)
            assert "error" not in result, result.get("error")
            assert first.wait(240) == 0, first.text()[-3000:]
    assert left_mid_stream, "the second worker left after the replay ended: not under traffic"
    assert proxy.bulks > 0
    watch.check()
    for worker in (first, second):
        assert worker.summary()["partitions_lost"] == 0, worker.messages("partitions lost")
        assert worker.summary()["records"] > 0
    assert_same_documents(rig.docs(), reference.docs)
