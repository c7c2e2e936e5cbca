"""A model registry in a compacted Kafka topic: ``--model-dir kafka:TOPIC``, for workers on many machines.

Workers already reach Kafka; with this registry they need no shared volume. The topic has one partition and
``cleanup.policy=compact``; each record's key says what it holds, and compaction keeps the latest value of
each key:

==========================================  ==================================================================
``v/<version>/f/<file>/<i>``                 chunk ``i`` of one model file (at most :data:`CHUNK_BYTES`)
``v/<version>/manifest``                     the version's manifest (``models.artifacts``: sha256 of every
                                             file) plus each file's chunk count and size; written after the chunks
``current``                                  ``{"version": V, "history": [...]}``: the pointer and what rollback
                                             walks back
==========================================  ==================================================================

**Atomic and safe against two writers.** Every change (publish, promote, rollback, delete) is one Kafka
transaction under the fixed transactional id ``logwarden-registry.<topic>``, and readers read committed
records only: a reader sees a whole version and its pointer, or nothing of them. A writer first
``init_transactions`` (which fences any other writer still inside a transaction with that id: its commit then
fails with an error instead of racing), then reads the topic to its end, then writes: two writers are
serialised, and the loser of a race gets an error, never a lost update.

**Verified.** Loading reassembles the files into a temporary directory (only the file names a model has; no
archive is unpacked) and loads them with :func:`models.artifacts.load_bundle`: every sha256 is checked against
the manifest and only trusted skops types are loaded, exactly as from a directory.

**Size limits.** Chunks are 256 KiB, under the broker's default ``message.max.bytes`` (1 MiB), so no broker or
topic setting needs changing; a model of N MiB is 4N records of one transaction (a 200-tree forest is a few
MiB). The producer's ``buffer.memory`` (32 MiB) is flushed as the chunks go, so model size is bounded only by
the topic's disk: every kept version costs its size, ``delete`` writes tombstones and compaction reclaims
them. A worker watching the registry tails only the records after the ones it read (cheap); the chunks are read
only when a new current version is loaded.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from models.artifacts import DATA_FILES, ModelBundle, load_bundle, save_bundle
from models.errors import ModelError
from models.registry import new_version_id
from pipeline.errors import LogwardenError
from pipeline.sources.kafka import client_config, ensure_topics

log = logging.getLogger(__name__)
CHUNK_BYTES = 256 * 1024
FILES = (*DATA_FILES, "manifest.json")
CURRENT = "current"
READ_TIMEOUT = 60.0


def is_topic_spec(model_dir: str | None) -> bool:
    return bool(model_dir) and str(model_dir).startswith("kafka:")


class TopicRegistry:
    """The registry interface of :class:`models.registry.ModelRegistry`, over a compacted Kafka topic."""

    def __init__(self, bootstrap_servers: str, topic: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        if not topic:
            raise LogwardenError("--model-dir kafka:TOPIC needs a topic name")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.root = f"kafka:{topic}"
        self.chunk_bytes = chunk_bytes
        self._tail: KafkaConsumer | None = None
        self._tail_current: str | None = None

    # ------------------------------------------------------------------------------------ reading
    def _consumer(self) -> KafkaConsumer:
        try:
            consumer = KafkaConsumer(**client_config(
                self.bootstrap_servers, group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                client_id="logwarden-registry", max_partition_fetch_bytes=max(1 << 20, 2 * self.chunk_bytes)))
        except KafkaError as exc:
            raise LogwardenError(f"cannot connect to Kafka at {self.bootstrap_servers}: {exc}") from None
        tp = TopicPartition(self.topic, 0)
        if not consumer.partitions_for_topic(self.topic):
            consumer.close()
            raise ModelError(f"model registry topic {self.topic!r} does not exist (publish a model with "
                             f"`logwarden train --model-dir kafka:{self.topic}`)")
        consumer.assign([tp])
        return consumer

    def _records(self, consumer: KafkaConsumer, keys: Any = None) -> Iterator[tuple[str, bytes | None]]:
        """``(key, value)`` of the committed records from the consumer's position to the end (as of now)."""
        tp = TopicPartition(self.topic, 0)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + READ_TIMEOUT
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise LogwardenError(f"reading the model registry topic {self.topic} timed out")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    if keys is None or keys(key):
                        yield key, record.value

    def _state(self, keys: Any = None) -> dict[str, bytes | None]:
        """The latest value of every key (``None``: deleted), reading the whole topic."""
        consumer = self._consumer()
        try:
            consumer.seek_to_beginning()
            state: dict[str, bytes | None] = {}
            for key, value in self._records(consumer, keys):
                state[key] = value
            return state
        finally:
            consumer.close()

    @staticmethod
    def _current(value: bytes | None) -> dict[str, Any]:
        if not value:
            return {"version": None, "history": []}
        data = json.loads(value)
        return {"version": data.get("version"), "history": list(data.get("history") or [])}

    def _meta(self) -> dict[str, bytes | None]:
        return self._state(lambda key: key == CURRENT or key.endswith("/manifest"))

    def versions(self) -> list[str]:
        return sorted(key.split("/")[1] for key, value in self._meta().items()
                      if key.endswith("/manifest") and value is not None)

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Every version's manifest, from one read of the topic (``models list``)."""
        return {key.split("/")[1]: dict(json.loads(value)["manifest"]) for key, value in self._meta().items()
                if key.endswith("/manifest") and value is not None}

    def current_version(self) -> str | None:
        """The current version; tails the topic from where the last call stopped (cheap to poll)."""
        if self._tail is None:
            self._tail = self._consumer()
            self._tail.seek_to_beginning()
        for _key, value in self._records(self._tail, lambda k: k == CURRENT):
            self._tail_current = self._current(value)["version"]
        return self._tail_current

    def history(self) -> list[str]:
        current = self._current(self._meta().get(CURRENT))
        return current["history"]

    def manifest(self, version: str) -> dict[str, Any]:
        value = self._meta().get(f"v/{version}/manifest")
        if value is None:
            raise ModelError(f"no model version {version!r} in {self.root}")
        return dict(json.loads(value)["manifest"])

    def load(self, version: str | None = None) -> ModelBundle:
        """Reassemble ``version`` (default: current) and load it, verifying every checksum."""
        if version is None:
            version = self._current(self._meta().get(CURRENT))["version"]
            if version is None:
                raise ModelError(f"model registry {self.root} has no current model")
        prefix = f"v/{version}/"
        state = self._state(lambda key: key.startswith(prefix))
        meta = state.get(prefix + "manifest")
        if meta is None:
            raise ModelError(f"no model version {version!r} in {self.root}")
        entry = json.loads(meta)
        with tempfile.TemporaryDirectory(prefix="logwarden-model-") as tmp:
            directory = Path(tmp) / version
            directory.mkdir()
            for name, info in entry["files"].items():
                if name not in FILES:
                    raise ModelError(f"model {version} in {self.root} names an unknown file {name!r}")
                parts = [state.get(f"{prefix}f/{name}/{i}") for i in range(int(info["chunks"]))]
                if any(part is None for part in parts):
                    raise ModelError(f"model file missing: chunks of {name} of model {version} in {self.root}")
                data = b"".join(p for p in parts if p is not None)
                if len(data) != int(info["size"]):
                    raise ModelError(f"checksum mismatch for {name} of model {version} in {self.root}: "
                                     f"{len(data)} bytes, the manifest says {info['size']}")
                (directory / name).write_bytes(data)
            (directory / "manifest.json").write_text(json.dumps(entry["manifest"]), encoding="utf-8")
            return load_bundle(directory)

    # ------------------------------------------------------------------------------------ writing
    def _transaction(self) -> KafkaProducer:
        ensure_topics(self.bootstrap_servers, {self.topic: (1, {"cleanup.policy": "compact"})})
        try:
            producer = KafkaProducer(**client_config(
                self.bootstrap_servers, acks="all", enable_idempotence=True,
                transactional_id=f"logwarden-registry.{self.topic}",
                max_request_size=max(1 << 20, 2 * self.chunk_bytes), linger_ms=5))
            producer.init_transactions()  # fences a writer still inside a transaction with this id
        except KafkaError as exc:
            raise LogwardenError(f"cannot write to the model registry topic {self.topic}: {exc}") from None
        return producer

    def _commit(self, producer: KafkaProducer, records: Iterator[tuple[str, bytes | None]]) -> None:
        try:
            producer.begin_transaction()
            for n, (key, value) in enumerate(records, start=1):
                producer.send(self.topic, key=key.encode(), value=value, partition=0)
                if n % 64 == 0:
                    producer.flush()
            producer.commit_transaction()
        except KafkaError as exc:
            raise LogwardenError(f"writing to the model registry topic {self.topic} failed (another writer?): "
                                 f"{exc}") from None
        finally:
            producer.close(timeout=10)

    def publish(self, bundle: ModelBundle, make_current: bool = True) -> str:
        bundle.version = bundle.version or new_version_id()
        with tempfile.TemporaryDirectory(prefix="logwarden-model-") as tmp:
            directory = Path(tmp) / bundle.version
            manifest = save_bundle(directory, bundle)
            # The five data files only: forest_paths.npz is derived (a reader loads the forest instead), and
            # a worker of an earlier release refuses a model that names a file it does not know.
            files = {name: (directory / name).read_bytes() for name in DATA_FILES}
            producer = self._transaction()
            current = self._current(self._meta().get(CURRENT))

            def records() -> Iterator[tuple[str, bytes | None]]:
                entry: dict[str, Any] = {"manifest": manifest, "files": {}}
                for name, data in files.items():
                    chunks = [data[i: i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)] or [b""]
                    for i, chunk in enumerate(chunks):
                        yield f"v/{bundle.version}/f/{name}/{i}", chunk
                    entry["files"][name] = {"chunks": len(chunks), "size": len(data)}
                yield f"v/{bundle.version}/manifest", json.dumps(entry).encode()
                if make_current:
                    yield CURRENT, self._pointer(bundle.version, current["history"] + [bundle.version])

            self._commit(producer, records())
        return bundle.version

    @staticmethod
    def _pointer(version: str | None, history: list[str]) -> bytes:
        return json.dumps({"version": version, "history": history}).encode()

    def promote(self, version: str) -> None:
        self.load(version)  # verified first: a version that does not load is never made current
        producer = self._transaction()
        current = self._current(self._meta().get(CURRENT))
        history = current["history"]
        if not history or history[-1] != version:
            history = history + [version]
        self._commit(producer, iter([(CURRENT, self._pointer(version, history))]))

    set_current = promote

    def rollback(self) -> tuple[str, str]:
        producer = self._transaction()
        meta = self._meta()
        current = self._current(meta.get(CURRENT))
        version, history = current["version"], list(current["history"])
        if version is None:
            producer.close(timeout=10)
            raise ModelError(f"{self.root} has no current model to roll back from")
        while history and history[-1] == version:
            history.pop()
        while history and meta.get(f"v/{history[-1]}/manifest") is None:
            history.pop()
        if not history:
            producer.close(timeout=10)
            raise ModelError(f"{version} is the first version made current in {self.root}: nothing to roll back to")
        target = history[-1]
        self._commit(producer, iter([(CURRENT, self._pointer(target, history))]))
        return version, target

    def delete(self, version: str) -> None:
        producer = self._transaction()
        state = self._state(lambda key: key.startswith(f"v/{version}/") or key == CURRENT)
        current = self._current(state.get(CURRENT))
        if state.get(f"v/{version}/manifest") is None:
            producer.close(timeout=10)
            raise ModelError(f"no model version {version!r} in {self.root}")
        if current["version"] == version:
            producer.close(timeout=10)
            raise ModelError(f"{version} is the current model: promote another version or roll back before "
                             "deleting it")
        history = [v for v in current["history"] if v != version]
        tombstones = [(key, None) for key in state if key.startswith(f"v/{version}/")]
        self._commit(producer, iter([*tombstones, (CURRENT, self._pointer(current["version"], history))]))

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None


def open_registry(model_dir: str, bootstrap_servers: str) -> Any:
    """``kafka:TOPIC`` -> :class:`TopicRegistry`; anything else a directory :class:`ModelRegistry`."""
    from models.registry import ModelRegistry  # noqa: PLC0415

    if is_topic_spec(model_dir):
        return TopicRegistry(bootstrap_servers, model_dir.partition(":")[2])
    return ModelRegistry(model_dir)
