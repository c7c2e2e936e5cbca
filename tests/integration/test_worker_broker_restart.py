"""Kafka broker restart mid-stream: the worker rides it out, reconnects and loses nothing.

The pause between the halves stays below the worker's idle limits (60 s ``--exit-when-idle``, 65 s idle
close), so the windows come out as in one uninterrupted read.

The test starts its own broker (``scripts/services up kafka`` with its own ``LOGWARDEN_SERVICES_DIR`` and
ports, so the shared broker on 9092 that other tests use is never touched), restarts it (``down`` then ``up``;
the log and the committed offsets persist in its data directory) while the worker holds open windows, then
sends the rest of the sample. The documents must equal the uninterrupted run's, whole.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.integration.conftest import drop_prefix, unavailable
from tests.integration.worker_support import (
    REPO_ROOT,
    Reference,
    WorkerProcess,
    assert_same_documents,
    count_indexed,
    expected,
    free_port,
    indexed,
    reference_run,  # noqa: F401 - fixture
    replay_now,
    split_sample,
    wait_for,
    worker_args,
)

pytestmark = pytest.mark.integration


class OwnBroker:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "LOGWARDEN_SERVICES_DIR": str(root), "LOGWARDEN_KAFKA_PORT": str(self.port),
                    "LOGWARDEN_KAFKA_CONTROLLER_PORT": str(free_port()), "LOGWARDEN_KAFKA_HEAP": "-Xms128m -Xmx512m"}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def services(self, action: str) -> None:
        done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "services"), action, "kafka"], env=self.env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
        if done.returncode != 0:
            unavailable(f"scripts/services {action} kafka on port {self.port} failed: {done.stderr[-2000:]}")


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path_factory.mktemp("own-kafka"))
    broker.services("up")
    try:
        yield broker
    finally:
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "services"), "down", "kafka"], env=broker.env,
                       cwd=REPO_ROOT, capture_output=True, timeout=120)


def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    own_broker: OwnBroker, es_url: str, es_client: Elasticsearch, tmp_path: Path,
    reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    reference = reference_run(4)
    want = expected()
    topic = group = f"lw-test-broker-restart-{os.getpid()}-{int(time.time())}"
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)], timeout_ms=30_000)
    admin.close()
    first_half, second_half = split_sample(tmp_path, 2)
    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, group, topic, own_broker.bootstrap, es_url,
                                                          want.model_dir, "--exit-when-idle", "60s"))
    try:
        sent = replay_now(first_half, topic, own_broker.bootstrap).lines
        wait_for("the first half read and some anomalies indexed",
                 lambda: worker.metric("logwarden_worker_records_total", topic=topic) >= sent
                 and count_indexed(es_client, topic) > 0, 120)
        open_windows = worker.metric("logwarden_worker_open_windows")
        down = time.monotonic()
        own_broker.services("down")
        time.sleep(3)
        assert worker.proc.poll() is None, "the worker must ride out the broker restart"
        own_broker.services("up")
        sent += replay_now(second_half, topic, own_broker.bootstrap).lines
        assert sent == want.lines
        restarted = time.monotonic() - down
        assert restarted < 60, f"the restart took {restarted:.0f} s: the worker's idle exit would split windows"
        assert worker.wait(180) == 0, worker.text()[-3000:]
        assert_same_documents(indexed(es_client, topic), reference.docs)
        assert open_windows > 0, "no window was open across the restart: the test bit on nothing"
    finally:
        worker.close()
        drop_prefix(es_client, topic)
