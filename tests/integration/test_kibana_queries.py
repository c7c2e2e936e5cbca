"""The queries of the shipped Kibana saved search and alert rule, run against the real Elasticsearch after a worker
indexed a stream, return exactly the anomalies the worker indexed (and not a non-anomalous decoy document).

Kibana runs a saved search's Lucene query as a ``query_string`` query plus its time filter, and an
"Elasticsearch query" rule as ``bool.filter: [esQuery, range on timeField]`` with a terms aggregation on
``termField`` for "grouped by"; the test does the same with the queries read from ``kibana/logwarden.ndjson``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from pipeline.sinks.kibana import DEFAULT_OBJECTS, TEMPLATES_VIEW, for_prefix, load_objects
from tests.integration.conftest import both_es_servers
from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    expected,
    indexed,
    replay_now,
    worker_args,
)

pytestmark = pytest.mark.integration


def _time_filter(docs: list[dict[str, Any]]) -> dict[str, Any]:
    stamps = sorted(doc["@timestamp"] for doc in docs)
    return {"range": {"@timestamp": {"gte": stamps[0], "lte": stamps[-1], "format": "strict_date_optional_time"}}}


def _hits(es: Elasticsearch, index: str, query: dict[str, Any], **extra: Any) -> Any:
    es.indices.refresh(index=index)
    return es.search(index=index, query=query, size=10_000, **extra)


@both_es_servers  # Kibana 8.x runs on Elasticsearch 8.x, 9.x on 9.x
def test_saved_search_and_rule_return_exactly_the_indexed_anomalies(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_topic_factory: Callable[..., str],
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=2), kafka_group_id)
    replay_now(SAMPLE, topic, kafka_bootstrap, partitions=2)
    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          want.model_dir, "--exit-when-idle", "4s"))
    try:
        assert worker.wait(240) == 0, worker.text()[-3000:]
    finally:
        worker.close()
    docs = indexed(es_client, topic)
    assert set(docs) == want.ids
    sources = list(docs.values())
    # A window that is not anomalous, in one of the alias's daily indices: the queries must leave it out.
    decoy = json.loads(json.dumps(sources[0]))
    decoy["entity"]["id"] = "blk_decoy"
    decoy["anomaly"].update(score=0.01, is_anomaly=False, components={"iforest": 0, "rarity": 0.25})
    day_index = f"{topic}-anomalies-{decoy['window']['start'][:10].replace('-', '.')}"
    es_client.index(index=day_index, document=decoy, refresh=True)
    # Component scores are mapped as floats (an integer 0 first must not make the field a long).
    mapping = es_client.indices.get_field_mapping(index=day_index, fields="anomaly.components.*")
    types = {name: spec["mapping"][name.rsplit(".", 1)[1]]["type"]
             for name, spec in mapping[day_index]["mappings"].items()}
    assert types == {"anomaly.components.iforest": "float", "anomaly.components.rarity": "float"}

    objects = {o["type"]: o for o in for_prefix(load_objects(DEFAULT_OBJECTS), topic) if o["id"] != TEMPLATES_VIEW}
    alias = objects["index-pattern"]["attributes"]["title"]
    assert alias == f"{topic}-anomalies"
    everything = _hits(es_client, alias, {"match_all": {}})
    assert everything["hits"]["total"]["value"] == len(docs) + 1

    source = json.loads(objects["search"]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"]["language"] == "lucene"
    search = {"bool": {"must": [{"query_string": {"query": source["query"]["query"], "analyze_wildcard": True}}],
                       "filter": [_time_filter(sources)]}}
    found = _hits(es_client, alias, search)
    assert {h["_id"] for h in found["hits"]["hits"]} == {h["_id"] for h in everything["hits"]["hits"]
                                                         if h["_source"]["entity"]["id"] != "blk_decoy"}

    params = objects["alert"]["attributes"]["params"]
    assert params["index"] == [alias]
    rule_query = {"bool": {"filter": [json.loads(params["esQuery"])["query"], _time_filter(sources)]}}
    aggs = {"groups": {"terms": {"field": params["termField"], "size": 10_000}}}
    found = _hits(es_client, alias, rule_query, aggs=aggs)
    assert found["hits"]["total"]["value"] == len(docs)
    assert {h["_source"]["entity"]["id"] for h in found["hits"]["hits"]} == want.entities
    groups = {b["key"]: b["doc_count"] for b in found["aggregations"]["groups"]["buckets"]}
    per_entity: dict[str, int] = {}
    for doc in sources:
        per_entity[doc["entity"]["id"]] = per_entity.get(doc["entity"]["id"], 0) + 1
    assert groups == per_entity

    # --min-score: the rule pages only for anomalies at least that strong.
    scores = sorted(doc["anomaly"]["score"] for doc in sources)
    floor = scores[len(scores) // 2]
    strong = for_prefix(load_objects(DEFAULT_OBJECTS), topic, floor)
    params = next(o for o in strong if o["type"] == "alert")["attributes"]["params"]
    rule_query = {"bool": {"filter": [json.loads(params["esQuery"])["query"], _time_filter(sources)]}}
    found = _hits(es_client, alias, rule_query)
    assert found["hits"]["total"]["value"] == sum(1 for s in scores if s >= floor) < len(docs)
