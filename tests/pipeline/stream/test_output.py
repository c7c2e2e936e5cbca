"""Scoring closed windows into the sink: flush, outage (documents kept, backoff), rejected documents."""

from __future__ import annotations

from typing import Any

from pipeline.scoring import document_id
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink
from pipeline.stream.dead_letters import DeadLetters
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.output import AnomalyOutput
from tests.fakes import FakeElasticsearch, RecordingProducer, anomaly_doc


class FixedScorer:
    """Turns each 'window' (here: a ready document) into itself: scoring is not under test."""

    def score(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(windows)

    def unseen_lines(self, windows: list[dict[str, Any]]) -> int:
        return 0


def make(fake: FakeElasticsearch, max_buffer: int = 100) -> tuple[AnomalyOutput, RecordingProducer, WorkerMetrics]:
    producer = RecordingProducer()
    metrics = WorkerMetrics()
    sink = ElasticsearchSink(fake.client(), "lw", max_buffer=max_buffer, max_retries=0, initial_backoff=0.0)
    output = AnomalyOutput(FixedScorer(), sink, DeadLetters(producer), metrics)  # type: ignore[arg-type]
    return output, producer, metrics


def normal(doc: dict[str, Any]) -> dict[str, Any]:
    doc["anomaly"]["is_anomaly"] = False
    return doc


def test_anomalies_are_indexed_and_normal_windows_are_not() -> None:
    fake = FakeElasticsearch()
    output, _, metrics = make(fake)
    docs = [anomaly_doc("blk_1"), normal(anomaly_doc("blk_2")), anomaly_doc("blk_3")]
    assert output.score(docs, [("t", 0, 5), ("t", 0, 6), ("t", 1, 7)]) == 2  # type: ignore[arg-type]
    assert output.pending == 2
    assert output.flush() is True
    assert set(fake.all_docs()) == {document_id(docs[0]), document_id(docs[2])}
    assert metrics.registry.get_sample_value("logwarden_worker_anomalies_indexed_total") == 2
    assert metrics.registry.get_sample_value("logwarden_worker_windows_scored_total") == 3


def test_outage_keeps_documents_reports_down_and_recovers() -> None:
    fake = FakeElasticsearch()
    output, _, metrics = make(fake)
    output.score([anomaly_doc("blk_1")], [("t", 0, 1)])  # type: ignore[arg-type]
    fake.down = True
    assert output.flush() is False
    assert output.down and output.pending == 1 and metrics.registry.get_sample_value("logwarden_worker_sink_up") == 0
    assert "down" in output.last_error or "reach" in output.last_error
    assert not output.retry_due()  # backoff before the next attempt
    fake.down = False
    output.backoff.retry_at = 0.0  # skip the backoff wait
    assert output.flush() is True
    assert not output.down and output.pending == 0 and len(fake.all_docs()) == 1


def test_rejected_documents_become_dead_letters_with_their_source() -> None:
    fake = FakeElasticsearch()
    output, producer, metrics = make(fake)
    bad = anomaly_doc("blk_9", count="many")  # the fake refuses a non-integer log.count, like a mapping error
    output.score([bad, anomaly_doc("blk_1")], [("logs", 2, 40), ("logs", 0, 3)])  # type: ignore[arg-type]
    assert output.flush() is True
    assert len(fake.all_docs()) == 1
    [letter] = producer.sent
    assert letter["topic"] == "logs.dlq" and letter["key"] == b"blk_9"
    headers = letter["headers"]
    assert headers["reason"] == b"es_rejected" and headers["source.partition"] == b"2"
    assert headers["source.offset"] == b"40" and b"document_parsing_exception" in headers["error.message"]


def test_a_full_buffer_overflows_and_is_drained_by_flush() -> None:
    fake = FakeElasticsearch()
    output, _, _ = make(fake, max_buffer=2)
    docs = [anomaly_doc(f"blk_{i}") for i in range(5)]
    output.score(docs, [("t", 0, i) for i in range(5)])  # type: ignore[arg-type]
    assert output.pending == 5 and output.wants_flush
    assert output.flush() is True
    assert len(fake.all_docs()) == 5 and output.pending == 0
