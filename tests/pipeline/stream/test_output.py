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

    def score_counted(self, windows: list[dict[str, Any]],
                      every: bool = True) -> tuple[list[dict[str, Any]], list[int], int]:
        anomalous = [at for at, doc in enumerate(windows) if doc["anomaly"]["is_anomaly"]]
        return list(windows) if every else [windows[at] for at in anomalous], anomalous, 0

    def unseen_lines(self, windows: list[dict[str, Any]]) -> int:
        return 0

    def folded_lines(self, windows: list[dict[str, Any]]) -> int:
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


def test_a_flush_between_two_polls_stops_when_its_time_budget_is_spent() -> None:
    """Elasticsearch answering every chunk just inside the request timeout must not hold the loop for a whole
    backlog (20 chunks x the timeout > max.poll.interval.ms): a flush writes chunks until ``flush_budget``
    seconds have passed, then returns not-drained (not down), and the next call goes on where it stopped."""
    fake = FakeElasticsearch()
    now = [0.0]
    metrics = WorkerMetrics()
    sink = ElasticsearchSink(fake.client(), "lw", max_buffer=10_000, chunk_size=10, max_retries=0,
                             initial_backoff=0.0)
    real_flush = sink.flush

    def slow_flush(timeout: float | None = None, limit: int | None = None) -> Any:
        now[0] += 9.0  # each bulk request answers after 9 s, inside a 10 s request timeout
        return real_flush(timeout, limit)

    sink.flush = slow_flush  # type: ignore[method-assign]
    output = AnomalyOutput(FixedScorer(), sink, DeadLetters(RecordingProducer()), metrics,  # type: ignore[arg-type]
                           flush_budget=10.0, clock=lambda: now[0])
    docs = [anomaly_doc(f"blk_{n}") for n in range(100)]
    output.score(docs, [("t", 0, n) for n in range(100)])  # type: ignore[arg-type]
    assert output.flush() is False
    assert not output.down and now[0] == 18.0  # two chunks: the second started inside the budget
    assert output.pending == 80 and len(fake.all_docs()) == 20
    calls = 1  # flushes that returned False; five flushes of two chunks in all
    while not output.flush():
        calls += 1
        assert not output.down
    assert calls == 4 and output.pending == 0 and len(fake.all_docs()) == 100
    # A revocation's timeout is also the whole flush's budget.
    output.score([anomaly_doc(f"blk_r{n}") for n in range(30)], [("t", 0, n) for n in range(30)])  # type: ignore[arg-type]
    now[0] = 0.0
    assert output.flush(timeout=5.0) is False and now[0] == 9.0 and output.pending == 20


def test_a_chunk_indexed_after_an_outage_ends_the_outage_even_before_the_backlog_is_drained() -> None:
    fake = FakeElasticsearch()
    now = [0.0]
    sink = ElasticsearchSink(fake.client(), "lw", max_buffer=10_000, chunk_size=10, max_retries=0,
                             initial_backoff=0.0)
    output = AnomalyOutput(FixedScorer(), sink, DeadLetters(RecordingProducer()), WorkerMetrics(),  # type: ignore[arg-type]
                           flush_budget=1.0, clock=lambda: now[0])
    output.score([anomaly_doc(f"blk_{n}") for n in range(50)], [("t", 0, n) for n in range(50)])  # type: ignore[arg-type]
    fake.down = True
    assert output.flush() is False and output.down
    fake.down = False
    real_flush = sink.flush

    def slow_flush(timeout: float | None = None, limit: int | None = None) -> Any:
        now[0] += 2.0
        return real_flush(timeout, limit)

    sink.flush = slow_flush  # type: ignore[method-assign]
    assert output.flush() is False
    assert not output.down and output.pending == 40  # back: input resumes while the backlog drains


def test_a_flush_always_writes_its_first_chunk_even_when_the_clock_already_passed_its_budget() -> None:
    """A budget spent before the first chunk (a clock step, a budget smaller than the clock's resolution) must
    not make a flush that writes nothing: the worker's exit loop calls flush until drained and would spin."""
    fake = FakeElasticsearch()
    now = [0.0]
    sink = ElasticsearchSink(fake.client(), "lw", max_buffer=10_000, chunk_size=10, max_retries=0,
                             initial_backoff=0.0)

    def clock() -> float:
        now[0] += 5.0  # every reading is past a 1 s budget
        return now[0]

    output = AnomalyOutput(FixedScorer(), sink, DeadLetters(RecordingProducer()), WorkerMetrics(),  # type: ignore[arg-type]
                           flush_budget=1.0, clock=clock)
    output.score([anomaly_doc(f"blk_{n}") for n in range(25)], [("t", 0, n) for n in range(25)])  # type: ignore[arg-type]
    assert output.flush() is False and output.pending == 15 and len(fake.all_docs()) == 10
    assert output.flush(timeout=0.5) is False and output.pending == 5
    assert output.flush() is True and output.pending == 0 and len(fake.all_docs()) == 25


class RecordingSink:
    """Keeps what it is given (the documents are under test, not the sink)."""

    def __init__(self) -> None:
        self.documents: list[Any] = []
        self.pending = 0

    def add(self, document: Any) -> None:
        self.documents.append(document)


def test_a_real_scorer_indexes_the_anomalous_documents_with_their_sources() -> None:
    """The output builds documents only for the anomalous windows: they are the anomalous ones of ``Scorer.score``
    over all windows, each with its own window's source."""
    from collections import Counter

    from pipeline.records import Window
    from tests.pipeline.test_scoring import make_scorer

    windows = []
    for i, counts in enumerate([{"A": 3, "B": 1}, {"A": 3, "NEW": 2}, {"A": 6, "B": 2}, {"X": 1}, {"A": 3, "NEW": 2}]):
        w = Window("host", f"web-{i}", "tumbling", 60.0 * i, 60.0 * i + 60, counts=Counter(counts))
        w.templates = {tid: f"text {tid}" for tid in counts}
        w.first_lines = [f"line {i}"]
        windows.append(w)
    sources = [("t", 0, 10 + i) for i in range(len(windows))]
    want = [(doc, source) for doc, source in zip(make_scorer().score(windows), sources, strict=True)
            if doc["anomaly"]["is_anomaly"]]
    sink = RecordingSink()
    output = AnomalyOutput(make_scorer(), sink, DeadLetters(RecordingProducer()), WorkerMetrics())  # type: ignore[arg-type]
    assert output.score(windows, sources) == len(want) >= 2
    assert [(d.body, d.source) for d in sink.documents] == want
    assert [d.id for d in sink.documents] == [document_id(doc) for doc, _ in want]
