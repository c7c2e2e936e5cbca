"""The worker loop without servers: a FakeConsumer, a FakeElasticsearch behind the real client, a RecordingProducer.

What is checked is the delivery contract of :mod:`pipeline.stream.checkpoint`: the sink is flushed before the
dead letters, both before the offsets are committed; the committed offset never passes a record of an open
window; nothing is committed while Elasticsearch is down (input is paused, then resumed) or after a failure;
a revoked partition is checkpointed on its way out; the end of input closes, indexes and commits everything.

Records are JSON lines ``user NAME did VERB`` (entity ``user``, session windows, gap 10 s, lateness 3 s). The
model has seen ``login``/``read``/``logout`` windows only, so a window holding ``crash`` is an anomaly and the
others are not (:func:`test_the_model_flags_crash_windows_only` pins that down).
"""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaError

from models.artifacts import ModelBundle
from models.detector import WindowDetector
from models.features import FeatureSpace
from pipeline.config import PipelineSettings, WorkerOptions
from pipeline.records import TemplateMatch, Window
from pipeline.scoring import Scorer
from pipeline.stream.worker import Worker, _Rebalance
from tests.fakes import FakeConsumer, FakeElasticsearch, RecordingProducer, worker_context

TP0 = TopicPartition("logs", 0)
TP1 = TopicPartition("logs", 1)
SETTINGS = PipelineSettings(entity_regex=r"user (?P<user>\w+)", window="session", session_gap=10.0,
                            max_session=1000.0, allowed_lateness=3.0)
KNOWN = ("login", "read", "logout")


def tag(message: str) -> TemplateMatch:
    verb = message.split()[-1]
    return TemplateMatch(f"T{verb}", f"user <*> did {verb}", verb in KNOWN)


def line(ts: float, user: str, verb: str, **extra: Any) -> bytes:
    return json.dumps({"@timestamp": ts, "message": f"user {user} did {verb}", **extra}).encode()


def bad_utf8(ts: float, user: str) -> bytes:
    """A record the worker windows (bytes replaced) and dead-letters as ``invalid_utf8``."""
    return line(ts, user, "login", host="HOST").replace(b"HOST", b"h\xffst")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    train = [{"Tlogin": 1, "Tlogout": 1}, {"Tlogin": 1, "Tread": 2, "Tlogout": 1}, {"Tlogin": 1},
             {"Tlogin": 1, "Tread": 1}, {"Tlogin": 2, "Tread": 3, "Tlogout": 1}] * 10
    space = FeatureSpace().fit(train, {f"T{v}": f"user <*> did {v}" for v in KNOWN})
    detector = WindowDetector(n_estimators=30).fit(space.transform(train))
    return Scorer(ModelBundle(miner_state={}, features=space, detector=detector, settings={}, version="v1"))


class Rig:
    """A Worker over fakes that share one event log; ``options`` override WorkerOptions fields."""

    def __init__(self, scorer: Scorer, partitions: tuple[TopicPartition, ...] = (TP0,), **options: Any) -> None:
        self.events: list[str] = []
        self.es = FakeElasticsearch()
        self.es.events = self.events
        self.producer = RecordingProducer(self.events)
        self.consumer = FakeConsumer(partitions, self.events)
        # Sink flushes only at checkpoints the tests ask for; closed windows scored in the step that closed them.
        values: dict[str, Any] = {"commit_interval": 3600.0, "flush_interval": 3600.0, "score_delay": 0.0, **options}
        opts = WorkerOptions(topics=("logs",), settings=SETTINGS, **values)
        self.worker = Worker(worker_context(opts, scorer, tag, self.es, self.producer), consumer=self.consumer)

    def subscribe(self) -> None:
        """What ``Worker.run`` does first, for tests that drive ``step`` themselves."""
        self.consumer.subscribe(topics=["logs"], listener=_Rebalance(self.worker))

    def indexed(self) -> list[str]:
        return sorted(doc["entity"]["id"] for doc in self.es.all_docs().values())

    def open_windows(self, tp: TopicPartition) -> list[Window]:
        return list(self.worker.streams[tp].windower.open_windows())

    def first_open_offset(self, tp: TopicPartition) -> int:
        return min(w.positions[f"{tp.topic}/{tp.partition}"] for w in self.open_windows(tp))

    def records_read(self) -> float:
        return self.worker.metrics.registry.get_sample_value("logwarden_worker_records_total",
                                                             {"topic": "logs"}) or 0.0

    def gauge(self, name: str) -> float | None:
        return self.worker.metrics.registry.get_sample_value(f"logwarden_worker_{name}")


# TP0: alice's and bob's sessions close when dave's record moves the watermark to 1030; eve's stays open
# (offset 2 is her first record), so the commit must stay at 2 although offsets 3-7 are done.
TP0_LINES = [
    line(1000, "alice", "login"),  # 0
    line(1001, "bob", "login"),  # 1
    line(1002, "eve", "login"),  # 2   eve: open until the watermark passes 1033
    line(1003, "alice", "crash"),  # 3   alice: anomaly
    line(1004, "bob", "logout"),  # 4
    bad_utf8(1005, "carol"),  # 5   a dead letter
    line(1012, "eve", "read"),  # 6
    line(1020, "eve", "crash"),  # 7   eve: anomaly, once closed
    line(1030, "dave", "login"),  # 8   dave: open
]


def test_the_model_flags_crash_windows_only(scorer: Scorer) -> None:
    """The premise of the other tests' expectations."""
    rig = Rig(scorer, exit_when_idle=0.0)
    rig.consumer.append(TP0, *TP0_LINES)
    assert rig.worker.run() == 0
    assert rig.indexed() == ["alice", "eve"]  # bob, carol, dave: normal windows are not indexed
    assert rig.worker.metrics.registry.get_sample_value("logwarden_worker_windows_scored_total") == 5


# ------------------------------------------------------------------------------------------ commit order
def test_a_checkpoint_indexes_then_flushes_dead_letters_then_commits_below_open_windows(scorer: Scorer) -> None:
    rig = Rig(scorer, commit_interval=0.0)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()  # assignment: the partition is paused until its committed offset and state are loaded
    assert TP0 in rig.worker.streams and rig.events == [] and rig.records_read() == 0
    rig.worker.step()
    assert rig.events == ["bulk", "producer.flush", "commit"]
    assert rig.indexed() == ["alice"]
    [letter] = rig.producer.sent
    assert letter["headers"]["reason"] == b"invalid_utf8" and letter["headers"]["source.offset"] == b"5"
    [offsets] = rig.consumer.commits
    assert set(offsets) == {TP0}
    assert offsets[TP0].offset == rig.first_open_offset(TP0) == 2  # eve's window holds offset 2: not past it
    state = json.loads(offsets[TP0].metadata)["state"]  # the replay state travels in the commit metadata
    assert state["o"] == 2 and set(state["e"]["user"]) >= {"alice", "bob", "carol"}

    rig.consumer.append(TP0, line(1050, "frank", "login"))  # 9: closes eve (anomaly) and dave
    rig.worker.step()
    assert rig.events[3:] == ["bulk", "commit"]  # no dead letter pending: no producer flush
    assert rig.indexed() == ["alice", "eve"]
    assert rig.consumer.committed_at(TP0) == rig.first_open_offset(TP0) == 9

    rig.worker.step()  # nothing new: no bulk request and no commit of the same offset again
    assert len(rig.events) == 5 and len(rig.consumer.commits) == 2


def test_a_failed_offset_commit_is_retried_at_the_next_checkpoint(scorer: Scorer) -> None:
    rig = Rig(scorer)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()
    rig.consumer.commit_errors = [KafkaError("coordinator moved (scripted)")]
    assert rig.worker.commit() is False
    assert rig.consumer.committed_at(TP0) is None and not rig.worker.output.down
    assert rig.worker.commit() is True
    assert [c[TP0].offset for c in rig.consumer.commits] == [2, 2]
    assert rig.events == ["bulk", "producer.flush", "commit:failed", "commit"]  # documents were sent once


# ------------------------------------------------------------------------------------- sink outage
def test_no_commit_while_elasticsearch_is_down_input_paused_then_resumed(scorer: Scorer) -> None:
    rig = Rig(scorer, commit_interval=0.0)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.es.down = True
    rig.worker.step()
    assert rig.events == ["bulk:down"]
    assert rig.consumer.commits == [] and rig.consumer.async_commits == []
    assert rig.producer.sent and "producer.flush" not in rig.events  # the dead letter waits for the sink
    assert rig.consumer.paused() == {TP0} and rig.gauge("paused") == 1 and rig.gauge("sink_up") == 0
    assert rig.worker.readiness()[0] is False
    assert rig.worker.commit() is False  # an explicit checkpoint fails the same way
    assert rig.consumer.commits == [] and rig.events == ["bulk:down", "bulk:down"]

    rig.consumer.append(TP0, line(1050, "frank", "login"))
    read = rig.records_read()
    rig.worker.output.backoff.retry_at = float("inf")  # not due yet
    rig.worker.step()
    assert rig.records_read() == read == len(TP0_LINES)  # paused: nothing fetched
    assert rig.events == ["bulk:down", "bulk:down"]  # and no retry before the backoff is due

    rig.es.down = False
    rig.worker.output.backoff.retry_at = 0.0
    rig.worker.step()
    assert rig.events[2:] == ["bulk", "producer.flush", "commit"]
    assert rig.indexed() == ["alice"] and rig.consumer.committed_at(TP0) == 2
    assert rig.consumer.paused() == set() and rig.gauge("paused") == 0 and rig.gauge("sink_up") == 1
    rig.worker.step()  # resumed: the record appended during the outage is read and closes eve's window
    assert rig.records_read() == len(TP0_LINES) + 1
    assert rig.indexed() == ["alice", "eve"] and rig.consumer.committed_at(TP0) == 9


# -------------------------------------------------------------------------------------------- revocation
TP1_LINES = [
    line(1000, "gina", "login"),  # 0
    line(1001, "hal", "login"),  # 1
    line(1002, "gina", "crash"),  # 2   gina: anomaly
    line(1030, "ivan", "login"),  # 3   ivan: open
]


def two_partitions(scorer: Scorer, **options: Any) -> Rig:
    rig = Rig(scorer, (TP0, TP1), **options)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.consumer.append(TP1, *TP1_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()  # both partitions read; no checkpoint yet (commit_interval)
    assert rig.worker.output.pending == 2 and rig.consumer.commits == [] and rig.events == []
    return rig


def test_revocation_checkpoints_the_revoked_partition_with_an_async_commit(scorer: Scorer) -> None:
    rig = two_partitions(scorer)
    assert rig.open_windows(TP1)
    rig.consumer.rebalance(revoke=[TP1])
    assert rig.events == ["bulk", "producer.flush", "commit_async"]
    [offsets] = rig.consumer.async_commits
    assert set(offsets) == {TP1} and offsets[TP1].offset == 3  # ivan's open window starts at offset 3
    assert rig.consumer.commits == []  # the main thread committed nothing
    assert set(rig.worker.streams) == {TP0} and TP1 not in rig.worker.checkpoint.last_commit
    assert rig.indexed() == ["alice", "gina"]


@pytest.mark.parametrize("known_down", [False, True], ids=["down-found-on-revocation", "down-before"])
def test_revocation_commits_nothing_while_elasticsearch_is_down(scorer: Scorer, known_down: bool) -> None:
    rig = two_partitions(scorer)
    rig.es.down = True
    if known_down:
        assert rig.worker.commit() is False
        assert rig.consumer.paused() == {TP0, TP1}
    rig.consumer.rebalance(revoke=[TP1])
    assert rig.consumer.async_commits == [] and rig.consumer.commits == []
    assert set(rig.worker.streams) == {TP0}  # dropped all the same: the new owner re-reads from the last commit
    assert rig.consumer.paused() == {TP0} and rig.worker.output.down
    assert rig.events == ["bulk:down"] and rig.indexed() == []  # one attempt: none on revocation once known down


def test_eager_rebalance_resumes_from_the_commit_without_duplicate_documents(scorer: Scorer) -> None:
    """Revoke everything, get it back: the worker reloads offsets and replay state from the commit metadata."""
    rig = two_partitions(scorer, exit_when_idle=0.0)
    rig.consumer.rebalance(revoke=[TP0, TP1], assign=[TP0, TP1])
    assert rig.worker.streams == {} and rig.worker.to_load == {TP0, TP1}
    assert rig.consumer.paused() == {TP0, TP1}
    assert rig.worker.run() == 0  # re-reads from offsets 2 and 3, then the end of input closes every window
    assert rig.consumer.committed_at(TP0) == len(TP0_LINES) and rig.consumer.committed_at(TP1) == len(TP1_LINES)
    assert rig.indexed() == ["alice", "eve", "gina"]
    skipped = rig.worker.metrics.registry.get_sample_value("logwarden_worker_replay_skipped_total")
    assert skipped == 3  # TP0 offsets 3, 4 and 5 (alice, bob, carol): already in flushed windows


class FailingDeadLetterProducer(RecordingProducer):
    """Dead letters whose acknowledgement fails (e.g. the dead-letter topic cannot be written)."""

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> Any:
        super().send(topic, key, value, headers)
        return self

    def get(self, timeout: float | None = None) -> None:
        raise KafkaError("NotEnoughReplicas (scripted)")


def test_a_dead_letter_failure_during_revocation_stops_commits_past_its_record(scorer: Scorer) -> None:
    """DeadLetters.flush forgets what it failed to send: the worker must not commit past those records later."""
    rig = Rig(scorer, (TP0, TP1))
    rig.worker.ctx.dead_letters.producer = FailingDeadLetterProducer(rig.events)
    rig.consumer.append(TP0, line(1000, "alice", "login"), bad_utf8(1001, "carol"), line(1030, "bob", "login"))
    rig.consumer.append(TP1, *TP1_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()
    rig.consumer.rebalance(revoke=[TP1])  # the dead letter of TP0 offset 1 cannot be written
    assert rig.consumer.async_commits == []
    rig.worker.commit()
    committed = rig.consumer.committed_at(TP0)
    assert committed is None or committed <= 1, f"committed {committed}: past a record whose dead letter is lost"


# ------------------------------------------------------------------------------------- failure, end of input
class ScorerBug(RuntimeError):
    pass


class ExplodingScorer(Scorer):
    """Fails on any batch holding a window of ``entity``: an exception outside the per-record chain."""

    def __init__(self, bundle: ModelBundle, entity: str) -> None:
        super().__init__(bundle)
        self.entity = entity

    def score_counted(self, windows: Sequence[Window],
                      every: bool = True) -> tuple[list[dict[str, Any]], list[int], int]:
        if any(w.entity_id == self.entity for w in windows):
            raise ScorerBug(f"cannot score the window of {self.entity}")
        return super().score_counted(windows, every)


def test_an_exception_while_processing_commits_nothing_new(scorer: Scorer) -> None:
    rig = Rig(ExplodingScorer(scorer.bundle, "dave"), commit_interval=0.0, max_poll_records=4)
    rig.consumer.append(
        TP0,
        line(1000, "alice", "login"), line(1001, "bob", "login"), line(1003, "alice", "crash"),
        line(1030, "carl", "login"),  # batch 1 (0-3): alice and bob close; committed at 3 (carl)
        line(1031, "dave", "login"), line(1032, "dave", "crash"),
        line(1060, "erin", "login"),  # batch 2 (4-7): closes carl and dave, whose scoring raises
        line(1061, "erin", "read"),
    )
    rig.consumer.on_poll = lambda n: rig.worker.stop() if n > 20 else None  # never loop forever
    try:
        code = rig.worker.run()
    except ScorerBug:  # before issue 9 item 3 run() re-raised what it did not expect; now it exits 1
        code = 1
    assert code == 1
    assert [c[TP0].offset for c in rig.consumer.commits] == [3]
    assert rig.consumer.async_commits == []  # closing the consumer revoked TP0: the listener added nothing
    assert rig.events == ["bulk", "commit", "close"]
    assert rig.indexed() == ["alice"] and rig.consumer.committed_at(TP0) == 3  # carl and dave are read again
    assert rig.consumer.closed and rig.worker.fatal


def test_finish_closes_every_window_indexes_and_commits_the_end_offsets(scorer: Scorer) -> None:
    rig = two_partitions(scorer)
    assert rig.open_windows(TP0) and rig.open_windows(TP1)
    assert rig.worker.finish() is True
    assert all(not rig.open_windows(tp) for tp in (TP0, TP1)) and rig.gauge("open_windows") == 0
    assert rig.indexed() == ["alice", "eve", "gina"]
    assert rig.events == ["bulk", "producer.flush", "commit"]
    [offsets] = rig.consumer.commits
    assert {tp: meta.offset for tp, meta in offsets.items()} == {TP0: len(TP0_LINES), TP1: len(TP1_LINES)}


def test_exit_when_idle_runs_to_the_end_of_input_and_leaves_the_group(scorer: Scorer) -> None:
    rig = Rig(scorer, (TP0, TP1), exit_when_idle=0.0, max_poll_records=3)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.consumer.append(TP1, *TP1_LINES)
    assert rig.worker.run() == 0
    assert rig.consumer.committed_at(TP0) == len(TP0_LINES) and rig.consumer.committed_at(TP1) == len(TP1_LINES)
    assert rig.indexed() == ["alice", "eve", "gina"]
    assert rig.events[-2:] == ["commit", "close"] and rig.consumer.async_commits == []
    assert rig.consumer.closed and rig.consumer.assignment() == set() and rig.worker.streams == {}


# ------------------------------------------------------------------------- issue: real-world input
def test_a_closed_window_holds_its_offsets_until_the_output_accepted_it(scorer: Scorer) -> None:
    """Windows closed by a batch are pending until scored into the sink: a checkpoint taken in between (an
    exception after closing, the revocation that closing the consumer triggers) cannot commit past them."""
    rig = Rig(scorer, commit_interval=3600.0)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()
    stream = rig.worker.streams[TP0]
    records = rig.consumer.poll(timeout_ms=0)[TP0]
    windows, _ = stream.read(records, rig.worker.metrics, rig.worker.ctx.dead_letters)
    assert {w.entity_id for w in windows} == {"alice", "bob", "carol"}  # closed by dave's record (offset 8)
    offset, _ = stream.checkpoint()
    assert offset == 0  # alice's closed-but-not-accepted window still holds offset 0
    stream.accept()
    offset, _ = stream.checkpoint()
    assert offset == 2  # accepted: only eve's open window holds the commit back


def test_revocation_bounds_every_blocking_step_by_the_budget(scorer: Scorer) -> None:
    rig = two_partitions(scorer)
    seen: list[float | None] = []
    flush = rig.worker.output.flush

    def recording_flush(timeout: float | None = None) -> bool:
        seen.append(timeout)
        return flush(timeout)

    rig.worker.output.flush = recording_flush  # type: ignore[method-assign]
    rig.consumer.rebalance(revoke=[TP1])
    assert seen == [pytest.approx(10.0 / 3)]  # a third of the (default) session timeout
    assert rig.events == ["bulk", "producer.flush", "commit_async"]


def test_a_quiet_partition_closes_its_idle_windows_and_indexes_them(scorer: Scorer) -> None:
    rig = Rig(scorer, commit_interval=0.0, idle_close=0.001)
    rig.consumer.append(TP0, line(1000, "alice", "login"), line(1001, "alice", "crash"))
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()  # reads both records: alice's window stays open (no later record moves the watermark)
    assert rig.indexed() == []
    time.sleep(0.01)  # longer than --idle-close
    rig.worker._next_idle_check = 0.0  # noqa: SLF001 - do not wait for the once-a-second check
    rig.worker.step()
    rig.worker.step()
    assert rig.indexed() == ["alice"]
    assert rig.gauge("windows_closed_idle_total") == 1
    assert rig.consumer.committed_at(TP0) == 2


def test_liveness_follows_completed_polls(scorer: Scorer) -> None:
    rig = Rig(scorer, liveness_timeout=30.0)
    rig.subscribe()
    rig.worker.step()
    assert rig.worker.alive() == (True, "ok")
    rig.worker.last_poll -= 31
    ok, reason = rig.worker.alive()
    assert not ok and reason.startswith("no completed poll for 31")


# ------------------------------------------------------------------------- issue 14: batched scoring
def scored(rig: Rig) -> float:
    return rig.worker.metrics.registry.get_sample_value("logwarden_worker_windows_scored_total") or 0.0


def test_closed_windows_wait_in_the_queue_holding_their_offsets_until_scored(scorer: Scorer) -> None:
    """A queued window is pending: its partition's checkpoint offset stays at its first record until it is
    scored, and a checkpoint scores the queue before it flushes and commits."""
    rig = Rig(scorer, score_delay=3600.0)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()
    assert scored(rig) == 0 and len(rig.worker._queued) == 3  # alice, bob, carol closed by dave's record
    offset, _ = rig.worker.streams[TP0].checkpoint()
    assert offset == 0  # alice's queued window holds offset 0
    assert rig.worker.commit() is True
    assert scored(rig) == 3 and rig.worker._queued == []
    assert rig.indexed() == ["alice"] and rig.events == ["bulk", "producer.flush", "commit"]
    assert rig.consumer.committed_at(TP0) == 2  # eve's open window (offset 2) holds the commit now


def test_a_full_queue_is_scored_at_once(scorer: Scorer) -> None:
    rig = Rig(scorer, score_delay=3600.0, score_batch=3)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    rig.worker.step()
    rig.worker.step()
    assert scored(rig) == 3 and rig.worker._queued == [] and rig.worker.output.pending == 1
    assert rig.events == []  # scored into the sink buffer; flushed at the next flush or checkpoint


def test_anomalies_are_indexed_every_flush_interval_without_committing(scorer: Scorer) -> None:
    rig = Rig(scorer, flush_interval=0.01)
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    deadline = time.monotonic() + 5
    while not rig.events and time.monotonic() < deadline:
        rig.worker.step()
    assert rig.events == ["bulk"] and rig.indexed() == ["alice"]
    assert rig.consumer.commits == []  # only a checkpoint commits (commit_interval is an hour)


def test_a_failed_interim_flush_pauses_input_like_a_failed_checkpoint(scorer: Scorer) -> None:
    rig = Rig(scorer, flush_interval=0.01)
    rig.es.down = True
    rig.consumer.append(TP0, *TP0_LINES)
    rig.subscribe()
    deadline = time.monotonic() + 5
    while not rig.worker.output.down and time.monotonic() < deadline:
        rig.worker.step()
    assert rig.worker.output.down and rig.gauge("paused") == 1 and TP0 in rig.consumer.paused()
    assert rig.consumer.commits == []


def test_lines_of_templates_the_model_does_not_know_are_counted_and_cost_no_state(scorer: Scorer) -> None:
    """A burst of high-cardinality junk: every line is counted as unseen, and the worker holds no template state
    for it (it matches only; the windows close and are gone)."""
    rng = random.Random(5)
    junk = [line(1040 + i * 0.01, f"u{i % 37}", "".join(rng.choice(string.ascii_lowercase) for _ in range(12)))
            for i in range(2000)]
    rig = Rig(scorer, (TP0,), exit_when_idle=0.0, max_poll_records=200)
    rig.consumer.append(TP0, *TP0_LINES, *junk)
    assert rig.worker.run() == 0
    unseen = rig.worker.metrics.registry.get_sample_value("logwarden_worker_unseen_template_lines_total")
    assert unseen == 2 + len(junk)  # the two "crash" lines of TP0_LINES and every junk line
    assert rig.gauge("open_windows") == 0


def test_exit_drains_a_backlog_one_budgeted_flush_at_a_time_polling_between_and_commits_once(
        scorer: Scorer) -> None:
    """At the end of input the sink may hold more than one flush's time budget can write: the worker checkpoints
    again and again, with a poll between two (its records are not processed), and commits the end offsets only
    once every anomaly is indexed; no commit happens before that."""
    rig = two_partitions(scorer)
    rig.worker.ctx.sink.chunk_size = 1  # one anomaly per bulk request
    now = [0.0]

    def clock() -> float:
        now[0] += 2.0  # every bulk request takes longer than the 1 s budget
        return now[0]

    rig.worker.output.flush_budget = 1.0
    rig.worker.output.clock = clock
    rig.consumer.on_poll = lambda n: rig.events.append("poll")
    assert rig.worker.finish() is True
    assert rig.indexed() == ["alice", "eve", "gina"]
    assert rig.events == ["bulk", "poll", "bulk", "poll", "bulk", "producer.flush", "commit"]
    [offsets] = rig.consumer.commits
    assert {tp: meta.offset for tp, meta in offsets.items()} == {TP0: len(TP0_LINES), TP1: len(TP1_LINES)}
