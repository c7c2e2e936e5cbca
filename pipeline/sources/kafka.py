"""Kafka plumbing for the worker, ``replay`` and tests: clients, topics, consumed records as RawLines.

Connection security comes from the environment so secrets stay out of flags, config files and process
listings: ``LOGWARDEN_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``LOGWARDEN_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``LOGWARDEN_KAFKA_SASL_USERNAME``,
``LOGWARDEN_KAFKA_SASL_PASSWORD``, ``LOGWARDEN_KAFKA_SSL_CAFILE`` (the CA bundle the broker's certificate must
chain to; the system's CAs without it), and for a listener that wants a client certificate
``LOGWARDEN_KAFKA_SSL_CERTFILE``, ``LOGWARDEN_KAFKA_SSL_KEYFILE`` (and ``LOGWARDEN_KAFKA_SSL_KEY_PASSWORD``).
The broker's certificate must name the host connected to: hostname checking is on, and only
``LOGWARDEN_KAFKA_SSL_INSECURE_SKIP_HOSTNAME_CHECK=true`` turns it off (with a warning). Mistakes are one
line before any client is built (:func:`kafka_security`, :mod:`pipeline.sources.kafka_probe`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.errors import LogwardenError
from pipeline.records import RawLine
from pipeline.sources.kafka_probe import check_connection

log = logging.getLogger(__name__)

_ENV = {
    "LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "security_protocol",
    "LOGWARDEN_KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "LOGWARDEN_KAFKA_SASL_USERNAME": "sasl_plain_username",
    "LOGWARDEN_KAFKA_SASL_PASSWORD": "sasl_plain_password",
    "LOGWARDEN_KAFKA_SSL_CAFILE": "ssl_cafile",
    "LOGWARDEN_KAFKA_SSL_CERTFILE": "ssl_certfile",
    "LOGWARDEN_KAFKA_SSL_KEYFILE": "ssl_keyfile",
    "LOGWARDEN_KAFKA_SSL_KEY_PASSWORD": "ssl_password",
}
SKIP_HOSTNAME_CHECK = "LOGWARDEN_KAFKA_SSL_INSECURE_SKIP_HOSTNAME_CHECK"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_FILES = {"ssl_cafile": "LOGWARDEN_KAFKA_SSL_CAFILE", "ssl_certfile": "LOGWARDEN_KAFKA_SSL_CERTFILE",
          "ssl_keyfile": "LOGWARDEN_KAFKA_SSL_KEYFILE"}
_TRUE = {"1", "true", "yes", "on"}


def kafka_security(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client settings for TLS/SASL read from ``LOGWARDEN_KAFKA_*`` environment variables, checked.

    A protocol or mechanism that does not exist, a SASL protocol without a user and password, or a TLS
    file that cannot be read is a LogwardenError naming the variable (never its secret value).
    """
    env = os.environ if env is None else env
    found: dict[str, Any] = {name: env[var] for var, name in _ENV.items() if env.get(var)}
    protocol = str(found.get("security_protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise LogwardenError(f"LOGWARDEN_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                             f"got {found['security_protocol']!r}")
    if "security_protocol" in found:
        found["security_protocol"] = protocol
    if protocol.startswith("SASL_"):
        mechanism = str(found.get("sasl_mechanism", "PLAIN")).upper()
        if mechanism not in SASL_MECHANISMS:
            raise LogwardenError(f"LOGWARDEN_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                                 f"got {found.get('sasl_mechanism')!r}")
        found["sasl_mechanism"] = mechanism
        if not found.get("sasl_plain_username") or not found.get("sasl_plain_password"):
            raise LogwardenError(f"{protocol} needs LOGWARDEN_KAFKA_SASL_USERNAME and LOGWARDEN_KAFKA_SASL_PASSWORD")
    elif "sasl_mechanism" in found or "sasl_plain_username" in found:
        raise LogwardenError(f"SASL credentials are set but LOGWARDEN_KAFKA_SECURITY_PROTOCOL is {protocol}: use "
                             "SASL_SSL (or SASL_PLAINTEXT)")
    for name, var in _FILES.items():
        if name in found and not os.access(found[name], os.R_OK):
            raise LogwardenError(f"{var}: cannot read {found[name]}")
    if "ssl_keyfile" in found and "ssl_certfile" not in found:
        raise LogwardenError("LOGWARDEN_KAFKA_SSL_KEYFILE is set without LOGWARDEN_KAFKA_SSL_CERTFILE")
    if protocol.endswith("SSL"):
        found["ssl_check_hostname"] = str(env.get(SKIP_HOSTNAME_CHECK, "")).strip().lower() not in _TRUE
        if not found["ssl_check_hostname"]:
            log.warning("Kafka TLS hostname checking is OFF (%s): a broker with any certificate the CA signed "
                        "is accepted for any host name", SKIP_HOSTNAME_CHECK)
    elif any(name in found for name in _FILES):
        raise LogwardenError(f"TLS files are set but LOGWARDEN_KAFKA_SECURITY_PROTOCOL is {protocol}: use SSL or "
                             "SASL_SSL")
    return found


def client_config(bootstrap_servers: str, **extra: Any) -> dict[str, Any]:
    """kafka-python settings for ``bootstrap_servers``: the security settings above, then ``extra``.

    For TLS or SASL the first call probes one broker (:func:`kafka_probe.check_connection`), so an
    untrusted certificate or a wrong password is one clear error line instead of a 30 s bootstrap timeout.
    """
    servers = [part.strip() for part in bootstrap_servers.split(",") if part.strip()]
    if not servers:
        raise LogwardenError("no Kafka bootstrap servers given (--bootstrap-servers)")
    security = kafka_security()
    check_connection(servers, security)
    return {"bootstrap_servers": servers, **security, **extra}


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


def raw_lines(records: Sequence[Any], max_line_bytes: int, origin: str) -> list[RawLine]:
    """:func:`raw_line` of each record of one partition (``origin``: its ``topic/partition``), as one loop.

    The worker's per-poll path: the same RawLines, without a call and an f-string per record.
    """
    out: list[RawLine] = []
    append = out.append
    for record in records:
        value: bytes = record.value or b""
        if value[-1:] == b"\n":
            value = value[:-2] if value[-2:-1] == b"\r" else value[:-1]
        timestamp = record.timestamp
        arrival = timestamp / 1000.0 if timestamp and timestamp > 0 else 0.0
        if len(value) > max_line_bytes:
            append(RawLine(value[:max_line_bytes], origin, record.offset, record.key, arrival, True))
        else:
            append(RawLine(value, origin, record.offset, record.key, arrival, False))
    return out

