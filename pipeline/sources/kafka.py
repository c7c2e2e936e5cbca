"""Kafka plumbing for the worker and ``replay``: clients, topics, records as RawLines, the state topic.

Connection security comes from the environment so secrets stay out of flags, config files and process
listings: ``LOGWARDEN_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``LOGWARDEN_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``LOGWARDEN_KAFKA_SASL_USERNAME``,
``LOGWARDEN_KAFKA_SASL_PASSWORD`` and ``LOGWARDEN_KAFKA_SSL_CAFILE``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import LogwardenError
from pipeline.records import RawLine
from pipeline.stream.ledger import SavedState

log = logging.getLogger(__name__)

_ENV = {
    "LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "security_protocol",
    "LOGWARDEN_KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "LOGWARDEN_KAFKA_SASL_USERNAME": "sasl_plain_username",
    "LOGWARDEN_KAFKA_SASL_PASSWORD": "sasl_plain_password",
    "LOGWARDEN_KAFKA_SSL_CAFILE": "ssl_cafile",
}


def kafka_security(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client settings for TLS/SASL read from ``LOGWARDEN_KAFKA_*`` environment variables."""
    env = os.environ if env is None else env
    return {name: env[var] for var, name in _ENV.items() if env.get(var)}


def client_config(bootstrap_servers: str, **extra: Any) -> dict[str, Any]:
    servers = [part.strip() for part in bootstrap_servers.split(",") if part.strip()]
    if not servers:
        raise LogwardenError("no Kafka bootstrap servers given (--bootstrap-servers)")
    return {"bootstrap_servers": servers, **kafka_security(), **extra}


def make_producer(bootstrap_servers: str, max_request_size: int = 1 << 20, **extra: Any) -> KafkaProducer:
    """An idempotent producer with ``acks=all`` (nothing acknowledged is lost)."""
    config = client_config(bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20,
                           max_request_size=max_request_size, **extra)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise LogwardenError(f"cannot connect to Kafka at {bootstrap_servers}: {exc}") from None


def make_admin(bootstrap_servers: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**client_config(bootstrap_servers, client_id="logwarden-admin"))
    except KafkaError as exc:
        raise LogwardenError(f"cannot connect to Kafka at {bootstrap_servers}: {exc}") from None


def ensure_topics(bootstrap_servers: str, topics: Mapping[str, tuple[int, dict[str, str]]]) -> list[str]:
    """Create the topics of ``{name: (partitions, configs)}`` that do not exist; returns those created.

    Replication factor is the broker's default. A topic created concurrently by someone else is fine.
    """
    admin = make_admin(bootstrap_servers)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for name, (partitions, configs) in topics.items():
            if name in existing:
                continue
            try:
                admin.create_topics({name: {"num_partitions": partitions, "configs": dict(configs)}},
                                    timeout_ms=30_000)
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        if created:
            admin.wait_for_topics(created, timeout_ms=30_000)
    finally:
        admin.close()
    return created


def partition_count(bootstrap_servers: str, topic: str) -> int | None:
    admin = make_admin(bootstrap_servers)
    try:
        for found in admin.describe_topics([topic]):
            if found.get("name") == topic and not found.get("error_code"):
                return len(found.get("partitions") or [])
    except KafkaError:
        return None
    finally:
        admin.close()
    return None


def origin_of(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


def raw_line(record: Any, max_line_bytes: int) -> RawLine:
    """A consumed record as the decoder's input: one line, cut to ``max_line_bytes`` (``truncated``).

    ``arrival`` is the record's Kafka timestamp, so a line without an event time gets the same fallback
    time every time it is read (replays window it identically).
    """
    value: bytes = record.value or b""
    if value.endswith(b"\n"):
        value = value[:-2] if value.endswith(b"\r\n") else value[:-1]
    truncated = len(value) > max_line_bytes
    data = value[:max_line_bytes] if truncated else value
    arrival = record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else 0.0
    return RawLine(data, f"{record.topic}/{record.partition}", record.offset, record.key, arrival, truncated)


class StateTopic:
    """The compacted ``<group>.logwarden-state`` topic: replay states too large for commit metadata."""

    CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(24 * 3600 * 1000)}

    def __init__(self, bootstrap_servers: str, name: str, producer: KafkaProducer) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.producer = producer
        self._ready = False
        self._reader: KafkaConsumer | None = None

    def write(
        self, states: Mapping[TopicPartition, SavedState], timeout: float = 30.0
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Write states, wait for every acknowledgement; returns ``{tp: (state partition, state offset)}``."""
        if not states:
            return {}
        if not self._ready:
            ensure_topics(self.bootstrap_servers, {self.name: (1, self.CONFIGS)})
            self._ready = True
        futures = {
            tp: self.producer.send(self.name, key=origin_of(tp).encode(), value=state.to_json().encode())
            for tp, state in states.items()
        }
        self.producer.flush(timeout=timeout)
        written = {}
        for tp, future in futures.items():
            meta = future.get(timeout=timeout)
            written[tp] = (meta.partition, meta.offset)
        return written

    def read(self, tp: TopicPartition, ref: tuple[int, int], timeout: float = 10.0) -> SavedState | None:
        """The state record ``ref`` points at, if it is still there and belongs to ``tp``."""
        state_tp = TopicPartition(self.name, int(ref[0]))
        if self._reader is None:
            self._reader = KafkaConsumer(**client_config(self.bootstrap_servers, group_id=None,
                                                          enable_auto_commit=False))
        reader = self._reader
        reader.assign([state_tp])
        reader.seek(state_tp, int(ref[1]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=500).get(state_tp, []):
                if record.offset != int(ref[1]):
                    log.warning("replay state of %s at %s:%s is gone (compacted); records after the committed "
                                "offset may be indexed again as partial windows", origin_of(tp), *ref)
                    return None
                if record.key != origin_of(tp).encode():
                    log.warning("state record %s:%s belongs to %r, not %s", *ref, record.key, origin_of(tp))
                    return None
                return SavedState.from_dict(json.loads(record.value))
        log.warning("could not read replay state of %s from %s within %.0f s", origin_of(tp), self.name, timeout)
        return None

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(KafkaError):
                self._reader.close()
            self._reader = None
