"""Closed windows to Elasticsearch: score, buffer anomalies in the sink, flush, and track outages.

:meth:`AnomalyOutput.flush` is step 1 of the commit order (see :mod:`pipeline.stream.ledger`): it returns True
only when every anomaly scored so far is indexed in Elasticsearch or dead-lettered as rejected. While
Elasticsearch is down it returns False and :attr:`down` stays set; the worker then pauses its partitions
and calls :meth:`retry_due` / :meth:`flush` again with exponential backoff (1 s doubling up to 15 s).
Documents are never dropped: the sink keeps what it could not index, and documents scored while its
buffer is full wait in a small overflow list (bounded: the partitions are paused by then).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pipeline.records import Window
from pipeline.scoring import Scorer, document_id
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink, SinkBufferFull, SinkError, SinkUnavailable
from pipeline.stream.dead_letters import DeadLetters
from pipeline.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)

Source = tuple[str, int, int]  # topic, partition, first offset of the window there


class AnomalyOutput:
    def __init__(self, scorer: Scorer, sink: ElasticsearchSink, dead_letters: DeadLetters, metrics: WorkerMetrics,
                 flush_at: int = 1000, max_backoff: float = 15.0) -> None:
        self.scorer = scorer
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.flush_at = flush_at
        self.max_backoff = max_backoff
        self.down = False
        self.last_error = ""
        self._backoff = 1.0
        self._retry_at = 0.0
        self._sources: dict[str, Source] = {}
        self._overflow: deque[dict[str, Any]] = deque()

    def score(self, windows: Sequence[Window], sources: Sequence[Source]) -> int:
        """Score closed windows; anomalies go to the sink buffer. Returns the number of anomalies."""
        if not windows:
            return 0
        docs = self.scorer.score(windows)
        self.metrics.windows_scored.inc(len(docs))
        anomalies = 0
        for doc, source in zip(docs, sources, strict=True):
            if not doc["anomaly"]["is_anomaly"]:
                continue
            anomalies += 1
            self._sources[document_id(doc)] = source
            if self._overflow:
                self._overflow.append(doc)
                continue
            try:
                self.sink.add(doc)
            except SinkBufferFull:
                self._overflow.append(doc)
        return anomalies

    @property
    def pending(self) -> int:
        return self.sink.pending + len(self._overflow)

    @property
    def wants_flush(self) -> bool:
        return self.pending >= self.flush_at or bool(self._overflow)

    def retry_due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def flush(self) -> bool:
        """Index everything pending; True when done, False (and :attr:`down`) when Elasticsearch failed."""
        while True:
            if self.sink.pending == 0 and not self._overflow:
                self._recovered()
                return True
            started = time.perf_counter()
            try:
                result = self.sink.flush()
            except SinkError as exc:
                self.metrics.bulk_seconds.observe(time.perf_counter() - started)
                self.metrics.bulk_failures.inc()
                self._failed(exc)
                return False
            self.metrics.bulk_seconds.observe(time.perf_counter() - started)
            self.metrics.anomalies_indexed.inc(result.indexed)
            for doc, reason in result.rejected:
                doc_id = _safe_id(doc)
                self.dead_letters.send_document(doc, reason, self._sources.get(doc_id))
                log.warning("Elasticsearch rejected the document of %s: %s", doc.get("entity", {}).get("id"), reason)
            waiting = {document_id(doc) for doc in self._overflow}
            self._sources = {k: v for k, v in self._sources.items() if k in waiting}
            self._refill()

    def _refill(self) -> None:
        while self._overflow:
            try:
                self.sink.add(self._overflow[0])
            except SinkBufferFull:
                return
            self._overflow.popleft()

    def _failed(self, exc: SinkError) -> None:
        self.last_error = str(exc)
        if not self.down:
            level = logging.WARNING if isinstance(exc, SinkUnavailable) else logging.ERROR
            log.log(level, "Elasticsearch flush failed, pausing input and retrying with backoff: %s", exc)
        self.down = True
        self.metrics.sink_up.set(0)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.max_backoff)

    def _recovered(self) -> None:
        if self.down:
            log.info("Elasticsearch takes documents again; resuming")
        self.down = False
        self.last_error = ""
        self._backoff = 1.0
        self.metrics.sink_up.set(1)


def _safe_id(doc: dict[str, Any]) -> str:
    try:
        return document_id(doc)
    except (KeyError, TypeError):
        return ""
