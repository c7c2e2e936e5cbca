"""Unit tests for pipeline.sinks.elasticsearch.bulk against FakeElasticsearch.

Real client and bulk helpers, fake HTTP node.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import LogwardenError
from pipeline.scoring import document_id
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink, FlushResult, SinkBufferFull, SinkError, SinkUnavailable
from pipeline.sinks.elasticsearch.client import make_es_client
from pipeline.sinks.elasticsearch.layout import index_for
from tests.fakes import FakeElasticsearch, anomaly_doc, as_document

FAST = {"initial_backoff": 0.001, "max_backoff": 0.002}


def make_sink(fake: FakeElasticsearch, **kwargs: object) -> ElasticsearchSink:
    options = {**FAST, **kwargs}
    return ElasticsearchSink(fake.client(), "lw", **options)  # type: ignore[arg-type]


def docs(n: int, **kwargs: object) -> list[dict]:
    return [anomaly_doc(f"blk_{i}", **kwargs) for i in range(n)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- ids and indices
def test_ids_are_document_ids_and_replays_overwrite() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake)
    batch = docs(3)
    for doc in batch:
        sink.add(as_document(doc))
    assert sink.flush().indexed == 3
    for doc in docs(3):  # a replay: equal documents, new objects
        sink.add(as_document(doc))
    assert sink.flush().indexed == 3
    assert set(fake.all_docs()) == {document_id(d) for d in batch}
    assert len(fake.all_docs()) == 3


def test_same_id_twice_in_one_buffer_is_sent_once_latest_wins() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake)
    first, second = anomaly_doc("blk_1"), anomaly_doc("blk_1")
    second["anomaly"]["score"] = 0.99
    sink.add(as_document(first))
    sink.add(as_document(second))
    assert sink.pending == 1
    assert sink.flush().indexed == 1
    assert fake.all_docs()[document_id(first)]["anomaly"]["score"] == 0.99


def test_index_is_the_utc_day_of_the_window_start() -> None:
    late_evening = anomaly_doc(start="2015-10-18T23:59:59.999Z", end="2015-10-19T00:20:00.000Z")
    assert index_for(late_evening, "lw") == "lw-anomalies-2015.10.18"
    offset = anomaly_doc(start="2015-10-19T01:30:00+02:00")
    assert index_for(offset, "lw") == "lw-anomalies-2015.10.18"
    no_window = {"@timestamp": "2020-02-29T12:00:00Z"}
    assert index_for(no_window, "lw") == "lw-anomalies-2020.02.29"

    fake = FakeElasticsearch()
    sink = make_sink(fake)
    sink.add(as_document(late_evening))
    sink.flush()
    assert list(fake.docs) == ["lw-anomalies-2015.10.18"]


@given(st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_index_day_matches_utc_date_for_any_zone(moment: datetime) -> None:
    doc = anomaly_doc(start=moment.isoformat())
    assert index_for(doc, "p") == f"p-anomalies-{moment.astimezone(UTC):%Y.%m.%d}"


def test_data_stream_mode_writes_creates_and_counts_a_replay_conflict_as_indexed() -> None:
    fake = FakeElasticsearch(data_streams=True)
    sink = make_sink(fake, data_stream=True)
    sink.add(as_document(anomaly_doc()))
    assert sink.flush().indexed == 1
    sink.add(as_document(anomaly_doc()))  # replay: 409 from op_type create
    result = sink.flush()
    assert (result.indexed, result.rejected) == (1, [])
    assert list(fake.docs) == ["lw-anomalies"]


def test_a_version_conflict_on_index_counts_as_indexed_not_rejected() -> None:
    """With deterministic ids a 409 is another write of the same window (two owners around a rebalance):
    the document is there, so it is neither retried nor dead-lettered."""
    fake = FakeElasticsearch()
    fake.bulk_outcomes = ["items:409"]
    sink = make_sink(fake)
    for doc in docs(3):
        sink.add(as_document(doc))
    result = sink.flush()
    assert (result.indexed, result.rejected, sink.pending) == (3, [], 0)
    assert fake.bulk_requests == 1 and len(fake.all_docs()) == 3


# --------------------------------------------------------------------------------- retries, failures
def test_429_items_are_retried_then_indexed() -> None:
    fake = FakeElasticsearch()
    fake.bulk_outcomes = ["items:429", "items:429"]
    sink = make_sink(fake)
    for doc in docs(4):
        sink.add(as_document(doc))
    result = sink.flush()
    assert (result.indexed, result.rejected, sink.pending) == (4, [], 0)
    assert fake.bulk_requests == 3
    assert len(fake.all_docs()) == 4


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_whole_request_overload_and_server_errors_are_retried(status: int) -> None:
    fake = FakeElasticsearch()
    fake.bulk_outcomes = [status]
    sink = make_sink(fake)
    sink.add(as_document(anomaly_doc()))
    assert sink.flush().indexed == 1
    assert fake.bulk_requests == 2


def test_mapping_error_is_rejected_with_reason_and_not_retried() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake)
    good = docs(3)
    bad = anomaly_doc("blk_bad", count="lots")
    for doc in [good[0], bad, *good[1:]]:
        sink.add(as_document(doc))
    result = sink.flush()
    assert result.indexed == 3
    assert len(result.rejected) == 1
    document, reason = result.rejected[0]
    doc = document.body
    assert doc is bad
    assert reason.startswith("400 document_parsing_exception")
    assert "log.count" in reason and "lots" in reason
    assert fake.bulk_requests == 1
    assert sink.pending == 0
    again = sink.flush()
    assert (again.indexed, again.rejected) == (0, [])  # handed back once, never again


def test_invalid_document_is_rejected_without_being_sent() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake)
    sink.add(as_document({"message": "no entity, no window"}, "no-id"))
    assert sink.pending == 1
    result = sink.flush()
    assert len(result.rejected) == 1
    assert result.rejected[0][1].startswith("invalid document: KeyError")
    assert fake.bulk_requests == 0


def test_unreachable_raises_unavailable_and_keeps_the_buffer() -> None:
    fake = FakeElasticsearch()
    fake.down = True
    sink = make_sink(fake, max_retries=3)
    batch = docs(5)
    for doc in batch:
        sink.add(as_document(doc))
    with pytest.raises(SinkUnavailable, match="cannot reach Elasticsearch"):
        sink.flush()
    assert sink.pending == 5
    assert fake.bulk_requests == 4  # 1 + max_retries, then give up (bounded)
    fake.down = False
    result = sink.flush()
    assert (result.indexed, sink.pending) == (5, 0)
    assert set(fake.all_docs()) == {document_id(d) for d in batch}


def test_outage_mid_flush_keeps_only_unindexed_documents_and_reports_earlier_progress() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake, chunk_size=2, max_retries=1)
    for doc in docs(5):
        sink.add(as_document(doc))
    fake.bulk_outcomes = [None, "down", "down"]  # type: ignore[list-item]  # chunk 1 ok, chunk 2 fails twice
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert sink.pending == 3
    assert len(fake.all_docs()) == 2
    result = sink.flush()
    assert result.indexed == 5  # 2 from the failed flush + 3 now: counters see every document once
    assert len(fake.all_docs()) == 5


def test_timeouts_are_retried_then_reported_unavailable() -> None:
    fake = FakeElasticsearch()
    fake.bulk_outcomes = ["timeout"] * 3
    sink = make_sink(fake, max_retries=2)
    sink.add(as_document(anomaly_doc()))
    with pytest.raises(SinkUnavailable, match="did not answer in time"):
        sink.flush()
    assert sink.pending == 1
    assert sink.flush().indexed == 1


def test_persistent_overload_is_bounded_and_keeps_documents() -> None:
    fake = FakeElasticsearch()
    fake.bulk_outcomes = ["items:429"] * 10
    sink = make_sink(fake, max_retries=2)
    sink.add(as_document(anomaly_doc()))
    with pytest.raises(SinkUnavailable, match="429 es_rejected_execution_exception"):
        sink.flush()
    assert fake.bulk_requests == 3
    assert sink.pending == 1


def test_auth_failure_is_a_sink_error_not_a_rejection() -> None:
    fake = FakeElasticsearch()
    fake.bulk_outcomes = [403]
    sink = make_sink(fake)
    sink.add(as_document(anomaly_doc()))
    with pytest.raises(SinkError, match="403") as info:
        sink.flush()
    assert not isinstance(info.value, SinkUnavailable)
    assert sink.pending == 1
    assert isinstance(info.value, LogwardenError)


# ---------------------------------------------------------------------------- bounds and observability
def test_buffer_is_bounded() -> None:
    fake = FakeElasticsearch()
    sink = make_sink(fake, max_buffer=2)
    first, second = docs(2)
    sink.add(as_document(first))
    assert not sink.is_full
    sink.add(as_document(second))
    assert sink.is_full
    sink.add(as_document(anomaly_doc("blk_0")))  # same id as `first`: replaces, does not grow
    with pytest.raises(SinkBufferFull):
        sink.add(as_document(anomaly_doc("blk_9")))
    sink.flush()
    assert not sink.is_full


def test_on_bulk_gets_each_successful_flush() -> None:
    fake = FakeElasticsearch()
    seen: list[FlushResult] = []
    sink = make_sink(fake, on_bulk=seen.append)
    for doc in docs(3):
        sink.add(as_document(doc))
    sink.flush()
    fake.down = True
    sink.add(as_document(anomaly_doc("blk_x")))
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert [r.indexed for r in seen] == [3]
    assert seen[0].seconds >= 0


def test_close_closes_only_an_owned_client() -> None:
    fake = FakeElasticsearch()
    client = fake.client()
    ElasticsearchSink(client, "lw").close()
    assert fake.bulk_requests == 0
    owned = ElasticsearchSink(fake.client(), "lw", owns_client=True)
    owned.close()
    owned.close()  # idempotent


def test_bad_prefix_and_settings_are_user_errors() -> None:
    fake = FakeElasticsearch()
    with pytest.raises(LogwardenError, match="prefix"):
        ElasticsearchSink(fake.client(), "Logs*")
    with pytest.raises(LogwardenError):
        ElasticsearchSink(fake.client(), "lw", max_buffer=0)


# ------------------------------------------------------------------------------------------ client
def test_make_es_client_checks_settings() -> None:
    with pytest.raises(LogwardenError, match="username and password"):
        make_es_client("http://127.0.0.1:9200", username="elastic")
    with pytest.raises(LogwardenError, match="either"):
        make_es_client("http://127.0.0.1:9200", api_key="k", username="u", password="p")
    with pytest.raises(LogwardenError, match="URL"):
        make_es_client("127.0.0.1")
    with pytest.raises(LogwardenError, match="no Elasticsearch URL"):
        make_es_client(" , ")
    client = make_es_client("http://a:9200,http://b:9200", api_key="secret")
    assert len(client.transport.node_pool.all()) == 2
    client.close()


def test_window_spanning_midnight_stays_in_its_start_day() -> None:
    start = datetime(2024, 3, 1, 23, 55, tzinfo=UTC)
    doc = anomaly_doc(start=start.isoformat(), end=(start + timedelta(minutes=30)).isoformat())
    assert index_for(doc, "lw").endswith("2024.03.01")
