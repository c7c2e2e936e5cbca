"""Unit tests for pipeline.sinks.opensearch.bulk: the real opensearch-py client and bulk helper against
FakeOpenSearch (tests/fakes.py). The sorting they share with Elasticsearch is pipeline.sinks.bulk; these
tests check that OpenSearch's client errors and per-item results land in the same places."""

from __future__ import annotations

import pytest

from pipeline.errors import LogwardenError
from pipeline.scoring import document_id
from pipeline.sinks.bulk import SinkBufferFull, SinkError, SinkUnavailable
from pipeline.sinks.opensearch.bulk import OpenSearchSink
from tests.fakes import FakeOpenSearch, anomaly_doc, as_document, hostile_anomaly_docs

FAST = {"initial_backoff": 0.001, "max_backoff": 0.002}


def make_sink(fake: FakeOpenSearch, **kwargs: object) -> OpenSearchSink:
    return OpenSearchSink(fake.client(), "lw", **{**FAST, **kwargs})  # type: ignore[arg-type]


def add_all(sink: OpenSearchSink, n: int) -> list[dict]:
    batch = [anomaly_doc(f"blk_{i}") for i in range(n)]
    for doc in batch:
        sink.add(as_document(doc))
    return batch


def test_documents_go_to_their_daily_index_under_their_id_and_replays_overwrite() -> None:
    fake = FakeOpenSearch()
    sink = make_sink(fake)
    batch = add_all(sink, 3)
    assert sink.flush().indexed == 3
    add_all(sink, 3)
    assert sink.flush().indexed == 3
    assert set(fake.all_docs()) == {document_id(d) for d in batch}
    assert list(fake.docs) == ["lw-anomalies-2015.10.18"]


def test_a_bad_document_is_rejected_with_the_reason_and_the_others_indexed() -> None:
    fake = FakeOpenSearch()
    sink = make_sink(fake)
    good, bad = anomaly_doc("blk_good"), anomaly_doc("blk_bad")
    bad["log"]["count"] = "many"
    sink.add(as_document(good))
    sink.add(as_document(bad))
    result = sink.flush()
    assert result.indexed == 1
    [(document, reason)] = result.rejected
    assert document.body["entity"]["id"] == "blk_bad"
    assert reason.startswith("400 document_parsing_exception")
    assert sink.pending == 0


def test_unreachable_raises_unavailable_keeps_everything_and_delivers_later() -> None:
    fake = FakeOpenSearch()
    fake.down = True
    sink = make_sink(fake, max_retries=2)
    batch = add_all(sink, 4)
    with pytest.raises(SinkUnavailable, match="OpenSearch") as info:
        sink.flush()
    assert "4 documents kept" in str(info.value)
    assert sink.pending == 4
    fake.down = False
    assert sink.flush().indexed == 4
    assert set(fake.all_docs()) == {document_id(d) for d in batch}


def test_overloaded_items_are_retried_by_the_helper_then_indexed() -> None:
    fake = FakeOpenSearch()
    fake.bulk_outcomes = ["items:429", "items:429"]
    sink = make_sink(fake, max_retries=2)
    add_all(sink, 2)
    assert sink.flush().indexed == 2
    assert fake.bulk_requests == 3


def test_persistent_overload_is_bounded_and_keeps_documents() -> None:
    fake = FakeOpenSearch()
    fake.bulk_outcomes = ["items:429"] * 10
    sink = make_sink(fake, max_retries=2)
    add_all(sink, 1)
    with pytest.raises(SinkUnavailable, match="429 es_rejected_execution_exception"):
        sink.flush()
    assert fake.bulk_requests == 3
    assert sink.pending == 1


def test_a_whole_request_503_is_unavailable_not_a_rejection() -> None:
    fake = FakeOpenSearch()
    fake.bulk_outcomes = [503]
    sink = make_sink(fake)
    add_all(sink, 2)
    with pytest.raises(SinkUnavailable, match="503"):
        sink.flush()
    assert sink.pending == 2
    assert sink.flush().indexed == 2


def test_auth_failure_is_a_sink_error_and_keeps_documents() -> None:
    fake = FakeOpenSearch()
    fake.bulk_outcomes = [403]
    sink = make_sink(fake)
    add_all(sink, 1)
    with pytest.raises(SinkError, match="403") as info:
        sink.flush()
    assert not isinstance(info.value, SinkUnavailable)
    assert isinstance(info.value, LogwardenError)
    assert sink.pending == 1


def test_a_bounded_flush_does_not_retry_and_restores_the_transport_retries() -> None:
    fake = FakeOpenSearch()
    client = fake.client(max_retries=3)
    sink = OpenSearchSink(client, "lw", max_retries=3, **FAST)  # type: ignore[arg-type]
    add_all(sink, 1)
    fake.down = True
    with pytest.raises(SinkUnavailable):
        sink.flush(timeout=0.5)
    assert fake.bulk_requests == 1  # no transport retries, no helper retries
    assert client.transport.max_retries == 3
    fake.down = False
    assert sink.flush().indexed == 1


def test_data_stream_replays_count_as_indexed() -> None:
    fake = FakeOpenSearch()
    sink = make_sink(fake, data_stream=True)
    add_all(sink, 2)
    assert sink.flush().indexed == 2
    add_all(sink, 2)  # the same ids again: 409 on create
    assert sink.flush().indexed == 2
    assert list(fake.docs) == ["lw-anomalies"]
    assert len(fake.all_docs()) == 2


def test_buffer_is_bounded() -> None:
    sink = make_sink(FakeOpenSearch(), max_buffer=2)
    add_all(sink, 2)
    with pytest.raises(SinkBufferFull, match="OpenSearch sink buffer is full"):
        sink.add(as_document(anomaly_doc("blk_extra")))


def test_hostile_documents_index_or_are_rejected_never_crash_the_flush() -> None:
    """A lone surrogate (opensearch-py's serializer cannot encode it to UTF-8), a 64 KiB sample, a 2099
    window and a document with no time at all: each is indexed or handed back, and the flush returns."""
    fake = FakeOpenSearch()
    sink = make_sink(fake)
    surrogate, big, future, timeless = hostile_anomaly_docs()
    for doc in (surrogate, big, future):
        sink.add(as_document(doc))
    sink.add(as_document(timeless, "timeless-id"))
    result = sink.flush()
    assert result.indexed == 3
    [(rejected, reason)] = result.rejected
    assert rejected.body is timeless and reason.startswith("invalid document: KeyError")
    stored = fake.all_docs()
    assert stored[document_id(surrogate)]["log"]["samples"] == ["name \ud800 odd"]  # escaped, not mangled
    assert len(stored[document_id(big)]["log"]["samples"][0]) == 65536
    assert "lw-anomalies-2099.01.01" in fake.docs
