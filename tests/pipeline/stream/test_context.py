"""Unit tests for pipeline.stream.context: choosing the sink (``--sink``) and preparing its layout."""

from __future__ import annotations

import pytest

from pipeline.config import WorkerOptions
from pipeline.errors import LogwardenError
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink
from pipeline.sinks.opensearch.bulk import OpenSearchSink
from pipeline.stream.context import WorkerContext, consumer_config, make_sink
from tests.fakes import FakeOpenSearch


def test_the_sink_option_picks_the_sink_and_elasticsearch_is_the_default() -> None:
    default = make_sink(WorkerOptions(topics=("logs",)))
    assert isinstance(default, ElasticsearchSink)
    opensearch = make_sink(WorkerOptions(topics=("logs",), sink="opensearch", es_url="http://os.example:9200",
                                         index_prefix="team-a"))
    assert isinstance(opensearch, OpenSearchSink)
    assert opensearch.prefix == "team-a"
    [host] = opensearch.client.transport.hosts
    assert (host["host"], host["port"]) == ("os.example", 9200)
    default.close()
    opensearch.close()


def test_an_unknown_sink_is_a_user_error() -> None:
    with pytest.raises(LogwardenError, match="--sink must be one of elasticsearch, opensearch, got 'solr'"):
        WorkerOptions.from_values({"topics": "logs", "sink": "solr"}, WorkerOptions().settings)


def test_max_poll_interval_reaches_the_consumer_and_must_leave_room_for_a_bulk_request_and_its_retry() -> None:
    opts = WorkerOptions.from_values({"topics": "logs", "max_poll_interval": "8s", "es_timeout": "2s"},
                                     WorkerOptions().settings)
    assert consumer_config(opts)["max_poll_interval_ms"] == 8000
    assert consumer_config(WorkerOptions(topics=("logs",)))["max_poll_interval_ms"] == 300_000
    with pytest.raises(LogwardenError, match=r"--max-poll-interval \(20s\) must be at least 3 times --es-timeout "
                                             r"\(10s\)"):
        WorkerOptions.from_values({"topics": "logs", "max_poll_interval": "20s"}, WorkerOptions().settings)


def _context(fake: FakeOpenSearch) -> WorkerContext:
    ctx = object.__new__(WorkerContext)
    ctx.options = WorkerOptions(topics=("logs",), sink="opensearch", es_url="http://fake-os:9200")
    ctx.sink = OpenSearchSink(fake.client(), "lw")
    ctx.catalog = ctx.catalog_flusher = None  # the template catalog is Elasticsearch's
    return ctx


def test_prepare_sets_up_the_opensearch_layout() -> None:
    fake = FakeOpenSearch()
    assert _context(fake).prepare_elasticsearch(lambda: False) is True
    assert "lw-anomalies" in fake.templates


def test_prepare_waits_while_opensearch_is_down_and_stops_when_asked() -> None:
    fake = FakeOpenSearch()
    fake.down = True
    asked: list[bool] = []

    def should_stop() -> bool:  # no on the first question (so setup is tried), yes while waiting
        asked.append(True)
        return len(asked) > 1

    assert _context(fake).prepare_elasticsearch(should_stop, max_backoff=1.0) is False
    assert fake.templates == {}
    assert fake.requests == [("GET", "/")]  # tried once, then waited instead of hammering the server


def test_prepare_refuses_a_server_that_is_not_opensearch() -> None:
    fake = FakeOpenSearch()
    ctx = _context(fake)
    ctx.sink.client.info = lambda: {"version": {"number": "9.5.2"}}  # type: ignore[method-assign]
    with pytest.raises(LogwardenError, match="not OpenSearch: use --sink elasticsearch .OpenSearch at http://fake-os"):
        ctx.prepare_elasticsearch(lambda: False)
