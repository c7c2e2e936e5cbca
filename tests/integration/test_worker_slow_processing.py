"""An Elasticsearch stall longer than ``max.poll.interval.ms`` never costs the worker its group membership.

kafka-python's heartbeat thread makes a member leave its group when the main loop has not called ``poll``
within ``max.poll.interval.ms``; the worker indexes from that loop, so a bulk request that hangs could hold
it past the interval. The promise: every step between two polls is bounded by the Elasticsearch request
timeout (the check in :meth:`pipeline.config.WorkerOptions.check` keeps the interval above it), and a
stalled cluster is handled like a down one: partitions paused, ``poll`` still called.

The worker runs with an 8 s ``--max-poll-interval`` and a 2 s ``--es-timeout`` behind a proxy
(``tests/integration/es_proxy.py``) that holds every bulk request 12 s, for 25 s (three intervals), then
lets them through. The member must keep its member id and its one assignment, lose no partition, and the
documents must equal an uninterrupted run's, whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.integration.es_proxy import bulk_proxy
from tests.integration.worker_support import (
    Reference,
    Rig,
    assert_same_documents,
    cleanup,  # noqa: F401 - fixture
    expected,
    reference_run,  # noqa: F401 - fixture
    rig,  # noqa: F401 - fixture
    wait_for,
)

pytestmark = pytest.mark.integration
MAX_POLL_INTERVAL = 8.0
STALL_SECONDS = 25.0  # longer than the interval three times over
HOLD_SECONDS = 12.0  # each bulk request is held this long while stalled: longer than the interval alone


def _members(on: Rig) -> set[str]:
    """The member ids of the worker's consumer group now."""
    groups = on.admin.describe_groups([on.group])
    return {str(member["member_id"]) for group in groups.values() for member in group["members"]}


def test_an_elasticsearch_stall_longer_than_max_poll_interval_keeps_the_member_and_every_document(
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    reference = reference_run(4)
    want = expected()
    with bulk_proxy(rig.es_url) as proxy:
        worker = rig.start("worker", "--exit-when-idle", "5s", "--es-timeout", "2s",
                           "--max-poll-interval", f"{MAX_POLL_INTERVAL:g}s", es_url=proxy.url)
        wait_for("the worker to own every partition",
                 lambda: worker.metric("logwarden_worker_assigned_partitions") == 4, 60)
        members = _members(rig)
        assert len(members) == 1, members
        proxy.delay = HOLD_SECONDS
        stalled_at = time.monotonic()
        rig.replay()
        paused_seen = False
        while time.monotonic() - stalled_at < STALL_SECONDS:
            paused_seen |= worker.metric("logwarden_worker_paused") == 1
            assert worker.proc.poll() is None, worker.text()[-3000:]
            time.sleep(0.5)
        held = proxy.bulks
        assert worker.metric("logwarden_worker_sink_up") == 0, "the stall did not reach the worker"
        assert _members(rig) == members, "the member was replaced during the stall"
        proxy.delay = 0.0
        code = worker.wait(180)
    assert code == 0, worker.text()[-3000:]
    assert held > 0 and paused_seen, "no bulk request was held, or the partitions were never paused"
    summary = worker.summary()
    assert summary["partitions_lost"] == 0, worker.messages("partitions lost")
    assert len(worker.messages("partitions assigned")) == 1, worker.messages("partitions")
    assert not [line for line in worker.text().splitlines() if "poll timeout has expired" in line]
    assert summary["records"] == want.lines
    assert_same_documents(rig.docs(), reference.docs)
