"""Kafka plumbing for the worker, ``replay`` and tests: clients, topics, consumed records as RawLines.

Connection security comes from the environment so secrets stay out of flags, config files and process
listings: ``LOGWARDEN_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``LOGWARDEN_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``LOGWARDEN_KAFKA_SASL_USERNAME``,
``LOGWARDEN_KAFKA_SASL_PASSWORD`` and ``LOGWARDEN_KAFKA_SSL_CAFILE``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import LogwardenError
from pipeline.records import RawLine

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


def make_producer(bootstrap_servers: str, max_request_size: int = 1 << 20, linger_ms: int = 20,
                  **extra: Any) -> KafkaProducer:
    """An idempotent producer with ``acks=all`` (nothing acknowledged is lost)."""
    config = client_config(bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=linger_ms,
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
