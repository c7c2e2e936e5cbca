"""Secured deployments, for real: Kafka over SASL_SSL (SCRAM-SHA-512) and SSL (client certificates), an
Elasticsearch with TLS on HTTP and users, the least-privilege worker role, and no secret in anything a run
writes.

The servers are ``scripts/services up kafka-secure elasticsearch-secure`` (fixtures ``secure_kafka`` and
``secure_es``); their CAs are made when they start, the Elasticsearch users (``worker`` with
``deploy/elasticsearch/worker-role.yml``'s role, ``noindex`` with that role minus ``index``) may write only
under index prefixes ``lw-secure-*``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from tests.integration.conftest import SecureElasticsearch, SecureKafka, client_env, drop_prefix
from tests.integration.worker_support import (
    ENTITY_REGEX,
    HDFS_FORMAT,
    REPO_ROOT,
    SAMPLE,
    expected,
    free_port,
    indexed,
)

pytestmark = pytest.mark.integration
_STRIP = ("LOGWARDEN_KAFKA_", "LOGWARDEN_ES_")


def run_env(**variables: str) -> dict[str, str]:
    """This process's environment without any LOGWARDEN_KAFKA_*/ES_* setting, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP)}
    return {**env, **variables}


def logwarden(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run failed with exit status 2 and one ``logwarden: error:`` line holding every needle."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("logwarden: error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def secure_topics(secure_kafka: SecureKafka) -> Iterator[list[str]]:
    """Topic names (to create or let the tools create) on the secured broker; deleted afterwards."""
    names: list[str] = []
    yield names
    admin = KafkaAdminClient(**secure_kafka.admin_config(), client_id="logwarden-tests-cleanup")
    try:
        doomed = [t for t in names if t in set(admin.list_topics())]
        if doomed:
            with contextlib.suppress(KafkaError):
                admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()


def _secrets(kafka: SecureKafka, es: SecureElasticsearch, worker_password: str) -> dict[str, str]:
    """Every secret of a run, and the forms it could leak in (the basic-auth header of the ES user)."""
    basic = base64.b64encode(f"worker:{worker_password}".encode()).decode()
    return {"kafka password": kafka.password, "es password": worker_password, "es basic auth": basic,
            "es admin password": es.password}


def test_worker_replay_and_train_over_tls_and_sasl_with_the_least_privilege_role_leak_no_secret(
    secure_kafka: SecureKafka, secure_es: SecureElasticsearch, secure_topics: list[str], tmp_path: Path,
) -> None:
    """`replay` over SASL_SSL, `train --source kafka:` over SSL with a client certificate, and the worker over
    SASL_SSL into the secured Elasticsearch as the `worker` user (deploy/elasticsearch/worker-role.yml): the
    worker indexes exactly what `detect` finds, and no password shows in anything the run wrote."""
    want = expected()
    creds = client_env("elasticsearch-secure")
    topic = f"lw-secure-{uuid.uuid4().hex[:10]}"
    group = f"{topic}-group"
    secure_topics += [topic, f"{topic}.dlq", f"{group}.logwarden-state"]
    prefix = topic  # the worker role may write lw-secure-*-anomalies* and lw-secure-*-templates only
    sasl = secure_kafka.sasl_env()
    es_env = {"LOGWARDEN_ES_USERNAME": creds["WORKER_USERNAME"], "LOGWARDEN_ES_PASSWORD": creds["WORKER_PASSWORD"],
              "LOGWARDEN_ES_CA_CERTS": secure_es.ca_file}
    outputs: dict[str, str] = {}
    admin = secure_es.admin()
    try:
        sent = logwarden("replay", str(SAMPLE), "--topic", topic, "--key-regex", ENTITY_REGEX, "--partitions", "4",
                         env=run_env(**sasl))
        assert sent.returncode == 0, sent.stderr[-2000:]
        outputs["replay"] = sent.stdout + sent.stderr
        assert json.loads(sent.stderr.strip().splitlines()[-1])["lines"] == want.lines
        # Two records the worker must dead-letter (invalid UTF-8): the dead-letter topic is searched too.
        producer = KafkaProducer(**secure_kafka.admin_config())
        for n in range(2):
            producer.send(topic, key=b"blk_poison", value=b"081109 203615 148 INFO bad \xff\xfe line %d" % n)
        producer.flush()
        producer.close()

        model_dir = tmp_path / "kafka-model"
        trained = logwarden("train", "--source", f"kafka:{topic}", "--model-dir", str(model_dir), "--log-format",
                            HDFS_FORMAT, "--entity-regex", ENTITY_REGEX, "--session-gap", "60s",
                            "--allowed-lateness", "5s", env=run_env(**secure_kafka.ssl_env()))
        assert trained.returncode == 0, trained.stderr[-2000:]
        outputs["train"] = trained.stdout + trained.stderr
        current = (model_dir / "CURRENT").read_text().strip()
        manifest = (model_dir / "versions" / current / "manifest.json").read_text()
        outputs["manifest"] = manifest
        assert json.loads(manifest)["stats"]["kafka"]["read"] == want.lines + 2

        port = free_port()
        log_path = tmp_path / "worker.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker", "--json-logs", "--metrics-port", str(port),
                 "--topic", topic, "--group-id", group, "--index-prefix", prefix, "--es-url", secure_es.url,
                 "--es-compat", "9", "--model-dir", str(want.model_dir), "--session-timeout", "6s",
                 "--commit-interval", "1s", "--exit-when-idle", "4s", "--log-level", "DEBUG"],
                cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=run_env(**sasl, **es_env))
            metrics = ""
            deadline = time.monotonic() + 180
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError), \
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    metrics = response.read().decode()
                time.sleep(1)
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        outputs["worker log"] = log_path.read_text(errors="replace")
        outputs["metrics"] = metrics
        assert code == 0, outputs["worker log"][-3000:]
        assert f'logwarden_worker_records_total{{topic="{topic}"}} {float(want.lines + 2)}' in metrics

        docs = indexed(admin, prefix)
        assert set(docs) == want.ids
        for key, doc in docs.items():
            assert doc["anomaly"]["score"] == want.docs[key]["anomaly"]["score"]
        outputs["elasticsearch documents"] = json.dumps(list(docs.values()))
        admin.indices.refresh(index=f"{prefix}-templates")  # written at the worker's stop: searchable after a refresh
        catalog = admin.search(index=f"{prefix}-templates", size=1000)
        assert catalog["hits"]["hits"], "the worker wrote no template catalog"
        outputs["template catalog"] = json.dumps(catalog.body)

        dead = KafkaConsumer(f"{topic}.dlq", **secure_kafka.admin_config(), group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
        letters = list(dead)
        dead.close()
        assert len(letters) == 2, "the invalid UTF-8 records were not dead-lettered"
        outputs["dead letters"] = repr([(r.key, r.value, r.headers) for r in letters])
    finally:
        drop_prefix(admin, prefix)
        admin.options(ignore_status=404).indices.delete(index=f"{prefix}-templates")
        admin.close()

    for what, secret in _secrets(secure_kafka, secure_es, creds["WORKER_PASSWORD"]).items():
        for name, text in outputs.items():
            assert secret not in text, f"the {what} appears in the {name}"


def _ca_of_the_other_server() -> str:
    """A CA that signed nothing the broker presents: the secured Elasticsearch's (made at its start)."""
    other = client_env("elasticsearch-secure").get("CA_FILE")
    assert other and Path(other).is_file(), "the secured Elasticsearch's CA is needed as a wrong CA"
    return other


@pytest.mark.parametrize("mistake", ["wrong CA", "wrong password", "no client certificate"])
def test_kafka_security_mistakes_are_one_line_for_worker_replay_and_train(
    secure_kafka: SecureKafka, secure_topics: list[str], tmp_path: Path, mistake: str,
) -> None:
    """An untrusted broker certificate, a wrong SCRAM password, or an SSL listener's missing client
    certificate: `worker`, `replay` and `train --source kafka:` each stop with exit status 2 and one line
    that says what is wrong, before a record is read or sent, and never print the password."""
    topic = f"lw-secure-{uuid.uuid4().hex[:10]}"
    secure_topics.append(topic)
    admin = KafkaAdminClient(**secure_kafka.admin_config(), client_id="logwarden-tests")
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=30_000)
    admin.close()
    env, needle = {
        "wrong CA": (secure_kafka.sasl_env(LOGWARDEN_KAFKA_SSL_CAFILE=_ca_of_the_other_server()),
                     "the broker's certificate is not trusted"),
        "wrong password": (secure_kafka.sasl_env(LOGWARDEN_KAFKA_SASL_PASSWORD="not-the-password"),
                           "refused the SASL SCRAM-SHA-512 login of user 'logwarden'"),
        "no client certificate": ({k: v for k, v in secure_kafka.ssl_env().items()
                                   if k not in ("LOGWARDEN_KAFKA_SSL_CERTFILE", "LOGWARDEN_KAFKA_SSL_KEYFILE")},
                                  "refused the client certificate"),
    }[mistake]
    model = expected().model_dir
    runs = {
        "replay": ("replay", str(SAMPLE), "--topic", topic),
        "train": ("train", "--source", f"kafka:{topic}", "--model-dir", str(tmp_path / "m"), "--log-format",
                  HDFS_FORMAT, "--entity-regex", ENTITY_REGEX),
        "worker": ("worker", "--topic", topic, "--model-dir", str(model), "--exit-when-idle", "2s"),
    }
    for name, args in runs.items():
        started = time.monotonic()
        done = logwarden(*args, env=run_env(**env), timeout=120)
        line = one_error_line(done, needle)
        assert secure_kafka.password not in done.stderr + done.stdout, name
        assert time.monotonic() - started < 60, f"{name} took {time.monotonic() - started:.0f} s to fail: {line}"
    # Nothing was sent.
    consumer = KafkaConsumer(topic, **secure_kafka.admin_config(), group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=3_000)
    assert list(consumer) == []
    consumer.close()


# ------------------------------------------------------------------------------------ Elasticsearch
def test_es_setup_verifies_certificates_and_credentials(secure_es: SecureElasticsearch) -> None:
    """https is verified against --ca-certs; without it, or with a wrong password, one line; the
    unverified opt-out works only when named and says so loudly."""
    prefix = f"lw-secure-{uuid.uuid4().hex[:10]}"
    user = {"LOGWARDEN_ES_USERNAME": secure_es.username, "LOGWARDEN_ES_PASSWORD": secure_es.password}
    admin = secure_es.admin()
    try:
        good = logwarden("es-setup", "--es-url", secure_es.url, "--index-prefix", prefix, "--ca-certs",
                         secure_es.ca_file, env=run_env(**user))
        assert good.returncode == 0, good.stderr
        assert f"index template {prefix}-anomalies: created" in good.stdout
        assert "OFF" not in good.stderr

        untrusted = logwarden("es-setup", "--es-url", secure_es.url, "--index-prefix", prefix, env=run_env(**user))
        one_error_line(untrusted, "certificate verify failed", "LOGWARDEN_ES_CA_CERTS")

        wrong = logwarden("es-setup", "--es-url", secure_es.url, "--index-prefix", prefix, "--ca-certs",
                          secure_es.ca_file, env=run_env(LOGWARDEN_ES_USERNAME=secure_es.username,
                                                         LOGWARDEN_ES_PASSWORD="not-the-password"))
        one_error_line(wrong, "refused the credentials (401")
        assert "not-the-password" not in wrong.stderr

        unverified = logwarden("es-setup", "--es-url", secure_es.url, "--index-prefix", prefix,
                               "--es-insecure-skip-verify", env=run_env(**user))
        assert unverified.returncode == 0, unverified.stderr
        assert "TLS certificate verification is OFF for Elasticsearch" in unverified.stderr
        assert f"index template {prefix}-anomalies: unchanged" in unverified.stdout

        in_url = logwarden("es-setup", "--es-url", secure_es.url.replace("https://", f"https://admin:{secure_es.password}@"),
                           "--ca-certs", secure_es.ca_file, env=run_env())
        one_error_line(in_url, "must not hold a password")
        assert secure_es.password not in in_url.stderr
    finally:
        drop_prefix(admin, prefix)
        admin.close()


def _replayed_sample(secure_kafka: SecureKafka, secure_topics: list[str]) -> tuple[str, str]:
    """A new topic (and its group) holding the sample, sent by `replay` over SASL_SSL; removed after the test."""
    topic = f"lw-secure-{uuid.uuid4().hex[:10]}"
    group = f"{topic}-group"
    secure_topics += [topic, f"{topic}.dlq", f"{group}.logwarden-state"]
    sent = logwarden("replay", str(SAMPLE), "--topic", topic, "--key-regex", ENTITY_REGEX, "--partitions", "2",
                     env=run_env(**secure_kafka.sasl_env()))
    assert sent.returncode == 0, sent.stderr[-2000:]
    return topic, group


def test_worker_without_the_index_privilege_stops_with_one_clear_line(
    secure_kafka: SecureKafka, secure_es: SecureElasticsearch, secure_topics: list[str],
) -> None:
    """The `noindex` user has the worker role minus `index`: the worker asks Elasticsearch what its user may
    do before it reads a record and stops with one line naming the missing privilege (a bulk request refused
    later would only pause it, as an outage does)."""
    want = expected()
    creds = client_env("elasticsearch-secure")
    topic, group = _replayed_sample(secure_kafka, secure_topics)
    admin = secure_es.admin()
    try:
        done = logwarden("worker", "--topic", topic, "--group-id", group, "--index-prefix", topic, "--es-url",
                         secure_es.url, "--es-compat", "9", "--model-dir", str(want.model_dir), "--session-timeout",
                         "6s", "--commit-interval", "1s", "--exit-when-idle", "4s", timeout=120,
                         env=run_env(**secure_kafka.sasl_env(), LOGWARDEN_ES_USERNAME=creds["NOINDEX_USERNAME"],
                                     LOGWARDEN_ES_PASSWORD=creds["NOINDEX_PASSWORD"],
                                     LOGWARDEN_ES_CA_CERTS=secure_es.ca_file))
        one_error_line(done, "lacks privileges the worker needs: index on", f"{topic}-anomalies-*",
                       "docs/security.md")
        assert creds["NOINDEX_PASSWORD"] not in done.stderr
        assert indexed(admin, topic) == {}
    finally:
        drop_prefix(admin, topic)
        admin.options(ignore_status=404).indices.delete(index=f"{topic}-templates")
        admin.close()


def _worker_role(prefix: str) -> dict[str, Any]:
    """deploy/elasticsearch/worker-role.yml's role, its index names rewritten to ``prefix`` (as the file says)."""
    role = yaml.safe_load((REPO_ROOT / "deploy" / "elasticsearch" / "worker-role.yml").read_text())["logwarden_worker"]
    for entry in role["indices"]:
        entry["names"] = [name.replace("logwarden-", f"{prefix}-", 1) for name in entry["names"]]
    return dict(role)


def test_worker_with_an_api_key_of_the_worker_role_indexes_and_an_invalidated_key_is_one_line(
    secure_kafka: SecureKafka, secure_es: SecureElasticsearch, secure_topics: list[str],
) -> None:
    """An API key the superuser made with deploy/elasticsearch/worker-role.yml's privileges (names for this
    prefix), given as LOGWARDEN_ES_API_KEY: the worker checks its privileges, indexes exactly what `detect`
    finds, and the key shows in nothing the run wrote. Once invalidated, the same key stops the worker
    with one line that names the setting and not the key."""
    want = expected()
    topic, group = _replayed_sample(secure_kafka, secure_topics)
    admin = secure_es.admin()
    key_id = ""
    try:
        made = admin.security.create_api_key(name=f"{topic}-worker",
                                             role_descriptors={"logwarden_worker": _worker_role(topic)})
        key_id, encoded = str(made["id"]), str(made["encoded"])
        secrets = {"encoded API key": encoded, "API key secret": str(made["api_key"])}
        args = ("worker", "--topic", topic, "--group-id", group, "--index-prefix", topic, "--es-url", secure_es.url,
                "--es-compat", "9", "--model-dir", str(want.model_dir), "--session-timeout", "6s",
                "--commit-interval", "1s", "--exit-when-idle", "4s", "--log-level", "DEBUG")
        env = run_env(**secure_kafka.sasl_env(), LOGWARDEN_ES_API_KEY=encoded, LOGWARDEN_ES_CA_CERTS=secure_es.ca_file)
        done = logwarden(*args, env=env, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        docs = indexed(admin, topic)
        assert set(docs) == want.ids
        for key, doc in docs.items():
            assert doc["anomaly"]["score"] == want.docs[key]["anomaly"]["score"]
        admin.indices.refresh(index=f"{topic}-templates")  # written at the worker's stop: searchable after a refresh
        catalog = admin.search(index=f"{topic}-templates", size=1000)
        assert catalog["hits"]["hits"], "the worker wrote no template catalog"
        outputs = {"worker output": done.stdout + done.stderr, "template catalog": json.dumps(catalog.body),
                   "elasticsearch documents": json.dumps(list(docs.values()))}

        assert admin.security.invalidate_api_key(ids=[key_id])["invalidated_api_keys"] == [key_id]
        refused = logwarden(*args, env=env, timeout=120)
        one_error_line(refused, "refused the credentials (401", "LOGWARDEN_ES_API_KEY")
        outputs["refused worker output"] = refused.stdout + refused.stderr
    finally:
        if key_id:
            admin.options(ignore_status=404).security.invalidate_api_key(ids=[key_id])
        drop_prefix(admin, topic)
        admin.options(ignore_status=404).indices.delete(index=f"{topic}-templates")
        admin.close()
    for what, secret in secrets.items():
        for name, text in outputs.items():
            assert secret not in text, f"the {what} appears in the {name}"
