"""Closed windows to the sink (Elasticsearch or OpenSearch): score, buffer anomalies, flush, track outages.

:meth:`AnomalyOutput.flush` is step 1 of the commit order (:class:`pipeline.stream.checkpoint.Checkpoint`): it
returns True only when every anomaly scored so far is indexed in Elasticsearch or dead-lettered as rejected.
While Elasticsearch is down it returns False and :attr:`down` stays set; the worker then pauses its partitions
and calls :meth:`retry_due` / :meth:`flush` again on the :class:`~pipeline.stream.backoff.Backoff` schedule
(1 s doubling up to 15 s). Each anomaly travels as a :class:`~pipeline.records.Document` with its ``_id`` and
the partition and offset it was read from, so a rejected one is dead-lettered with its source.
Documents are never dropped: the sink keeps what it could not index, and documents scored while its
buffer is full wait in a small overflow list (bounded: the partitions are paused by then).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence

from pipeline.records import Document, Source, Window
from pipeline.scoring import Scorer, document_id
from pipeline.sinks.bulk import BulkSink, SinkBufferFull, SinkError, SinkUnavailable
from pipeline.stream.backoff import Backoff
from pipeline.stream.dead_letters import DeadLetters
from pipeline.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class AnomalyOutput:
    def __init__(self, scorer: Scorer, sink: BulkSink, dead_letters: DeadLetters, metrics: WorkerMetrics,
                 flush_at: int = 1000, max_backoff: float = 15.0) -> None:
        self.scorer = scorer
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.flush_at = flush_at
        self.backoff = Backoff(1.0, max_backoff)
        self.down = False
        self.last_error = ""
        self._overflow: deque[Document] = deque()

    def score(self, windows: Sequence[Window], sources: Sequence[Source]) -> int:
        """Score closed windows; anomalies go to the sink buffer. Returns the number of anomalies."""
        if not windows:
            return 0
        docs = self.scorer.score(windows)
        self.metrics.windows_scored.inc(len(docs))
        self.metrics.unseen_template_lines.inc(self.scorer.unseen_lines(windows))
        anomalies = 0
        for body, source in zip(docs, sources, strict=True):
            if not body["anomaly"]["is_anomaly"]:
                continue
            anomalies += 1
            document = Document(document_id(body), body, source)
            if self._overflow:
                self._overflow.append(document)
                continue
            try:
                self.sink.add(document)
            except SinkBufferFull:
                self._overflow.append(document)
        return anomalies

    @property
    def pending(self) -> int:
        return self.sink.pending + len(self._overflow)

    @property
    def wants_flush(self) -> bool:
        return self.pending >= self.flush_at or bool(self._overflow)

    def retry_due(self) -> bool:
        return self.backoff.due()

    def flush(self, timeout: float | None = None) -> bool:
        """Index everything pending; True when done, False (and :attr:`down`) when Elasticsearch failed.

        ``timeout`` bounds each bulk request and turns off retries (a rebalance cannot wait for backoffs).
        """
        while True:
            if self.sink.pending == 0 and not self._overflow:
                self._recovered()
                return True
            started = time.perf_counter()
            try:
                result = self.sink.flush(timeout)
            except SinkError as exc:
                self.metrics.bulk_seconds.observe(time.perf_counter() - started)
                self.metrics.bulk_failures.inc()
                self._failed(exc)
                return False
            self.metrics.bulk_seconds.observe(time.perf_counter() - started)
            self.metrics.anomalies_indexed.inc(result.indexed)
            for document, reason in result.rejected:
                self.dead_letters.send_document(document, reason)
                entity = document.body.get("entity", {}) if isinstance(document.body, dict) else {}
                log.warning("%s rejected the document of %s: %s", self.sink.server, entity.get("id"), reason)
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
            log.log(level, "%s flush failed, pausing input and retrying with backoff: %s", self.sink.server, exc)
        self.down = True
        self.metrics.sink_up.set(0)
        self.backoff.failed()

    def _recovered(self) -> None:
        if self.down:
            log.info("%s takes documents again; resuming", self.sink.server)
        self.down = False
        self.last_error = ""
        self.backoff.reset()
        self.metrics.sink_up.set(1)
