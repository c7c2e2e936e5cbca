"""The streaming worker: Kafka in, the ``detect`` stages per partition, anomalies into Elasticsearch.

This module is the loop and the rebalance listener only. The commit order is :meth:`Checkpoint.commit
<pipeline.stream.checkpoint.Checkpoint.commit>`; which offset is committed, and the replay state that keeps
documents effectively-once, are in :mod:`pipeline.stream.ledger`; per-partition processing (the shared record
chain) in :mod:`pipeline.stream.partition`; scoring and the sink in :mod:`pipeline.stream.output`.

Loop: ``poll`` (at most ``max_poll_records``) -> window each record of its partition -> queue closed
windows -> score the queue once it holds ``score_batch`` windows or its oldest waited ``score_delay`` (a
model call has a fixed cost of tens of milliseconds, so one call per poll would cost more than the windows
themselves) -> index the anomalies every ``flush_interval`` (step 1 of the commit order alone: indexing
early is always safe, ids are deterministic) -> every ``commit_interval`` (or when the sink buffer fills): a
checkpoint (score the queue, flush sink, flush dead letters, save state, commit). A queued window is still
*pending* in its partition (it holds its offsets), so no checkpoint can commit past it.

When Elasticsearch is down the worker pauses every partition and keeps calling ``poll`` (heartbeats and
``max.poll.interval.ms`` stay satisfied, nothing is fetched), retries the flush with backoff and resumes when
it succeeds. SIGTERM: flush, commit, close the consumer (leaves the group). ``exit_when_idle``: after that
long without a record, close every window (end of input), index, commit, exit 0.

Rebalances: the listener runs on kafka-python's IO thread while the main thread is parked in ``poll``.
On revocation it checkpoints the revoked partitions and awaits the commit; on assignment it pauses the
new partitions, and the main thread loads their committed offset and replay state, then resumes them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipeline.records import Source, Window
from pipeline.stream.checkpoint import Checkpoint
from pipeline.stream.context import WorkerContext
from pipeline.stream.dead_letters import DeadLetterError
from pipeline.stream.ledger import PartitionLedger
from pipeline.stream.model_topic import open_registry
from pipeline.stream.partition import PartitionStream
from pipeline.stream.reload import ModelSource, ModelWatcher
from pipeline.stream.state_topic import StateTopic, load_start

log = logging.getLogger(__name__)


class _Rebalance(AsyncConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.on_revoked(set(revoked))
        self.worker.drop(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker.on_assigned(set(assigned))

    async def on_partitions_lost(self, lost: Any) -> None:
        self.worker.lost(set(lost))


class Worker:
    def __init__(self, ctx: WorkerContext, consumer: Any = None, models: ModelSource | None = None) -> None:
        """``consumer`` replaces the Kafka consumer the context would make (unit tests pass a fake); ``models``
        is the registry watched for hot reloads (default: ``--model-dir``, unless ``--model-version`` pins one)."""
        self.ctx = ctx
        self.opts = ctx.options
        self.metrics = ctx.metrics
        self.output = ctx.output
        self.streams: dict[TopicPartition, PartitionStream] = {}
        self.to_load: set[TopicPartition] = set()
        self.state_topic = StateTopic(self.opts.bootstrap_servers, f"{self.opts.group_id}.logwarden-state",
                                      ctx.producer)
        self.stopping = False
        self.fatal = False
        self.ever_assigned: set[TopicPartition] = set()
        self.consumer: KafkaConsumer = consumer if consumer is not None else ctx.make_consumer()
        self.checkpoint = Checkpoint(self.consumer, self.output, ctx.dead_letters, self.state_topic, self.metrics,
                                     revoke_budget=self.opts.session_timeout / 3)
        self._paused = False
        self.idle_timeout = self.opts.idle_timeout
        self.last_poll = time.monotonic()
        self._next_idle_check = 0.0
        self._last_activity = time.monotonic()
        self._next_checkpoint = time.monotonic() + self.opts.commit_interval
        self._next_flush = time.monotonic() + self.opts.flush_interval
        # Closed windows waiting to be scored (each still pending in its partition) and when the oldest came.
        self._queued: list[Window] = []
        self._queued_sources: list[Source] = []
        self._queued_since = 0.0
        if models is None and self.opts.model_dir and not self.opts.model_version:
            models = open_registry(self.opts.model_dir, self.opts.bootstrap_servers)
        self.watcher = None if models is None else ModelWatcher(
            models, ctx.bundle, self.opts.settings, self.metrics, self.opts.model_poll_interval,
            self.opts.explicit_settings, refused=ctx.refused_version)

    # ------------------------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Consume until stopped (0), idle (0) or a fatal error (1); always closes the consumer."""
        self.consumer.subscribe(topics=list(self.opts.topics), listener=_Rebalance(self))
        if self.watcher is not None:
            self.watcher.start()
        code = 0
        try:
            while not self.stopping:
                self.step()
                if self._idle():
                    log.info("no record for %.1f s: closing every window and exiting", self.opts.exit_when_idle)
                    code = 0 if self.finish() else 1
                    break
            else:
                code = 0 if self._commit_drained() else 1
                if code:
                    log.error("stopped without committing the latest offsets (%d anomalies not indexed: %s); "
                              "they are read again on restart", self.output.pending, self.output.last_error)
        except (DeadLetterError, KafkaError) as exc:
            log.error("stopping without committing further: %s", exc)
            self.fatal, code = True, 1
        except Exception:  # noqa: BLE001 - a bug: logged with its traceback, and nothing more is committed
            log.exception("unexpected error; stopping without committing further (the records are read again)")
            self.fatal, code = True, 1
        except BaseException:
            self.fatal = True  # whatever it was, nothing more may be committed (the revocation path checks)
            raise
        finally:
            self.stopping = True
            if self.watcher is not None:
                self.watcher.stop()
            self.consumer.close(autocommit=False)
            self.state_topic.close()
        return code

    def step(self) -> None:
        """One poll and what follows it; a new model prepared by the watcher is swapped in first (between batches)."""
        if self.watcher is not None:
            prepared = self.watcher.take()
            if prepared is not None:
                self.ctx.use_model(prepared)
        batch = self.consumer.poll(timeout_ms=200 if self.output.down else 500, max_records=self.opts.max_poll_records)
        self.last_poll = time.monotonic()
        self._load_assigned()
        if batch:
            self._process(batch)
            self._last_activity = time.monotonic()
        now = time.monotonic()
        if self._queued and (len(self._queued) >= self.opts.score_batch
                             or now - self._queued_since >= self.opts.score_delay):
            self.score_queued()
        if not self.output.down and now >= self._next_idle_check:
            self._close_idle(now)
            self._next_idle_check = now + 1.0
        elif not self.output.down:
            self._expire(now)
        if self.output.down:
            if self.output.retry_due():
                self.commit()
                if not self.output.down:  # back: the backlog is not idleness
                    self._last_activity = time.monotonic()
        elif now >= self._next_checkpoint or self.output.wants_flush:
            self.commit()
            self._next_checkpoint = now + self.opts.commit_interval
            self._update_lag()
        elif self.output.sink.pending and now >= self._next_flush:
            self._next_flush = now + self.opts.flush_interval
            if not self.output.flush() and self.output.down:
                self._pause_all()  # down: the retry and the resume go through commit(), as above

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        closed: list[Window] = []
        sources: list[Source] = []
        for tp, records in batch.items():
            stream = self.streams.get(tp)
            if stream is None:  # not loaded yet (cannot happen while paused): read these again later
                if tp in self.to_load:
                    self.consumer.seek(tp, records[0].offset)
                continue
            windows, where = stream.read(records, self.metrics, self.ctx.dead_letters)
            closed.extend(windows)
            sources.extend(where)
        self._queue(closed, sources)
        self.metrics.open_windows.set(sum(s.open_count for s in self.streams.values()))

    def _expire(self, now: float) -> None:
        """Hand on held multi-line records whose key went quiet (every step: they hold back their partition)."""
        closed: list[Window] = []
        sources: list[Source] = []
        for stream in self.streams.values():
            windows, where = stream.expire(now, self.metrics, self.ctx.dead_letters)
            closed.extend(windows)
            sources.extend(where)
        self._queue(closed, sources)

    def _close_idle(self, now: float) -> None:
        """Close windows whose entity sent nothing for ``idle_timeout`` of processing time (a quiet partition's
        last windows would otherwise wait for more data to move the watermark)."""
        closed: list[Window] = []
        sources: list[Source] = []
        idle = 0
        for stream in self.streams.values():
            windows, where = stream.expire(now, self.metrics, self.ctx.dead_letters)  # held multi-line records
            closed.extend(windows)
            sources.extend(where)
            windows, where = stream.close_idle(now, self.idle_timeout)
            idle += len(windows)
            closed.extend(windows)
            sources.extend(where)
        if closed:
            self.metrics.windows_closed_idle.inc(idle)
            self._queue(closed, sources)
            self.metrics.open_windows.set(sum(s.open_count for s in self.streams.values()))

    def _queue(self, windows: list[Window], sources: list[Source]) -> None:
        if windows:
            if not self._queued:
                self._queued_since = time.monotonic()
            self._queued.extend(windows)
            self._queued_sources.extend(sources)

    def score_queued(self) -> None:
        """Score every queued window into the sink buffer; then (only then) their partitions accept them."""
        windows, sources = self._queued, self._queued_sources
        self._queued, self._queued_sources = [], []
        self.output.score(windows, sources)
        for stream in self.streams.values():
            stream.accept()

    def alive(self) -> tuple[bool, str]:
        """Liveness: the loop completed a poll within ``liveness_timeout`` (a stuck loop is restarted)."""
        stalled = time.monotonic() - self.last_poll
        if stalled > self.opts.liveness_timeout:
            return False, f"no completed poll for {stalled:.0f} s"
        return True, "ok"

    # ----------------------------------------------------------------------------------- checkpoints
    def commit(self) -> bool:
        """A checkpoint of every owned partition (:meth:`Checkpoint.commit`); pauses input while the sink
        is down and resumes it when the sink is back. False when nothing new could be committed."""
        if self.fatal:
            return False  # after a fatal error nothing more is committed: the records are read again
        self.score_queued()
        ok = self.checkpoint.commit(self.streams)
        if self.output.down:
            self._pause_all()
        else:
            self._resume_all()
        return ok

    def finish(self) -> bool:
        """End of input: close every window, index, commit. Retries Elasticsearch until it works or SIGTERM."""
        closed: list[Window] = []
        sources: list[Source] = []
        for stream in self.streams.values():
            for window in stream.flush(self.metrics, self.ctx.dead_letters):
                closed.append(window)
                sources.append(stream.source_of(window))
        self._queue(closed, sources)
        self.score_queued()
        self.metrics.open_windows.set(0)
        while True:
            ok = self._commit_drained()
            if not self.output.down:
                return ok
            if self.stopping:
                return False
            while not self.output.retry_due() and not self.stopping:
                self.consumer.poll(timeout_ms=200)

    def _commit_drained(self) -> bool:
        """Checkpoints until the sink holds nothing (at exit). Each checkpoint's flush has a time budget, so a
        large backlog takes several, with a poll between them that keeps the member in its group (records it
        fetches are not processed: nothing is committed past them, they are read again)."""
        ok = self.commit()
        while not ok and not self.fatal and not self.output.down and self.output.pending:
            self.consumer.poll(timeout_ms=0)
            ok = self.commit()
        return ok

    # ------------------------------------------------------------------------------------ rebalances
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """IO thread, main thread parked in poll: checkpoint what we own of ``revoked``."""
        owned = [tp for tp in revoked if tp in self.streams]
        if self.fatal or not owned or self.output.down:
            return  # nothing safe to add: the new owner re-reads from the last commit
        try:
            self.score_queued()  # the main thread is parked in poll: the queue is ours to score
            await self.checkpoint.commit_revoked(self.streams, owned)
        except DeadLetterError as exc:
            log.error("a dead letter could not be written; stopping without committing further: %s", exc)
            self.fatal = self.stopping = True
        except KafkaError as exc:
            log.warning("could not checkpoint revoked partitions: %s", exc)
        if self.output.down:
            self._pause_all()

    def lost(self, partitions: set[TopicPartition]) -> None:
        """IO thread: the group took ``partitions`` away without a revocation (this member expired: no heartbeat
        within the session timeout, or no poll within ``max.poll.interval.ms``). Nothing is committed for them."""
        if partitions:
            log.warning("partitions lost (group membership expired; the new owner re-reads from the last commit): %s",
                        sorted(f"{tp.topic}/{tp.partition}" for tp in partitions))
            self.metrics.partitions_lost.inc(len(partitions))
        self.drop(partitions)

    def drop(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.streams.pop(tp, None)
            self.to_load.discard(tp)
            self.checkpoint.forget(tp)
            self.metrics.forget_partition(tp.topic, tp.partition)
        self.metrics.assigned.set(len(self.streams) + len(self.to_load))
        self._last_activity = time.monotonic()

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """IO thread: pause the new partitions until the main thread has loaded their state."""
        new = [tp for tp in assigned if tp not in self.streams]
        if new:
            self.consumer.pause(*new)
            self.to_load.update(new)
        self.ever_assigned.update(assigned)
        log.info("partitions assigned: %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))
        self.metrics.assigned.set(len(self.streams) + len(self.to_load))
        self._last_activity = time.monotonic()

    def _load_assigned(self) -> None:
        for tp in sorted(self.to_load):
            try:
                start, state = load_start(self.consumer, tp, self.state_topic)
            except KafkaError as exc:
                log.warning("cannot read the committed offset of %s yet: %s", tp, exc)
                return
            ledger = PartitionLedger(f"{tp.topic}/{tp.partition}", start, state)
            self.streams[tp] = PartitionStream(tp, self.opts.settings, self.ctx.tag, ledger, state,
                                               self.opts.input_format)
            self.to_load.discard(tp)
            if not self.output.down:
                self.consumer.resume(tp)

    def _pause_all(self) -> None:
        parts = list(self.streams)
        if parts:
            self.consumer.pause(*parts)
        self._paused = True
        self.metrics.paused.set(1)

    def _resume_all(self) -> None:
        if not self._paused:
            return
        parts = list(self.streams)
        if parts:
            self.consumer.resume(*parts)
        self._paused = False
        self.metrics.paused.set(0)

    # ---------------------------------------------------------------------------------------- status
    def _idle(self) -> bool:
        """``exit_when_idle`` reached: nothing arrived for that long and nothing is left to read."""
        limit = self.opts.exit_when_idle
        if limit is None or self.output.down or self.to_load or not self.ever_assigned:
            return False  # never idle before the group gave us partitions: nothing was read yet
        if time.monotonic() - self._last_activity < limit:
            return False
        for tp in self.streams:
            high = self.consumer.highwater(tp)
            if high is not None and self.consumer.position(tp, timeout_ms=1000) < high:
                self._last_activity = time.monotonic()  # a backlog (e.g. after a pause): keep reading
                return False
        return True

    def _update_lag(self) -> None:
        for tp, stream in self.streams.items():
            high = self.consumer.highwater(tp)
            position = stream.ledger.next_offset
            if high is not None and position is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def readiness(self) -> tuple[bool, str]:
        if self.output.down:
            return False, f"Elasticsearch unavailable: {self.output.last_error}"
        if not self.streams:
            return False, "no partitions assigned"
        return True, f"{len(self.streams)} partitions"

    def stop(self, *_: Any) -> None:
        """Signal handler: finish the current step, checkpoint, commit and leave the group."""
        self.stopping = True
