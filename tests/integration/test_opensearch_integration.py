"""OpenSearch against the real 2.x and 3.x nodes from ``scripts/services`` (integ-test zips: no security
plugin, no ISM, no analysis-common; the default layout must work without them): a bulk smoke test with
opensearch-py, ``es-setup --sink opensearch``, and the OpenSearch sink. Every test runs once per node
(the ``opensearch_url`` fixture is parametrized)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli.app import cli
from pipeline.scoring import document_id
from pipeline.sinks.anomaly_index import alias_name
from tests.fakes import anomaly_doc, as_document, hostile_anomaly_docs

pytestmark = pytest.mark.integration

N_DOCS = 10_000
DAYS = ("2015-10-17T22:00:00.000Z", "2015-10-18T09:30:00.000Z", "2015-10-19T23:59:59.000Z")


def count(client: Any, index: str, query: dict | None = None) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index, body={"query": query or {"match_all": {}}})["count"])


def sink_for(url: str, prefix: str, **kwargs: Any) -> Any:
    from pipeline.sinks.opensearch.bulk import OpenSearchSink  # noqa: PLC0415
    from pipeline.sinks.opensearch.client import make_os_client  # noqa: PLC0415

    return OpenSearchSink(make_os_client(url), prefix, owns_client=True, **kwargs)


def test_smoke_bulk_index_and_count(os_client: Any, os_prefix: str) -> None:
    from opensearchpy import helpers  # noqa: PLC0415

    index = f"{os_prefix}-anomalies-smoke"
    os_client.indices.create(index=index, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"seq": {"type": "long"}, "entity": {"type": "keyword"},
                                    "message": {"type": "text"}, "@timestamp": {"type": "date"}}}})
    actions = ({"_index": index, "_id": str(i), "seq": i, "entity": f"host-{i % 17}", "message": f"window {i} closed",
                "@timestamp": 1_700_000_000_000 + i * 1000} for i in range(N_DOCS))
    ok, errors = helpers.bulk(os_client, actions, chunk_size=2000, raise_on_error=False)
    assert (ok, errors) == (N_DOCS, [])
    assert count(os_client, index) == N_DOCS
    assert count(os_client, index, {"range": {"seq": {"gte": N_DOCS // 2}}}) == N_DOCS // 2
    assert count(os_client, index, {"term": {"entity": "host-3"}}) == len(range(3, N_DOCS, 17))
    ok_again, _ = helpers.bulk(os_client, ({"_index": index, "_id": str(i), "seq": i} for i in range(100)))
    assert ok_again == 100
    assert count(os_client, index) == N_DOCS  # same ids overwrite


def test_es_setup_twice_is_idempotent_and_maps_the_document(opensearch_url: str, os_client: Any,
                                                             os_prefix: str) -> None:
    args = ["es-setup", "--sink", "opensearch", "--es-url", opensearch_url, "--index-prefix", os_prefix]
    first = CliRunner().invoke(cli, args)
    second = CliRunner().invoke(cli, args)
    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    name = alias_name(os_prefix)
    today = f"{name}-{datetime.now(UTC):%Y.%m.%d}"
    assert first.output.startswith("OpenSearch ") and first.output.split()[1][0] in "23"
    assert f"index template {name}: created" in first.output
    assert f"index template {name}: unchanged" in second.output
    assert f"index {today}: exists" in second.output
    mapping = os_client.indices.get_mapping(index=today)[today]["mappings"]
    assert mapping["dynamic"] == "false"
    props = mapping["properties"]
    assert props["entity"]["properties"]["id"]["type"] == "keyword"
    assert props["window"]["properties"]["start"]["type"] == "date"
    assert props["templates"]["properties"]["template"]["type"] == "text"
    assert props["log"]["properties"]["count"]["type"] == "integer"
    assert list(os_client.indices.get_alias(name=name)) == [today]
    health = os_client.transport.perform_request("GET", f"/_cluster/health/{today}",
                                                 params={"wait_for_status": "green", "timeout": "10s"}, timeout=15)
    assert health["status"] == "green"  # auto_expand_replicas 0-1: green on the single test node


def test_lifecycle_without_ism_and_the_wrong_sink_are_one_line_errors(opensearch_url: str, os_prefix: str) -> None:
    ilm = CliRunner().invoke(cli, ["es-setup", "--sink", "opensearch", "--es-url", opensearch_url,
                                   "--index-prefix", os_prefix, "--ilm"])
    assert ilm.exit_code == 2
    assert ilm.output.strip().startswith("logwarden: error: a lifecycle policy (--ilm) was requested but this "
                                         "OpenSearch has no Index State Management plugin")
    wrong = CliRunner().invoke(cli, ["es-setup", "--es-url", opensearch_url, "--index-prefix", os_prefix])
    assert wrong.exit_code == 2
    [line] = wrong.output.strip().splitlines()
    assert line.startswith("logwarden: error: the server is OpenSearch ")
    assert line.endswith(", not Elasticsearch: use --sink opensearch")


def test_sink_replays_overwrite_bad_documents_are_rejected_and_fields_query(opensearch_url: str, os_client: Any,
                                                                            os_prefix: str) -> None:
    sink = sink_for(opensearch_url, os_prefix)
    assert sink.setup_layout()[f"index template {alias_name(os_prefix)}"] == "created"
    def batch_of_30() -> list[dict[str, Any]]:
        return [anomaly_doc(f"blk_{i}", start=DAYS[i % 3], template_ids=("t-a", "t-b") if i % 2 else ("t-b",))
                for i in range(30)]

    batch = batch_of_30()
    bad = anomaly_doc("blk_bad", count="lots")
    for doc in [*batch, bad]:
        sink.add(as_document(doc))
    result = sink.flush()
    assert result.indexed == 30
    [(document, reason)] = result.rejected
    assert document.body is bad
    assert reason.startswith("400 mapper_parsing_exception") and "log.count" in reason
    for doc in batch_of_30():  # a replay after a crash: equal documents, new objects
        sink.add(as_document(doc))
    assert sink.flush().indexed == 30
    sink.close()
    name = alias_name(os_prefix)
    assert count(os_client, name) == 30
    hits = os_client.search(index=name, body={"size": 100, "_source": False})["hits"]["hits"]
    assert {h["_id"] for h in hits} == {document_id(d) for d in batch}
    members = set(os_client.indices.get_alias(name=name))
    assert {f"{name}-2015.10.17", f"{name}-2015.10.18", f"{name}-2015.10.19"} <= members
    # What Dashboards' DQL `templates.id: "t-a"` sends for a keyword field; terms aggregations on object arrays.
    assert count(os_client, name, {"query_string": {"query": 'templates.id:"t-a"'}}) == 15
    assert count(os_client, name, {"match": {"templates.template": "receiving"}}) == 30
    aggs = os_client.search(index=name, body={"size": 0, "aggs": {"t": {"terms": {"field": "templates.id"}}}})
    assert {b["key"]: b["doc_count"] for b in aggs["aggregations"]["t"]["buckets"]} == {"t-a": 15, "t-b": 30}


def test_data_stream_layout_and_create_replays(opensearch_url: str, os_client: Any, os_prefix: str) -> None:
    result = CliRunner().invoke(cli, ["es-setup", "--sink", "opensearch", "--es-url", opensearch_url,
                                      "--index-prefix", os_prefix, "--data-stream"])
    assert result.exit_code == 0, result.output
    assert f"data stream {alias_name(os_prefix)}: created" in result.output
    sink = sink_for(opensearch_url, os_prefix, data_stream=True)
    batch = [anomaly_doc(f"blk_{i}") for i in range(5)]
    for doc in batch:
        sink.add(as_document(doc))
    assert sink.flush().indexed == 5
    for doc in batch:  # the same ids again: 409 on create, counted as already indexed
        sink.add(as_document(doc))
    assert sink.flush().indexed == 5
    sink.close()
    assert count(os_client, alias_name(os_prefix)) == 5


def test_hostile_documents_index_or_are_handed_back(opensearch_url: str, os_client: Any, os_prefix: str) -> None:
    """A lone surrogate, a 64 KiB sample, a window in 2099 and a document with no time: the real server
    stores the first three as sent and the last is rejected before it is sent; the flush returns."""
    sink = sink_for(opensearch_url, os_prefix)
    sink.setup_layout()
    surrogate, big, future, timeless = hostile_anomaly_docs()
    for doc in (surrogate, big, future):
        sink.add(as_document(doc))
    sink.add(as_document(timeless, "timeless-id"))
    result = sink.flush()
    sink.close()
    assert result.indexed == 3
    assert [doc.body for doc, _ in result.rejected] == [timeless]
    name = alias_name(os_prefix)
    assert count(os_client, name) == 3
    stored = os_client.get(index=f"{name}-2015.10.18", id=document_id(surrogate))["_source"]
    assert stored["log"]["samples"] == ["name \ud800 odd"]
    assert len(os_client.get(index=f"{name}-2015.10.18", id=document_id(big))["_source"]["log"]["samples"][0]) == 65536
    assert f"{name}-2099.01.01" in set(os_client.indices.get_alias(name=name))
