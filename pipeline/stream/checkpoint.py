"""The one place the worker's commit order is written: :meth:`Checkpoint.commit`.

**Commit order**, per checkpoint, for the partitions being checkpointed:

1. **flush the sink**: every closed anomalous window is indexed in Elasticsearch, or handed back as rejected
   (:meth:`pipeline.stream.output.AnomalyOutput.flush`). If Elasticsearch is down the checkpoint stops here:
   nothing is committed, the worker pauses its partitions and retries on the backoff schedule. A flush has a
   time budget (``--es-timeout``): a backlog it could not write in time also ends the checkpoint without a
   commit, and the next one, after a poll, goes on with it;
2. **flush dead letters**: the producer has every dead letter acknowledged with ``acks=all``, including the
   documents rejected in step 1 (:meth:`pipeline.stream.dead_letters.DeadLetters.flush`); a dead letter that
   cannot be written raises :class:`~pipeline.stream.dead_letters.DeadLetterError` and stops the worker;
3. **save replay state**: each partition's :class:`~pipeline.stream.ledger.SavedState`, inline in the commit
   metadata when it fits, else compressed, written in chunks to the compacted state topic and acknowledged
   (:class:`~pipeline.stream.state_topic.StateTopic`); entries the ledger's byte bound left out are counted
   (``replay_state_dropped``);
4. **commit offsets**: ``commit({tp: OffsetAndMetadata(offset, metadata, -1)})``.

Why in this order: each step makes durable what the next one points at. An offset is committed only once every
anomaly of the records before it is in Elasticsearch or on the dead-letter topic, and once the state that
tells a successor which of those records to skip is stored, so a crash between any two steps loses nothing (the
records are read again) and duplicates nothing (deterministic ``_id`` s overwrite; the replay state skips what
is already in flushed windows). Which offset is committed and what the replay state holds is explained in
:mod:`pipeline.stream.ledger`.

A checkpoint runs on the main thread (:meth:`Checkpoint.commit`), or in the rebalance listener for the
partitions being revoked (:meth:`Checkpoint.commit_revoked`); both run the same four steps. The listener runs
on the consumer's IO thread, which also sends heartbeats, so a revocation checkpoint has a time budget
(``revoke_budget``, a third of the session timeout by default) for each blocking step: the sink flush without
retries, the producer flush and the state write. A step that does not finish in time ends the checkpoint
without a commit: the new owner reads again from the last commit, and deterministic ``_id`` s make that
harmless, while a member that blocked its heartbeats would be expelled from the group mid-rebalance.

The fault tests make the worker die between any two steps (``LOGWARDEN_TEST_CRASH_AT``, a test-only hook:
:mod:`pipeline.stream.faults`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from pipeline.stream.dead_letters import DeadLetters
from pipeline.stream.faults import CrashPoints
from pipeline.stream.ledger import SavedState, inline_metadata, reference_metadata
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.output import AnomalyOutput
from pipeline.stream.state_topic import EncodedState, StateTopic, encode_state

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, OffsetAndMetadata]


class Checkpointable(Protocol):
    """A partition's side of a checkpoint: the offset it may commit and the state that goes with it."""

    def checkpoint(self) -> tuple[int, SavedState] | None: ...


class Checkpoint:
    """Runs the commit order above for a worker's partitions; remembers what was last committed."""

    def __init__(self, consumer: Any, output: AnomalyOutput, dead_letters: DeadLetters, state_topic: StateTopic,
                 metrics: WorkerMetrics, revoke_budget: float = 10.0 / 3) -> None:
        self.consumer = consumer
        self.revoke_budget = revoke_budget
        self.output = output
        self.dead_letters = dead_letters
        self.state_topic = state_topic
        self.metrics = metrics
        self.last_commit: dict[TopicPartition, tuple[int, str]] = {}
        self._large: dict[TopicPartition, tuple[str, str]] = {}  # (digest, metadata) last written
        self.crash = CrashPoints.from_env()  # test-only fault injection (pipeline.stream.faults); off when unset
        self._busy = False  # the checkpoint in progress had anomalies to index
        self._via_topic = False  # ... and wrote a replay state to the state topic

    def commit(self, streams: Mapping[TopicPartition, Checkpointable],
               partitions: Iterable[TopicPartition] | None = None) -> bool:
        """Steps 1-4 on the main thread. False when Elasticsearch is down or the commit failed."""
        offsets = self._prepare(streams, partitions)
        if offsets is None:
            return False
        if not offsets:
            return True
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (retried at the next checkpoint): %s", exc)
            return False
        self._committed(offsets)
        self.crash.reached("after_commit", self._busy, self._via_topic)
        return True

    async def commit_revoked(self, streams: Mapping[TopicPartition, Checkpointable],
                             partitions: Iterable[TopicPartition]) -> bool:
        """Steps 1-4 for partitions being revoked, from the rebalance listener (the commit is awaited).

        Each blocking step gets at most :attr:`revoke_budget` seconds; one that takes longer commits nothing.
        """
        try:
            offsets = self._prepare(streams, partitions, self.revoke_budget)
        except KafkaTimeoutError as exc:
            log.warning("revocation checkpoint ran out of time (the new owner re-reads from the last commit): %s",
                        exc)
            return False
        if not offsets:
            return offsets is not None
        try:
            await self.consumer.commit_async(offsets)
        except KafkaError as exc:
            log.warning("commit on revocation failed (the new owner re-reads from the last commit): %s", exc)
            return False
        self._committed(offsets)
        self.crash.reached("after_commit", self._busy, self._via_topic)
        return True

    def forget(self, tp: TopicPartition) -> None:
        """A partition left this worker: its last commit and state are the next owner's business."""
        self.last_commit.pop(tp, None)
        self._large.pop(tp, None)

    # ------------------------------------------------------------------------------------- steps 1-3
    def _prepare(self, streams: Mapping[TopicPartition, Checkpointable],
                 partitions: Iterable[TopicPartition] | None, budget: float | None = None) -> Offsets | None:
        """Steps 1-3; the offsets to commit (only those that changed), or None when the sink is down.

        ``budget`` bounds each step (seconds); without it each uses its own, longer retry budget.
        """
        self._busy = self.output.pending > 0
        self._via_topic = False
        if not self.output.flush(budget):
            return None
        self.crash.reached("after_bulk", self._busy)
        if budget is None:
            self.dead_letters.flush()
        else:
            self.dead_letters.flush(timeout=budget)
        self.crash.reached("after_dead_letters", self._busy)
        chosen = [tp for tp in (partitions if partitions is not None else list(streams)) if tp in streams]
        points: dict[TopicPartition, tuple[int, SavedState]] = {}
        for tp in chosen:
            point = streams[tp].checkpoint()
            if point is not None:
                points[tp] = point
        metadata = self._save_states(points, budget)
        self.crash.reached("after_state", self._busy, self._via_topic)
        return {tp: OffsetAndMetadata(offset, metadata[tp], -1) for tp, (offset, _) in points.items()
                if self.last_commit.get(tp) != (offset, metadata[tp])}

    def _save_states(self, points: dict[TopicPartition, tuple[int, SavedState]],
                     budget: float | None = None) -> dict[TopicPartition, str]:
        """Step 3: each state inline when it fits, else compressed into the state topic (unless unchanged)."""
        metadata: dict[TopicPartition, str] = {}
        large: dict[TopicPartition, EncodedState] = {}
        for tp, (_, state) in points.items():
            if state.dropped:
                self.metrics.replay_state_dropped.inc(state.dropped)
            inline = inline_metadata(state)
            if inline is not None:
                metadata[tp] = inline
                continue
            encoded = encode_state(state)
            last = self._large.get(tp)
            if last is not None and last[0] == encoded.digest:
                metadata[tp] = last[1]  # unchanged since the last write: no new state records
            else:
                large[tp] = encoded
        written = self.state_topic.write(large) if budget is None else self.state_topic.write(large, timeout=budget)
        for tp, ref in written.items():
            metadata[tp] = reference_metadata(points[tp][0], ref)
            self._large[tp] = (large[tp].digest, metadata[tp])
        if written:
            self._via_topic = True
            self.metrics.state_topic_writes.inc(len(written))
            log.info("replay state of %s written to the state topic (too large for commit metadata)",
                     sorted(f"{tp.topic}/{tp.partition}" for tp in written))
        return metadata

    # ----------------------------------------------------------------------------------------- step 4
    def _committed(self, offsets: Offsets) -> None:
        for tp, meta in offsets.items():
            self.last_commit[tp] = (meta.offset, meta.metadata)
            self.metrics.committed.labels(tp.topic, str(tp.partition)).set(meta.offset)
        self.metrics.commits.inc()
        log.debug("committed %s", {f"{tp.topic}/{tp.partition}": m.offset for tp, m in offsets.items()})
