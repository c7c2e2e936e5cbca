"""Fixtures for tests that talk to the real Kafka, Elasticsearch and OpenSearch started by ``scripts/services up``.

The servers are found through ``LOGWARDEN_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:9092``),
``LOGWARDEN_ES_URL`` (Elasticsearch 9.x, default ``http://127.0.0.1:9200``), ``LOGWARDEN_ES8_URL``
(Elasticsearch 8.x, default ``http://127.0.0.1:9201``), ``LOGWARDEN_OPENSEARCH_URL`` (OpenSearch 2.x, default
``http://127.0.0.1:9202``) and ``LOGWARDEN_OPENSEARCH3_URL`` (OpenSearch 3.x, default ``http://127.0.0.1:9203``;
their client is the ``opensearch`` extra, imported only by their fixtures).
A server that does not answer skips its tests on a developer's machine, but fails them when ``CI=true``:
CI starts every server, so a missing one is a broken run, not a reason to go green without testing anything.

Tests use the 9.x server unless they are marked :data:`both_es_servers`, which runs them once against each
major (``es_url`` is parametrized indirectly; ``es_client`` and everything built on it follow).

The secured servers (``scripts/services up kafka-secure elasticsearch-secure``) are found through the client
files the script writes under ``LOGWARDEN_SERVICES_DIR`` (default ``<repo>/.services``):
``kafka-secure/client/client.env`` and ``elasticsearch-secure/client/client.env`` (fixtures
:func:`secure_kafka` and :func:`secure_es`); absent or not answering, they skip locally and fail under CI.

Every test gets its own topic, consumer group and index names and the fixtures delete what they created,
so tests can run in any order against long-lived servers.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from pipeline.errors import LogwardenError
from pipeline.sinks.elasticsearch.client import make_es_client, server_major

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
HINT = "start the servers with: scripts/services up"
# Elasticsearch servers by test id: (environment variable, default URL, the major it must be).
ES_SERVERS = {
    "es9": ("LOGWARDEN_ES_URL", "http://127.0.0.1:9200", 9),
    "es8": ("LOGWARDEN_ES8_URL", "http://127.0.0.1:9201", 8),
}
both_es_servers = pytest.mark.parametrize("es_url", list(ES_SERVERS), indirect=True)
# OpenSearch servers by test id, as above; every test that uses ``opensearch_url`` runs against each.
OPENSEARCH_SERVERS = {
    "os2": ("LOGWARDEN_OPENSEARCH_URL", "http://127.0.0.1:9202", 2),
    "os3": ("LOGWARDEN_OPENSEARCH3_URL", "http://127.0.0.1:9203", 3),
}


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where integration tests must not skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(message: str) -> None:
    """Skip locally, fail under CI: a server that CI should have started is missing."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: integration tests never skip; {HINT})", pytrace=False)
    pytest.skip(f"{message}; {HINT}")


def unique_name(request: pytest.FixtureRequest, prefix: str) -> str:
    """A topic/index name unique to this test run: readable test name plus a random suffix.

    Lower case and ``[a-z0-9._-]`` only, which both Kafka topic and Elasticsearch index names accept.
    """
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    return f"{prefix}-{base}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------- Kafka
@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a Kafka broker that answered a metadata request."""
    bootstrap = os.environ.get("LOGWARDEN_KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP)
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        # A refused TCP connection answers at once; kafka-python would retry with backoff for ~30 s.
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="logwarden-tests-probe", request_timeout_ms=10_000
        )
        try:
            admin.describe_cluster()
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError) as exc:
        unavailable(f"Kafka is not reachable at {bootstrap} ({type(exc).__name__}: {exc})")
    return bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="logwarden-tests-admin")
    yield admin
    admin.close()


def _delete_topics(admin: KafkaAdminClient, names: list[str]) -> None:
    if not names:
        return
    # Never created (the test failed before producing) or already gone: nothing to clean.
    with contextlib.suppress(UnknownTopicOrPartitionError):
        admin.delete_topics(names, timeout_ms=30_000)


@pytest.fixture
def kafka_topic_factory(request: pytest.FixtureRequest, kafka_admin: KafkaAdminClient) -> Iterator[Callable[..., str]]:
    """``make(partitions=1) -> name``: creates a fresh topic, deleted when the test ends."""
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        name = unique_name(request, "lw-test")
        admin_topic = NewTopic(name=name, num_partitions=partitions, replication_factor=1)
        kafka_admin.create_topics([admin_topic], timeout_ms=30_000)
        created.append(name)
        kafka_admin.wait_for_topics([name], timeout_ms=30_000)
        return name

    yield make
    _delete_topics(kafka_admin, created)


@pytest.fixture
def kafka_topic(request: pytest.FixtureRequest, kafka_admin: KafkaAdminClient) -> Iterator[str]:
    """A unique topic name, not created (the broker auto-creates it); deleted when the test ends."""
    name = unique_name(request, "lw-test")
    yield name
    if name in kafka_admin.list_topics():
        _delete_topics(kafka_admin, [name])


@pytest.fixture
def kafka_group_id(request: pytest.FixtureRequest, kafka_admin: KafkaAdminClient) -> Iterator[str]:
    """A unique consumer group id; the group is deleted when the test ends (its consumers closed)."""
    group_id = unique_name(request, "lw-test-group")
    yield group_id
    # Reports (does not raise) a group that never committed anything; cleanup must not fail the test.
    with contextlib.suppress(KafkaError):
        kafka_admin.delete_groups([group_id])


# ------------------------------------------------------------------------------------ Elasticsearch
@pytest.fixture(scope="session")
def es_url(request: pytest.FixtureRequest) -> str:
    """URL of an Elasticsearch node of the expected major whose cluster health is at least yellow.

    The 9.x server unless the test is parametrized with :data:`both_es_servers`. The major is checked so
    that a mistyped URL cannot quietly test the same server twice.
    """
    name = getattr(request, "param", "es9")
    var, default, want = ES_SERVERS[name]
    url = os.environ.get(var, default)
    probe = make_es_client(url, timeout=15, max_retries=0)
    try:
        major = server_major(probe)
        probe.cluster.health(wait_for_status="yellow", timeout="10s")
    except (TransportError, ApiError, LogwardenError) as exc:
        unavailable(f"Elasticsearch {want}.x is not reachable at {url} ({type(exc).__name__}: {exc})")
    finally:
        probe.close()
    if major != want:
        pytest.fail(f"{var}={url} is Elasticsearch {major}.x, expected {want}.x", pytrace=False)
    return url


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Iterator[Elasticsearch]:
    """A client as Logwarden builds it (media types pinned to the server's major)."""
    client = make_es_client(es_url, timeout=60)
    yield client
    client.close()


@pytest.fixture
def es_index(request: pytest.FixtureRequest, es_client: Elasticsearch) -> Iterator[str]:
    """A unique index name, not created; the index is deleted when the test ends."""
    name = unique_name(request, "lw-test")
    yield name
    es_client.options(ignore_status=404).indices.delete(index=name)


# ---------------------------------------------------------------------------------------- OpenSearch
@pytest.fixture(scope="session", params=list(OPENSEARCH_SERVERS))
def opensearch_url(request: pytest.FixtureRequest) -> str:
    """URL of an OpenSearch node of the expected major whose cluster health is at least yellow (each of
    :data:`OPENSEARCH_SERVERS` in turn: tests using it run once per OpenSearch major)."""
    from pipeline.sinks.opensearch.client import TransportError, make_os_client, server_version  # noqa: PLC0415

    var, default, want = OPENSEARCH_SERVERS[request.param]
    url = os.environ.get(var, default)
    probe = make_os_client(url, timeout=15, max_retries=0)
    try:
        version = server_version(probe)
        # opensearch-py takes a `timeout` param as the request's own unless that is given explicitly.
        probe.transport.perform_request("GET", "/_cluster/health", params={"wait_for_status": "yellow",
                                                                           "timeout": "10s"}, timeout=15)
    except (TransportError, LogwardenError) as exc:
        unavailable(f"OpenSearch {want}.x is not reachable at {url} ({type(exc).__name__}: {exc})")
    finally:
        probe.close()
    if int(version.partition(".")[0]) != want:
        pytest.fail(f"{var}={url} is OpenSearch {version}, expected {want}.x", pytrace=False)
    return url


@pytest.fixture(scope="session")
def os_client(opensearch_url: str) -> Iterator[Any]:
    """An opensearch-py client as Logwarden builds it."""
    from pipeline.sinks.opensearch.client import make_os_client  # noqa: PLC0415

    client = make_os_client(opensearch_url, timeout=60)
    yield client
    client.close()


def drop_prefix(client: Any, prefix: str) -> None:
    """Delete the indices, data stream and index template of an anomaly prefix, on either server.

    The test servers refuse wildcard deletes (``action.destructive_requires_name``): each index is named.
    """
    name = f"{prefix}-anomalies"
    if isinstance(client, Elasticsearch):
        es = client.options(ignore_status=404)
        found = es.indices.get(index=f"{name}*", expand_wildcards="all", allow_no_indices=True)
        indices = sorted(found.body) if found.meta.status == 200 else []
        if indices:
            es.indices.delete(index=",".join(indices))
        es.indices.delete_index_template(name=name)
        return
    found = client.indices.get(index=f"{name}*", expand_wildcards="all", allow_no_indices=True, ignore=404)
    streams = client.indices.get_data_stream(name=name, ignore=(400, 404)).get("data_streams", [])  # 400: an alias
    if streams:
        client.indices.delete_data_stream(name=name)
    indices = sorted(i for i in found if not i.startswith(".ds-")) if "error" not in found else []
    if indices:
        client.indices.delete(index=",".join(indices), ignore=404)
    client.indices.delete_index_template(name=name, ignore=404)


@pytest.fixture
def os_prefix(request: pytest.FixtureRequest, os_client: Any) -> Iterator[str]:
    """A unique index prefix on OpenSearch; its indices, data stream and template are deleted afterwards."""
    prefix = unique_name(request, "lw-test")
    yield prefix
    drop_prefix(os_client, prefix)


# ---------------------------------------------------------------------------------- secured servers
@dataclass(frozen=True)
class SecureKafka:
    """The secured broker of ``scripts/services up kafka-secure``: SASL_SSL (SCRAM-SHA-512) and SSL (client
    certificate) listeners, the CA that signed them, a SCRAM user and a client certificate."""

    sasl_bootstrap: str
    ssl_bootstrap: str
    ca_file: str
    client_cert: str
    client_key: str
    username: str
    password: str

    def sasl_env(self, **overrides: str) -> dict[str, str]:
        """The LOGWARDEN_KAFKA_* variables a user sets for the SASL_SSL listener."""
        return {"LOGWARDEN_KAFKA_BOOTSTRAP": self.sasl_bootstrap, "LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "LOGWARDEN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LOGWARDEN_KAFKA_SASL_USERNAME": self.username,
                "LOGWARDEN_KAFKA_SASL_PASSWORD": self.password, "LOGWARDEN_KAFKA_SSL_CAFILE": self.ca_file,
                **overrides}

    def ssl_env(self, **overrides: str) -> dict[str, str]:
        """The LOGWARDEN_KAFKA_* variables for the SSL listener (mutual TLS)."""
        return {"LOGWARDEN_KAFKA_BOOTSTRAP": self.ssl_bootstrap, "LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SSL",
                "LOGWARDEN_KAFKA_SSL_CAFILE": self.ca_file, "LOGWARDEN_KAFKA_SSL_CERTFILE": self.client_cert,
                "LOGWARDEN_KAFKA_SSL_KEYFILE": self.client_key, **overrides}

    def admin_config(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.sasl_bootstrap, "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": self.username,
                "sasl_plain_password": self.password, "ssl_cafile": self.ca_file}


@dataclass(frozen=True)
class SecureElasticsearch:
    """The secured node of ``scripts/services up elasticsearch-secure``: https with its own CA, a superuser."""

    url: str
    ca_file: str
    username: str
    password: str

    def admin(self) -> Elasticsearch:
        return make_es_client(self.url, username=self.username, password=self.password, ca_certs=self.ca_file,
                              timeout=30)


def services_dir() -> Path:
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("LOGWARDEN_SERVICES_DIR", root / ".services"))


def client_env(service: str) -> dict[str, str]:
    """The KEY=VALUE lines scripts/services wrote for a secured service's clients (empty when absent)."""
    path = services_dir() / service / "client" / "client.env"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.fixture(scope="session")
def secure_kafka() -> SecureKafka:
    """The secured broker, after a SASL_SSL metadata round trip; skipped locally, a failure under CI."""
    found = client_env("kafka-secure")
    if not found:
        unavailable(f"no secured Kafka (no {services_dir() / 'kafka-secure/client/client.env'}; "
                    "scripts/services up kafka-secure)")
    kafka = SecureKafka(found["SASL_BOOTSTRAP"], found["SSL_BOOTSTRAP"], found["CA_FILE"], found["CLIENT_CERT"],
                        found["CLIENT_KEY"], found["USERNAME"], found["PASSWORD"])
    host, _, port = kafka.sasl_bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        admin = KafkaAdminClient(**kafka.admin_config(), client_id="logwarden-tests-probe", request_timeout_ms=10_000)
        try:
            admin.describe_cluster()
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError) as exc:
        unavailable(f"the secured Kafka is not reachable at {kafka.sasl_bootstrap} ({type(exc).__name__}: {exc})")
    return kafka


@pytest.fixture(scope="session")
def secure_es() -> SecureElasticsearch:
    """The secured Elasticsearch, after an authenticated health check over verified TLS."""
    found = client_env("elasticsearch-secure")
    if not found:
        unavailable(f"no secured Elasticsearch (no {services_dir() / 'elasticsearch-secure/client/client.env'}; "
                    "scripts/services up elasticsearch-secure)")
    es = SecureElasticsearch(found["URL"], found["CA_FILE"], found["USERNAME"], found["PASSWORD"])
    probe = es.admin()
    try:
        probe.cluster.health(wait_for_status="yellow", timeout="10s")
    except (TransportError, ApiError, LogwardenError) as exc:
        unavailable(f"the secured Elasticsearch is not reachable at {es.url} ({type(exc).__name__}: {exc})")
    finally:
        probe.close()
    return es
