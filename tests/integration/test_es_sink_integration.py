"""es-setup and the Elasticsearch sink against the real 9.x and 8.x servers from ``scripts/services`` (no ILM,
no data streams, no ingest or analysis-common modules there: the default layout must work without them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from pipeline.cli.es import es_setup
from pipeline.errors import LogwardenError
from pipeline.scoring import document_id
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink, SinkUnavailable
from pipeline.sinks.elasticsearch.client import make_es_client
from pipeline.sinks.elasticsearch.layout import alias_name, setup_indices
from tests.fakes import anomaly_doc, as_document
from tests.integration.conftest import both_es_servers

pytestmark = [pytest.mark.integration, both_es_servers]

DAYS = ("2015-10-17T22:00:00.000Z", "2015-10-18T09:30:00.000Z", "2015-10-19T23:59:59.000Z")


@pytest.fixture
def prefix(es_client: Elasticsearch, es_index: str) -> Iterator[str]:
    """A unique index prefix (the ``es_index`` name); its indices and template are deleted afterwards."""
    yield es_index
    name = alias_name(es_index)
    found = es_client.options(ignore_status=404).indices.get(index=f"{name}*", expand_wildcards="all")
    indices = list(found.body) if found.meta.status == 200 else []
    if indices:  # the server refuses wildcard deletes (action.destructive_requires_name)
        es_client.indices.delete(index=",".join(indices))
    es_client.options(ignore_status=404).indices.delete_index_template(name=name)


def sink_for(es_url: str, prefix: str, **kwargs: object) -> ElasticsearchSink:
    client = make_es_client(es_url)
    return ElasticsearchSink(client, prefix, owns_client=True, **kwargs)  # type: ignore[arg-type]


def count(es_client: Elasticsearch, index: str, query: dict | None = None) -> int:
    es_client.indices.refresh(index=index)
    return int(es_client.count(index=index, query=query or {"match_all": {}})["count"])


def test_setup_twice_is_idempotent_and_maps_the_document(es_client: Elasticsearch, prefix: str) -> None:
    first = setup_indices(es_client, prefix)
    second = setup_indices(es_client, prefix)
    name = alias_name(prefix)
    today = f"{name}-{datetime.now(UTC):%Y.%m.%d}"
    assert first[f"index template {name}"] == "created"
    assert second[f"index template {name}"] == "unchanged"
    assert (first[f"index {today}"], second[f"index {today}"]) == ("created", "exists")
    mapping = es_client.indices.get_mapping(index=today)[today]["mappings"]
    assert mapping["dynamic"] == "false"
    props = mapping["properties"]
    assert props["entity"]["properties"]["id"]["type"] == "keyword"
    assert props["window"]["properties"]["start"]["type"] == "date"
    assert props["anomaly"]["properties"]["score"]["type"] == "float"
    assert props["templates"]["properties"]["id"]["type"] == "keyword"
    assert props["log"]["properties"]["count"]["type"] == "integer"
    assert list(es_client.indices.get_alias(name=name).body) == [today]
    health = es_client.cluster.health(index=today, wait_for_status="green", timeout="10s")
    assert health["status"] == "green"  # auto_expand_replicas 0-1: green on the single test node


def test_index_replay_overwrites(es_client: Elasticsearch, es_url: str, prefix: str) -> None:
    setup_indices(es_client, prefix)
    batch = [anomaly_doc(f"blk_{i}", start=DAYS[i % 3]) for i in range(30)]
    sink = sink_for(es_url, prefix)
    for doc in batch:
        sink.add(as_document(doc))
    assert sink.flush().indexed == 30
    name = alias_name(prefix)
    assert count(es_client, name) == 30
    for doc in [anomaly_doc(f"blk_{i}", start=DAYS[i % 3]) for i in range(30)]:  # a replay after a crash
        sink.add(as_document(doc))
    result = sink.flush()
    sink.close()
    assert (result.indexed, result.rejected) == (30, [])
    assert count(es_client, name) == 30
    hits = es_client.search(index=name, size=100, source=False)["hits"]["hits"]
    assert {h["_id"] for h in hits} == {document_id(d) for d in batch}


def test_wrong_type_is_rejected_with_reason_while_others_index(
    es_client: Elasticsearch, es_url: str, prefix: str
) -> None:
    setup_indices(es_client, prefix)
    sink = sink_for(es_url, prefix)
    bad = anomaly_doc("blk_bad", count="lots")
    for doc in [anomaly_doc("blk_1"), bad, anomaly_doc("blk_2")]:
        sink.add(as_document(doc))
    result = sink.flush()
    sink.close()
    assert result.indexed == 2
    assert len(result.rejected) == 1
    document, reason = result.rejected[0]
    doc = document.body
    assert doc is bad
    assert reason.startswith("400 document_parsing_exception")
    assert "log.count" in reason
    assert count(es_client, alias_name(prefix)) == 2


def test_unknown_fields_are_kept_not_rejected(es_client: Elasticsearch, es_url: str, prefix: str) -> None:
    setup_indices(es_client, prefix)
    doc = anomaly_doc("blk_1")
    doc["host"] = {"name": "worker-7"}  # a field a newer worker might add (dynamic: false)
    sink = sink_for(es_url, prefix)
    sink.add(as_document(doc))
    result = sink.flush()
    sink.close()
    assert (result.indexed, result.rejected) == (1, [])
    source = es_client.get(index=alias_name(prefix) + "-2015.10.18", id=document_id(doc))["_source"]
    assert source["host"] == {"name": "worker-7"}


def test_template_id_filters_and_aggregates(es_client: Elasticsearch, es_url: str, prefix: str) -> None:
    setup_indices(es_client, prefix)
    sink = sink_for(es_url, prefix)
    sink.add(as_document(anomaly_doc("blk_1", template_ids=("t-a", "t-b"))))
    sink.add(as_document(anomaly_doc("blk_2", template_ids=("t-b",))))
    sink.add(as_document(anomaly_doc("blk_3", template_ids=("t-c",))))
    assert sink.flush().indexed == 3
    sink.close()
    name = alias_name(prefix)
    assert count(es_client, name, {"term": {"templates.id": "t-b"}}) == 2
    # What Kibana's KQL `templates.id: "t-a"` sends for a keyword field.
    assert count(es_client, name, {"query_string": {"query": 'templates.id:"t-a"'}}) == 1
    assert count(es_client, name, {"match": {"templates.template": "receiving"}}) == 3
    aggs = es_client.search(index=name, size=0, aggs={"t": {"terms": {"field": "templates.id"}}})["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["t"]["buckets"]} == {"t-a": 1, "t-b": 2, "t-c": 1}


def test_components_and_reason_filter_and_aggregate(es_client: Elasticsearch, es_url: str, prefix: str) -> None:
    setup_indices(es_client, prefix)
    sink = sink_for(es_url, prefix)
    sink.add(as_document(anomaly_doc("blk_1", rarity=3.5)))
    sink.add(as_document(anomaly_doc("blk_2", rarity=0.2, reason="iforest")))
    sink.add(as_document(anomaly_doc("blk_3", rarity=1.0, reason="excess")))
    assert sink.flush().indexed == 3
    sink.close()
    name = alias_name(prefix)
    assert count(es_client, name, {"range": {"anomaly.components.rarity": {"gte": 1.0}}}) == 2
    assert count(es_client, name, {"query_string": {"query": "anomaly.reason:iforest"}}) == 1
    aggs = es_client.search(index=name, size=0, aggs={"r": {"terms": {"field": "anomaly.reason"}}})["aggregations"]
    assert {b["key"]: b["doc_count"] for b in aggs["r"]["buckets"]} == {"rarity": 1, "iforest": 1, "excess": 1}
    mapping = es_client.indices.get_mapping(index=name)
    props = next(iter(mapping.body.values()))["mappings"]["properties"]
    assert props["anomaly"]["properties"]["components"]["properties"]["excess"]["type"] == "float"
    assert props["model"]["properties"]["warnings"]["type"] == "keyword"


def test_alias_covers_every_daily_index(es_client: Elasticsearch, es_url: str, prefix: str) -> None:
    setup_indices(es_client, prefix)
    sink = sink_for(es_url, prefix)
    for i, start in enumerate(DAYS):
        sink.add(as_document(anomaly_doc(f"blk_{i}", start=start)))
    sink.flush()
    sink.close()
    name = alias_name(prefix)
    members = set(es_client.indices.get_alias(name=name).body)
    assert {f"{name}-2015.10.17", f"{name}-2015.10.18", f"{name}-2015.10.19"} <= members
    assert count(es_client, name) == 3
    assert count(es_client, name, {"range": {"window.start": {"gte": "2015-10-18", "lt": "2015-10-19"}}}) == 1


def test_unreachable_server_keeps_documents(es_url: str) -> None:
    client = make_es_client("http://127.0.0.1:9", timeout=2)
    sink = ElasticsearchSink(client, "lw-unreachable", max_retries=1, initial_backoff=0.01, owns_client=True)
    sink.add(as_document(anomaly_doc()))
    with pytest.raises(SinkUnavailable, match="cannot reach Elasticsearch"):
        sink.flush()
    assert sink.pending == 1
    sink.close()


def test_cli_creates_then_reports_unchanged(es_url: str, prefix: str) -> None:
    runner = CliRunner()
    first = runner.invoke(es_setup, ["--es-url", es_url, "--index-prefix", prefix])
    assert first.exit_code == 0, first.output
    assert f"index template {prefix}-anomalies: created" in first.output
    second = runner.invoke(es_setup, ["--es-url", es_url, "--index-prefix", prefix])
    assert f"index template {prefix}-anomalies: unchanged" in second.output
    no_ilm = runner.invoke(es_setup, ["--es-url", es_url, "--index-prefix", prefix, "--ilm"])
    if isinstance(no_ilm.exception, LogwardenError):  # the test server has no ILM module
        assert "no ILM" in str(no_ilm.exception)
    else:
        assert no_ilm.exit_code == 0, no_ilm.output
