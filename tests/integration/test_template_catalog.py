"""The template catalog ``<prefix>-templates`` on the real Elasticsearch: concurrent writers add up exactly (no
scripts: optimistic concurrency), ``train --es-url`` records the model's vocabulary, and a worker that read a
stream leaves every template of its anomalies findable by id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.records import TemplateMatch
from pipeline.sinks.elasticsearch.catalog import TemplateCatalog, catalog_index, setup_catalog
from tests.integration.conftest import both_es_servers, unique_name
from tests.integration.worker_support import (
    HDFS_FORMAT,
    SAMPLE,
    Rig,
    cleanup,  # noqa: F401 - fixture
    cli,
    expected,
    indexed,
    rig,  # noqa: F401 - fixture
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(request: pytest.FixtureRequest, es_client: Elasticsearch) -> Iterator[str]:
    name = unique_name(request, "lw-test")
    yield name
    es_client.options(ignore_status=404).indices.delete(index=catalog_index(name))


def _catalog(es: Elasticsearch, prefix: str) -> dict[str, dict]:
    es.indices.refresh(index=catalog_index(prefix))
    hits = es.search(index=catalog_index(prefix), size=10_000, query={"match_all": {}})["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


@both_es_servers
def test_concurrent_writers_add_up_exactly(es_client: Elasticsearch, prefix: str) -> None:
    assert setup_catalog(es_client, prefix) == "created"
    assert setup_catalog(es_client, prefix) == "exists"
    writers = [TemplateCatalog(es_client, prefix, f"v{n}") for n in range(4)]
    ids = [f"T{n:010x}" for n in range(30)]

    def work(catalog: TemplateCatalog) -> None:
        for _ in range(5):
            for tid in ids:
                catalog.observe(TemplateMatch(tid, f"template {tid} <*>", known=tid != ids[0]))
            catalog.flush(max_batch=7)
            while catalog.pending:
                catalog.flush(max_batch=7)

    threads = [threading.Thread(target=work, args=(c,)) for c in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    docs = _catalog(es_client, prefix)
    assert set(docs) == set(ids)
    assert all(doc["count"] == 4 * 5 for doc in docs.values()), {d["count"] for d in docs.values()}
    assert sorted(docs[ids[1]]["model_versions"]) == ["v0", "v1", "v2", "v3"]
    assert docs[ids[0]]["model_versions"] == [] and docs[ids[0]]["known"] is False
    assert docs[ids[1]]["first_seen"] <= docs[ids[1]]["last_seen"]
    # A template id from an anomaly is one term query away (what a Kibana lookup does).
    found = es_client.search(index=catalog_index(prefix), query={"term": {"template_id": ids[5]}})
    assert found["hits"]["hits"][0]["_source"]["template"] == f"template {ids[5]} <*>"


def test_train_records_its_vocabulary_and_a_worker_its_templates(rig: Rig, tmp_path: Path) -> None:  # noqa: F811
    want = expected()
    rig.partitions = 2
    es_url, es_client, topic = rig.es_url, rig.es, rig.topic
    # train --es-url: the vocabulary of the new version, all known by it.
    model_dir = tmp_path / "model"
    done = cli("train", str(SAMPLE), "--model-dir", str(model_dir), "--log-format", HDFS_FORMAT,
               "--entity-regex", r"blk_-?\d+", "--session-gap", "60s", "--allowed-lateness", "5s",
               "--es-url", es_url, "--index-prefix", topic)
    version = (model_dir / "CURRENT").read_text().strip()
    assert f"template catalog {topic}-templates" in done.stderr
    vocabulary = json.loads((model_dir / "versions" / version / "features.json").read_text())["vocabulary"]
    docs = _catalog(es_client, topic)
    assert set(docs) == set(vocabulary)
    assert all(doc["known"] and doc["model_versions"] == [version] for doc in docs.values())

    try:
        rig.replay()
        worker = rig.start("worker", "--exit-when-idle", "4s", "--template-catalog-interval", "1s", model_dir=model_dir)
        wait_for("the catalog to be written while the worker runs",
                 lambda: sum(d.get("count", 0) for d in _catalog(es_client, topic).values()) > 0, 120)
        assert worker.wait(240) == 0, worker.text()[-3000:]
        anomalies = indexed(es_client, topic)
        assert len(anomalies) == len(want.ids)
        docs = _catalog(es_client, topic)
        in_anomalies = {t["id"] for doc in anomalies.values() for t in doc["templates"]}
        assert in_anomalies and in_anomalies <= set(docs)
        # Every line was tagged once (no restart, no replay) and the final flush at exit wrote the rest.
        assert sum(doc["count"] for doc in docs.values()) == want.lines
        for doc in docs.values():
            assert doc["model_versions"] == [version] and doc["known"] is True
            assert doc["first_seen"] <= doc["last_seen"]
    finally:
        es_client.options(ignore_status=404).indices.delete(index=catalog_index(topic))
