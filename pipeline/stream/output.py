"""Closed windows to the sink (Elasticsearch or OpenSearch): score, buffer anomalies, flush, track outages.

:meth:`AnomalyOutput.flush` is step 1 of the commit order (:class:`pipeline.stream.checkpoint.Checkpoint`): it
returns True only when every anomaly scored so far is indexed in Elasticsearch or dead-lettered as rejected.
While Elasticsearch is down it returns False and :attr:`down` stays set; the worker then pauses its partitions
and calls :meth:`retry_due` / :meth:`flush` again on the :class:`~pipeline.stream.backoff.Backoff` schedule
(1 s doubling up to 15 s). Each anomaly travels as a :class:`~pipeline.records.Document` with its ``_id`` and
the partition and offset it was read from, so a rejected one is dead-lettered with its source.
Documents are never dropped: the sink keeps what it could not index, and documents scored while its
buffer is full wait in a small overflow list.

**A flush has a time budget** (``flush_budget``, the worker's ``--es-timeout``; a revocation's timeout when one
is given): it writes one chunk after another and starts no new chunk once the budget is spent (the first chunk
is always written, each bounded by the request timeout, so a flush always makes progress), returning
not-drained without being :attr:`down`. Each step between two polls must stay under ``max.poll.interval.ms``,
and an Elasticsearch that answers every chunk just inside the request timeout would otherwise hold the loop
for the whole backlog (20 chunks of 500 times the timeout). The loop polls and calls again; the backlog cannot
grow meanwhile, since one poll's records close fewer windows than one chunk holds. A chunk indexed after an
outage ends the outage at once, so input resumes while the backlog drains.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from pipeline.records import Document, Source, Window
from pipeline.scoring import Scorer, document_id
from pipeline.sinks.bulk import BulkSink, SinkBufferFull, SinkError, SinkUnavailable
from pipeline.stream.backoff import Backoff
from pipeline.stream.dead_letters import DeadLetters
from pipeline.stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class AnomalyOutput:
    def __init__(self, scorer: Scorer, sink: BulkSink, dead_letters: DeadLetters, metrics: WorkerMetrics,
                 flush_at: int = 1000, max_backoff: float = 15.0, flush_budget: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``flush_budget``: seconds after which a flush starts no new chunk (None: until drained)."""
        self.scorer = scorer
        self.flush_budget = flush_budget
        self.clock = clock
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
        if len(sources) != len(windows):
            raise ValueError(f"{len(windows)} windows with {len(sources)} sources")
        docs, anomalous, _ = self.scorer.score_counted(windows, every=False)  # only the documents it indexes
        self.metrics.windows_scored.inc(len(windows))
        self.metrics.unseen_template_lines.inc(self.scorer.unseen_lines(windows))
        self.metrics.unseen_templates_folded.inc(self.scorer.folded_lines(windows))
        for body, at in zip(docs, anomalous, strict=True):
            document = Document(document_id(body), body, sources[at])
            if self._overflow:
                self._overflow.append(document)
                continue
            try:
                self.sink.add(document)
            except SinkBufferFull:
                self._overflow.append(document)
        return len(docs)

    @property
    def pending(self) -> int:
        return self.sink.pending + len(self._overflow)

    @property
    def wants_flush(self) -> bool:
        return self.pending >= self.flush_at or bool(self._overflow)

    def retry_due(self) -> bool:
        return self.backoff.due()

    def flush(self, timeout: float | None = None) -> bool:
        """Index what is pending; True when everything is indexed or dead-lettered as rejected.

        False when Elasticsearch failed (:attr:`down` is set), or when the time budget ran out first (not
        down: call again after a poll). ``timeout`` bounds each bulk request, turns off retries (a rebalance
        cannot wait for backoffs) and is the budget of the whole flush too.
        """
        budget = timeout if timeout is not None else self.flush_budget
        began = self.clock()
        wrote = False  # the first chunk is always written: a flush makes progress whatever the clock says
        while True:
            if self.sink.pending == 0 and not self._overflow:
                self._recovered()
                return True
            if wrote and budget is not None and self.clock() - began >= budget:
                return False
            wrote = True
            started = time.perf_counter()
            try:
                result = self.sink.flush(timeout, limit=self.sink.chunk_size)
            except SinkError as exc:
                self.metrics.bulk_seconds.observe(time.perf_counter() - started)
                self.metrics.bulk_failures.inc()
                self._failed(exc)
                return False
            self.metrics.bulk_seconds.observe(time.perf_counter() - started)
            self._recovered()
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
