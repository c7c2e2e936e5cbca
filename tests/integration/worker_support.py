"""Shared pieces of the worker integration tests (``test_worker_*.py``): model, expected documents, worker
processes, replays, Elasticsearch and Kafka look-ups.

The expected anomaly set is what ``logwarden detect --model-dir`` finds on ``examples/hdfs_sample.log``
(19,473 HDFS lines, 1,000 blocks, 30 labelled anomalous) with a model trained on that file; it is computed
once per test session (memoised here, not in a fixture, so every test module shares it).

The model uses a 60 s session gap and 5 s allowed lateness (events of one block are at most 60 s apart in the
sample, so no block is split): windows then close *during* the 6 minutes of log time instead of all at the
end, so commits advance mid-stream, windows interleave across the committed offset, and the replay state,
the crash and the outage tests have something to bite on.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from pipeline.scoring import document_id
from pipeline.sources.replay import ReplayStats, replay
from tests.integration.conftest import drop_prefix

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
HDFS_FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
ENTITY_REGEX = r"blk_-?\d+"


def window_key(doc: dict[str, Any]) -> str:
    """What makes a document *that* window, read from the document itself: entity, window kind, start, late.

    Expectations are keyed by this, not by ``_id``: a worker's ids also hold its topic and partition, and a
    test that recomputed ids with the code's own function would prove nothing about them.
    """
    entity, window = doc["entity"], doc["window"]
    return "|".join((entity["field"], entity["id"], window["kind"], window["start"], str(window.get("late"))))


@dataclass
class Expected:
    model_dir: Path
    docs: dict[str, dict[str, Any]]  # window key -> detect's document
    lines: int

    @property
    def ids(self) -> set[str]:
        return set(self.docs)

    @property
    def entities(self) -> set[str]:
        return {doc["entity"]["id"] for doc in self.docs.values()}


_EXPECTED: Expected | None = None


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``logwarden ARGS`` in a subprocess (``python -m pipeline.cli.app``); fails the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"logwarden {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}"
    return done


def expected() -> Expected:
    """Train on the sample and run ``detect`` on it, once per session."""
    global _EXPECTED
    if _EXPECTED is None:
        assert SAMPLE.is_file(), f"{SAMPLE} is missing (see examples/README.md to render it)"
        root = Path(tempfile.mkdtemp(prefix="lw-worker-tests-"))
        atexit.register(shutil.rmtree, root, True)
        model_dir = root / "model"
        cli("train", str(SAMPLE), "--model-dir", str(model_dir), "--log-format", HDFS_FORMAT,
            "--entity-regex", ENTITY_REGEX, "--session-gap", "60s", "--allowed-lateness", "5s")
        out = root / "expected.jsonl"
        cli("detect", str(SAMPLE), "--model-dir", str(model_dir), "--out", str(out))
        docs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        assert docs, "detect found no anomaly in the sample: nothing to compare against"
        lines = sum(1 for _ in SAMPLE.open("rb"))
        _EXPECTED = Expected(model_dir, {window_key(doc): doc for doc in docs}, lines)
        assert len(_EXPECTED.docs) == len(docs), "detect wrote two documents for one window"
    return _EXPECTED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """``logwarden worker`` as a subprocess with JSON logs in a file and a metrics port."""

    def __init__(self, tmp: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """``env``: variables added to this process's environment (e.g. the test-only crash hook)."""
        self.port = free_port()
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--json-logs", "--metrics-port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def rss_bytes(self) -> int:
        """Resident memory of the worker process now (0 once it has exited)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def messages(self, contains: str) -> list[str]:
        return [str(e.get("message", "")) for e in self.events() if contains in str(e.get("message", ""))]

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"worker did not exit within {timeout} s; log:\n{self.text()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def summary(self) -> dict[str, Any]:
        for entry in reversed(self.events()):
            message = entry.get("message", "")
            if message.startswith("{") and "worker stopped" in message:
                return dict(json.loads(message))
        pytest.fail(f"worker left no summary; log:\n{self.text()[-4000:]}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Current samples: (name, sorted labels) -> value. Empty while the server is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0


def worker_args(topic: str, group: str, prefix: str, bootstrap: str, es_url: str, model_dir: Path,
                *extra: str) -> list[str]:
    return ["--topic", topic, "--group-id", group, "--index-prefix", prefix, "--bootstrap-servers", bootstrap,
            "--es-url", es_url, "--model-dir", str(model_dir), "--session-timeout", "6s", "--commit-interval", "1s",
            *extra]


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def replay_in_background(path: Path, topic: str, bootstrap: str, rate: float | None,
                         partitions: int = 4) -> tuple[threading.Thread, dict[str, Any]]:
    """Replay ``path`` from a thread; the dict gets ``stats`` or ``error`` when it ends."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["stats"] = replay([str(path)], topic, bootstrap, rate=rate, key_regex=ENTITY_REGEX,
                                     partitions=partitions, progress=False)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def replay_held(path: Path, topic: str, bootstrap: str, hold_at: int, rate: float = 3000.0, trickle: float = 20.0
                ) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """Replay ``path`` from a thread at ``rate`` lines/s, but from line ``hold_at`` on only ``trickle`` lines/s
    until the returned event is set: the stream is still flowing (no worker goes idle) whatever time the test
    needs in between, e.g. for a second worker to start and join. The dict gets ``lines`` or ``error``."""
    from pipeline.sources.kafka import make_producer  # noqa: PLC0415
    from pipeline.sources.replay import key_function  # noqa: PLC0415

    result: dict[str, Any] = {}
    release = threading.Event()

    def run() -> None:
        try:
            key = key_function(ENTITY_REGEX)
            producer = make_producer(bootstrap)
            due = time.monotonic()
            for i, line in enumerate(path.read_bytes().splitlines()):
                due += 1.0 / (rate if i < hold_at or release.is_set() else trickle)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    due = time.monotonic()
                producer.send(topic, value=line, key=key(line.decode()))
            producer.flush(timeout=60)
            producer.close()
            result["lines"] = i + 1
        except Exception as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, release


def replay_now(path: Path, topic: str, bootstrap: str, partitions: int = 4, **kwargs: Any) -> ReplayStats:
    return replay([str(path)], topic, bootstrap, key_regex=ENTITY_REGEX, partitions=partitions, progress=False,
                  **kwargs)


def _search_all(client: Any, index: str) -> list[dict[str, Any]] | None:
    """Every hit of ``index`` after a refresh (None when it does not exist), on Elasticsearch or OpenSearch."""
    if isinstance(client, Elasticsearch):
        client.options(ignore_status=404).indices.refresh(index=index)
        found = client.options(ignore_status=404).search(index=index, size=10_000, query={"match_all": {}})
        return None if found.meta.status == 404 else list(found["hits"]["hits"])
    client.indices.refresh(index=index, ignore=404)
    body = client.search(index=index, body={"size": 10_000, "query": {"match_all": {}}}, ignore=404)
    return None if "hits" not in body else list(body["hits"]["hits"])


def indexed(es: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Every anomaly document under the prefix's alias: window key -> source (after a refresh).

    ``es`` is an Elasticsearch or an OpenSearch client. Fails when two documents are the same window (a
    replay that wrote a second document instead of overwriting), or when a document's ``_id`` is not the
    one its content determines.
    """
    hits = _search_all(es, f"{prefix}-anomalies*")
    if hits is None:
        return {}
    docs = {window_key(hit["_source"]): hit["_source"] for hit in hits}
    assert len(docs) == len(hits), "two documents for one window"
    assert all(hit["_id"] == document_id(hit["_source"]) for hit in hits)
    return docs


def count_indexed(es: Elasticsearch, prefix: str) -> int:
    alias = f"{prefix}-anomalies"
    es.options(ignore_status=404).indices.refresh(index=f"{alias}*")
    found = es.options(ignore_status=404).count(index=f"{alias}*")
    return int(found.get("count", 0)) if found.meta.status == 200 else 0


def committed_offsets(admin: KafkaAdminClient, group: str) -> dict[int, int]:
    """partition -> committed offset of ``group`` (empty before the first commit)."""
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:
        return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def topic_layout(bootstrap: str, topic: str, partitions: int, entity: Callable[[bytes], str | None]
                 ) -> dict[str, tuple[int, int]]:
    """entity -> (partition, smallest offset of its records), read back from the topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    layout: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                key = entity(record.value)
                if key is not None and key not in layout:
                    layout[key] = (tp.partition, record.offset)
    consumer.close()
    return layout


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[Any]:
    """At least ``expect`` records of ``topic`` (all partitions, from the beginning)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=int(timeout * 1000))
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < expect and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


@dataclass
class Cleanup:
    """Topics and index prefixes a test created beyond the conftest fixtures; removed at teardown."""

    topics: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    search: Any = None  # the client whose indices the prefixes name (default: the Elasticsearch 9.x one)

    def worker_stream(self, topic: str, group: str) -> str:
        """Remove what a worker on ``topic`` in ``group`` creates: dead letters, state topic, indices."""
        self.topics += [f"{topic}.dlq", f"{group}.logwarden-state"]
        self.prefixes.append(topic)
        return topic


@pytest.fixture
def cleanup(kafka_admin: KafkaAdminClient, es_client: Elasticsearch) -> Iterator[Cleanup]:
    done = Cleanup()
    yield done
    existing = set(kafka_admin.list_topics())
    doomed = [t for t in done.topics if t in existing]
    if doomed:
        with contextlib.suppress(KafkaError):
            kafka_admin.delete_topics(doomed, timeout_ms=30_000)
    for prefix in done.prefixes:
        drop_prefix(done.search if done.search is not None else es_client, prefix)


# ------------------------------------------------------------------------------- Elasticsearch outage
def elasticsearch_pid(es_url: str) -> int | None:
    """Pid of the Elasticsearch started by scripts/services for ``es_url``'s port, from its pid file."""
    port = es_url.rstrip("/").rsplit(":", 1)[-1]
    services = Path(os.environ.get("LOGWARDEN_SERVICES_DIR", REPO_ROOT / ".services"))
    candidates = [services / "elasticsearch" / "elasticsearch.pid",
                  Path(f"/var/lib/logwarden/elasticsearch-{port}/elasticsearch.pid")]
    for path in candidates:
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"elasticsearch" in cmdline.lower():
                return pid
    return None


@contextlib.contextmanager
def elasticsearch_stopped(es_url: str) -> Iterator[int]:
    """SIGSTOP the Elasticsearch JVM for the body of the ``with``; SIGCONT it whatever happens.

    A stopped JVM accepts no request (clients time out, as with a hung or unreachable node) and resumes
    with its state intact on SIGCONT, so the shared test server is back at once and unchanged.
    """
    pid = elasticsearch_pid(es_url)
    if pid is None:
        message = "cannot find the pid file of the Elasticsearch started by scripts/services"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(message + " (CI=true: integration tests never skip)")
        pytest.skip(message)
    os.kill(pid, signal.SIGSTOP)
    try:
        probe = Elasticsearch(es_url, request_timeout=2, max_retries=0)
        try:
            probe.info()
            answered = True
        except Exception:  # noqa: BLE001 - any failure means it is really stopped
            answered = False
        finally:
            probe.close()
        if answered:
            pytest.fail(f"pid {pid} is not the Elasticsearch answering at {es_url}")
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


# ------------------------------------------------------------------ one worker stream per test (the rig)
def split_sample(tmp: Path, parts: int, path: Path = SAMPLE) -> list[Path]:
    """``path`` cut into ``parts`` consecutive files of (about) equal line counts, written under ``tmp``."""
    lines = path.read_bytes().splitlines(keepends=True)
    size = len(lines) // parts
    chunks = []
    for i in range(parts):
        chunk = tmp / f"chunk{i}.log"
        chunk.write_bytes(b"".join(lines[i * size: (i + 1) * size if i < parts - 1 else len(lines)]))
        chunks.append(chunk)
    return chunks


@dataclass
class Rig:
    """What a worker integration test sets up every time: its topic (created on first use), group, index
    prefix, the worker command line and the worker processes (killed at teardown)."""

    bootstrap: str
    es_url: str
    es: Elasticsearch
    admin: KafkaAdminClient
    group: str
    tmp: Path
    cleanup: Cleanup
    make_topic: Callable[..., str]
    partitions: int = 4
    workers: list[WorkerProcess] = field(default_factory=list)
    _topic: str | None = None

    @property
    def topic(self) -> str:
        """The test's input topic (also its index prefix), created with :attr:`partitions` on first use."""
        if self._topic is None:
            self._topic = self.cleanup.worker_stream(self.make_topic(partitions=self.partitions), self.group)
        return self._topic

    def args(self, *extra: str, model_dir: Path | str | None = None, es_url: str | None = None,
             group: str | None = None) -> list[str]:
        return worker_args(self.topic, group or self.group, self.topic, self.bootstrap, es_url or self.es_url,
                           Path(model_dir) if model_dir is not None else expected().model_dir, *extra)

    def start(self, name: str, *extra: str, env: dict[str, str] | None = None, **where: Any) -> WorkerProcess:
        """A worker on the rig's stream (``where``: ``model_dir``, ``es_url``, ``group`` overrides)."""
        worker = WorkerProcess(self.tmp, name, self.args(*extra, **where), env=env)
        self.workers.append(worker)
        return worker

    def replay(self, path: Path = SAMPLE, **kwargs: Any) -> ReplayStats:
        return replay_now(path, self.topic, self.bootstrap, partitions=self.partitions, **kwargs)

    def replay_in_background(self, rate: float | None, path: Path = SAMPLE) -> tuple[threading.Thread, dict[str, Any]]:
        return replay_in_background(path, self.topic, self.bootstrap, rate, partitions=self.partitions)

    def docs(self) -> dict[str, dict[str, Any]]:
        return indexed(self.es, self.topic)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


@pytest.fixture
def rig(kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
        kafka_topic_factory: Callable[..., str], kafka_group_id: str, cleanup: Cleanup,
        tmp_path: Path) -> Iterator[Rig]:
    made = Rig(kafka_bootstrap, es_url, es_client, kafka_admin, kafka_group_id, tmp_path, cleanup,
               kafka_topic_factory)
    try:
        yield made
    finally:
        made.close()


# ---------------------------------------------------- the reference run and whole-document comparison
@dataclass
class Reference:
    """One uninterrupted worker run over the sample (its own topic, group and indices, kept for the session)."""

    topic: str
    partitions: int
    docs: dict[str, dict[str, Any]]  # window key -> document

    def location(self, key: str) -> tuple[int, int]:
        """(partition, first Kafka offset) of a reference window: the records a commit must not pass."""
        window = self.docs[key]["window"]
        return int(str(window["stream"]).rsplit("/", 1)[1]), int(window["offset"])


_REFERENCES: dict[tuple[int, str], Reference] = {}


@pytest.fixture(scope="session")
def reference_run(kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Reference]]:
    """``reference(partitions) -> Reference``: one worker reads the replayed sample from start to end, undisturbed.

    Fault tests compare their documents with this run's, whole (:func:`assert_same_documents`). Runs once per
    partition count and session; the topic and indices are deleted at the end of the session.
    """
    made: list[str] = []

    def run(partitions: int = 4) -> Reference:
        found = _REFERENCES.get((partitions, kafka_bootstrap))
        if found is not None:
            return found
        want = expected()
        name = f"lw-test-reference-{partitions}p-{uuid.uuid4().hex[:10]}"
        kafka_admin.create_topics([NewTopic(name, partitions, 1)], timeout_ms=30_000)
        made.append(name)
        sent = replay_now(SAMPLE, name, kafka_bootstrap, partitions=partitions)
        assert sent.lines == want.lines
        worker = WorkerProcess(tmp_path_factory.mktemp("reference"), "reference",
                               worker_args(name, name, name, kafka_bootstrap, es_url, want.model_dir,
                                           "--exit-when-idle", "4s"))
        try:
            code = worker.wait(180)
        finally:
            worker.close()
        assert code == 0, worker.text()[-3000:]
        docs = indexed(es_client, name)
        assert set(docs) == want.ids, "the reference run itself disagrees with detect"
        _REFERENCES[(partitions, kafka_bootstrap)] = Reference(name, partitions, docs)
        return _REFERENCES[(partitions, kafka_bootstrap)]

    yield run
    existing = set(kafka_admin.list_topics())
    for name in made:
        doomed = [t for t in (name, f"{name}.dlq", f"{name}.logwarden-state") if t in existing]
        with contextlib.suppress(KafkaError):
            kafka_admin.delete_topics(doomed, timeout_ms=30_000)
        with contextlib.suppress(KafkaError):
            kafka_admin.delete_groups([name])
        drop_prefix(es_client, name)


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A document as two runs over different topics must agree on it: everything, with the topic name left out
    of ``window.stream`` (the partition stays). The ``_id`` follows from the content (:func:`indexed` checks)."""
    copy = json.loads(json.dumps(doc))
    stream = copy.get("window", {}).get("stream")
    if stream:
        copy["window"]["stream"] = "<topic>/" + str(stream).rsplit("/", 1)[1]
    return dict(copy)


def assert_same_documents(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    """No loss, no duplicate, no partial window: the same windows, each document equal field for field."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"{len(missing)} windows missing (e.g. {missing[:3]}), " \
                                      f"{len(extra)} unexpected (e.g. {extra[:3]})"
    differ = [key for key in want if comparable(got[key]) != comparable(want[key])]
    if differ:
        key = differ[0]
        a, b = comparable(got[key]), comparable(want[key])
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        pytest.fail(f"{len(differ)} documents differ from the uninterrupted run; first {key}, fields {fields}:\n"
                    f"got  {json.dumps({k: a.get(k) for k in fields})[:1500]}\n"
                    f"want {json.dumps({k: b.get(k) for k in fields})[:1500]}")


class CommitWatch:
    """Samples a group's committed offsets in a thread and checks each sample against what was resolved *after*
    it was read: a window of the reference whose first record lies below a committed offset must already be
    indexed (or, with ``dead_lettered``, on the dead-letter topic). Reading the offsets first makes the check
    race-free: whatever the worker committed was resolved before the commit, hence before the look-up."""

    def __init__(self, rig: Rig, reference: Reference, interval: float = 0.5,
                 dead_lettered: Callable[[], set[str]] | None = None) -> None:
        self.rig, self.reference, self.interval = rig, reference, interval
        self.dead_lettered = dead_lettered
        self.samples: list[dict[int, int]] = []
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CommitWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        offsets = committed_offsets(self.rig.admin, self.rig.group)
        if not offsets:
            return
        try:
            resolved = set(self.rig.docs())
        except Exception:  # noqa: BLE001 - Elasticsearch frozen or slow: no verdict from this sample
            return
        if self.dead_lettered is not None:
            resolved |= self.dead_lettered()
        self.samples.append(offsets)
        for key in self.reference.docs:
            partition, first = self.reference.location(key)
            if offsets.get(partition, 0) > first and key not in resolved:
                self.violations.append(f"partition {partition} committed at {offsets[partition]} past window {key} "
                                       f"(first offset {first}), which was neither indexed nor dead-lettered")

    def check(self, at_least: int = 3) -> None:
        assert len(self.samples) >= at_least, f"only {len(self.samples)} commit samples: the check saw nothing"
        assert not self.violations, self.violations[:5]


# --------------------------------------------------------------------- records as Filebeat ships them
_HDFS_LINE = re.compile(r"^(\d{2})(\d{2})(\d{2}) (\d{2})(\d{2})(\d{2}) (\d+) (\w+) ([^:]+): (.*)$")


def filebeat_ecs(path: Path, out: Path) -> Path:
    """``path`` (HDFS lines) as Filebeat-style ECS JSON, one ``KEY<TAB>JSON`` line per record for ``kcat -K``:
    the key is the record's block id (the entity), the value has ``@timestamp``, ``message`` (the line's
    content), ``log.level``, ``log.logger``, ``process.pid``, ``host.name``, ``log.file.path``, ``agent``, ``ecs``.
    Also writes ``out.with_suffix('.jsonl')``, the values alone, for ``detect``."""
    pattern = re.compile(ENTITY_REGEX)
    keyed, plain = [], []
    for number, raw in enumerate(path.read_text().splitlines()):
        match = _HDFS_LINE.match(raw)
        assert match, f"not an HDFS line: {raw!r}"
        yy, mo, dd, hh, mi, ss, pid, level, logger, content = match.groups()
        entity = pattern.search(content)
        assert entity, raw
        value = {"@timestamp": f"20{yy}-{mo}-{dd}T{hh}:{mi}:{ss}.000Z", "message": content,
                 "log": {"level": level, "logger": logger, "file": {"path": "/var/log/hadoop/hdfs.log"},
                         "offset": number},
                 "process": {"pid": int(pid)}, "host": {"name": "hdfs-node"},
                 "agent": {"type": "filebeat", "version": "8.15.0"}, "ecs": {"version": "8.0.0"}}
        text = json.dumps(value, separators=(",", ":"))
        keyed.append(f"{entity.group(0)}\t{text}")
        plain.append(text)
    out.write_text("\n".join(keyed) + "\n")
    out.with_suffix(".jsonl").write_text("\n".join(plain) + "\n")
    return out
