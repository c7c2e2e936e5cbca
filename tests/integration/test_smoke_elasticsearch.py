"""Smoke test: the real Elasticsearch 9.x and 8.x from scripts/services each bulk-index 10,000 documents.

Uses elasticsearch-py's bulk helper (what the anomaly sink builds on) against an index with an explicit
mapping and no ingest pipeline, ILM or data stream: the test server has none of those modules.
"""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch, helpers

from tests.integration.conftest import both_es_servers

pytestmark = [pytest.mark.integration, both_es_servers]

N_DOCS = 10_000


def test_bulk_index_and_count(es_client: Elasticsearch, es_index: str) -> None:
    es_client.indices.create(
        index=es_index,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings={
            "properties": {
                "seq": {"type": "long"},
                "entity": {"type": "keyword"},
                "score": {"type": "float"},
                "message": {"type": "text"},
                "@timestamp": {"type": "date"},
            }
        },
    )
    actions = (
        {
            "_index": es_index,
            "_id": str(i),
            "seq": i,
            "entity": f"host-{i % 17}",
            "score": i / N_DOCS,
            "message": f"window {i} closed",
            "@timestamp": 1_700_000_000_000 + i * 1000,
        }
        for i in range(N_DOCS)
    )
    ok, errors = helpers.bulk(es_client, actions, chunk_size=2000, raise_on_error=False)
    assert errors == []
    assert ok == N_DOCS

    es_client.indices.refresh(index=es_index)
    assert es_client.count(index=es_index)["count"] == N_DOCS
    upper = es_client.count(index=es_index, query={"range": {"seq": {"gte": N_DOCS // 2}}})["count"]
    assert upper == N_DOCS // 2
    per_entity = es_client.count(index=es_index, query={"term": {"entity": "host-3"}})["count"]
    assert per_entity == len(range(3, N_DOCS, 17))

    # Re-sending the same ids overwrites instead of duplicating: retries after a failure lose nothing
    # and add nothing.
    ok_again, _ = helpers.bulk(
        es_client, ({"_index": es_index, "_id": str(i), "seq": i} for i in range(100)), raise_on_error=True
    )
    es_client.indices.refresh(index=es_index)
    assert ok_again == 100
    assert es_client.count(index=es_index)["count"] == N_DOCS
