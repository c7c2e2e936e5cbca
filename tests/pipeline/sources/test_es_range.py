"""The Elasticsearch training reader over a scripted client: paging with search_after, the point in time closed
whatever happens, ECS JSON lines without a layout, and one-line errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from elasticsearch import NotFoundError

from pipeline.errors import LogwardenError
from pipeline.sources.es_range import EsRange, build_query, field_value


class ScriptedClient:
    def __init__(self, docs: list[dict[str, Any]], fail_after: int | None = None) -> None:
        self.docs = docs
        self.fail_after = fail_after
        self.searches: list[dict[str, Any]] = []
        self.closed: list[str] = []

    def count(self, index: str, query: dict[str, Any]) -> dict[str, int]:
        if index == "missing":
            raise NotFoundError("index_not_found_exception", meta=_Meta(404), body={"error": {"reason": "no such"}})
        return {"count": len(self.docs)}

    def open_point_in_time(self, index: str, keep_alive: str) -> dict[str, str]:
        return {"id": "pit-1"}

    def search(self, **kwargs: Any) -> dict[str, Any]:
        self.searches.append(kwargs)
        if self.fail_after is not None and len(self.searches) > self.fail_after:
            raise NotFoundError("search_context_missing_exception", meta=_Meta(404), body={})
        start = 0 if kwargs["search_after"] is None else kwargs["search_after"][0] + 1
        page = self.docs[start: start + kwargs["size"]]
        return {"pit_id": f"pit-{len(self.searches) + 1}",
                "hits": {"hits": [{"_source": d, "sort": [start + i]} for i, d in enumerate(page)]}}

    def close_point_in_time(self, id: str) -> None:  # noqa: A002 - the client's keyword
        self.closed.append(id)


class _Meta:
    def __init__(self, status: int) -> None:
        self.status = status
        self.headers: dict[str, str] = {}


DOCS = [{"@timestamp": f"2026-11-30T00:00:{i:02d}Z", "message": f"user u{i} did login", "host": {"name": f"h{i % 2}"}}
        for i in range(7)] + [{"@timestamp": "2026-11-30T00:01:00Z"}]


def test_pages_follow_search_after_and_the_pit_is_closed() -> None:
    client = ScriptedClient(DOCS)
    source = EsRange(client, "logs", None, None, entity_field="host.name", raw=False, page_size=3)
    lines = list(source)
    assert [json.loads(line.data) for line in lines][1] == {
        "@timestamp": "2026-11-30T00:00:01Z", "message": "user u1 did login", "host.name": "h1"}
    assert len(lines) == 7 and source.read == 7 and source.no_message == 1 and source.total == 8
    assert [s["search_after"] for s in client.searches] == [None, [2], [5], [7]]
    assert [s["pit"]["id"] for s in client.searches] == ["pit-1", "pit-2", "pit-3", "pit-4"]  # the latest pit id
    assert client.closed == ["pit-5"]


def test_raw_mode_keeps_the_line_and_a_failure_still_closes_the_pit() -> None:
    client = ScriptedClient(DOCS, fail_after=1)
    source = EsRange(client, "logs", None, None, raw=True, page_size=3)
    lines = []
    with pytest.raises(LogwardenError, match="reading logs from Elasticsearch failed"):
        for line in source:
            lines.append(line)
    assert [line.data for line in lines] == [b"user u0 did login", b"user u1 did login", b"user u2 did login"]
    assert client.closed == ["pit-2"]


def test_missing_index_is_one_line() -> None:
    with pytest.raises(LogwardenError, match="'missing' does not exist"):
        EsRange(ScriptedClient([]), "missing", None, None)


def test_query_building() -> None:
    q = build_query("@timestamp", 10.0, 20.5, "host.name:web-1")
    assert q == {"bool": {"filter": [{"range": {"@timestamp": {"gte": 10000, "lt": 20500, "format": "epoch_millis"}}},
                                     {"query_string": {"query": "host.name:web-1"}}]}}
    assert build_query("t", None, None, '{"query": {"term": {"a": 1}}}') == {"bool": {"filter": [{"term": {"a": 1}}]}}
    assert build_query("t", None, None, None) == {"match_all": {}}
    with pytest.raises(LogwardenError, match="not JSON"):
        build_query("t", None, None, "{nope")
    assert field_value({"a.b": 1}, "a.b") == 1 and field_value({"a": {"b": 2}}, "a.b") == 2
    assert field_value({"a": 1}, "a.b") is None


def test_hostile_messages_reach_the_decoder_flagged_not_dropped() -> None:
    docs = [{"@timestamp": "2026-11-30T00:00:00Z", "message": "lone \ud800 surrogate"},
            {"@timestamp": "2026-11-30T00:00:01Z", "message": "x" * 70_000},
            {"@timestamp": "2099-01-01T00:00:00Z", "message": 12345}]
    lines = list(EsRange(ScriptedClient(docs), "logs", None, None, raw=True, max_line_bytes=65536))
    assert lines[0].data == "lone \ud800 surrogate".encode("utf-8", "surrogatepass")  # invalid UTF-8: counted later
    assert lines[1].truncated and len(lines[1].data) == 65536
    assert lines[2].data == b"12345"

    from pipeline.stages.decoding import Decoder  # noqa: PLC0415

    decoder = Decoder()
    record = decoder.decode(lines[0])
    assert "invalid_utf8" in record.flags and "surrogate" in record.message
