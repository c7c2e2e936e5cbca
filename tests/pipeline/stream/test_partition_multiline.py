"""Multi-line records in the worker: per key, in offset order, never committed past while held, rebuilt on replay."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition

from pipeline.config import PipelineSettings
from pipeline.records import TemplateMatch, Window
from pipeline.stages import presets
from pipeline.stream.ledger import PartitionLedger
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.partition import PartitionStream

TP = TopicPartition("logs", 0)
ORIGIN = "logs/0"
SETTINGS = PipelineSettings(entity_regex=r"svc-\w+", window="tumbling", window_size=60.0, multiline_timeout=1.0)
TRACE = ["2026-11-30T10:00:01Z svc-a ERROR request 42 failed",
         "java.lang.IllegalStateException: backend refused",
         "\tat com.acme.Client.call(Client.java:118)",
         "\tat com.acme.Service.run(Service.java:57)",
         "Caused by: java.net.SocketTimeoutException: Read timed out",
         "\t... 12 more"]


class NoDeadLetters:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, *args: object, **kwargs: object) -> None:
        self.sent.append(args)


def tag(message: str) -> TemplateMatch:
    return TemplateMatch("T" + str(abs(hash(message.split(" ", 2)[-1])) % 10**10), message)


def record(offset: int, text: str, key: bytes) -> SimpleNamespace:
    return SimpleNamespace(value=text.encode(), topic=TP.topic, partition=TP.partition, offset=offset, key=key,
                           timestamp=1_796_000_000_000)


def interleaved() -> list[SimpleNamespace]:
    """svc-a's trace with svc-b's one-line records between its lines (two pods, one partition)."""
    out = []
    offset = 0
    for i, text in enumerate(TRACE):
        out.append(record(offset, text, b"svc-a"))
        offset += 1
        out.append(record(offset, f"2026-11-30T10:00:0{i + 2}Z svc-b INFO ping {i}", b"svc-b"))
        offset += 1
    return out


def stream(start: int | None = None, state: object = None) -> PartitionStream:
    return PartitionStream(TP, SETTINGS, tag, PartitionLedger(ORIGIN, start, state), state)  # type: ignore[arg-type]


def windows_of(s: PartitionStream, closed: list[Window]) -> dict[str, Window]:
    closed = closed + s.flush()
    return {w.entity_id: w for w in closed}


def test_a_trace_interleaved_with_another_key_is_one_record() -> None:
    s, metrics = stream(), WorkerMetrics()
    closed, _ = s.read(interleaved(), metrics, NoDeadLetters())  # type: ignore[arg-type]
    done, _ = s.expire(10**12, metrics, NoDeadLetters())  # type: ignore[arg-type]
    windows = windows_of(s, closed + done)
    a = windows["svc-a"]
    assert a.count == 1 and len(a.counts) == 1  # one record, one template (from the first line)
    assert [*a.samples.values()][0].splitlines() == TRACE  # the sample is the whole record
    assert windows["svc-b"].count == len(TRACE)
    assert metrics.registry.get_sample_value("logwarden_worker_multiline_records_total") == 1
    assert metrics.registry.get_sample_value("logwarden_worker_multiline_lines_total") == len(TRACE)


def test_a_held_record_is_never_committed_past_and_is_rebuilt_after_a_crash() -> None:
    lines = interleaved()
    s = stream()
    s.read(lines, WorkerMetrics(), NoDeadLetters())  # type: ignore[arg-type]
    s.accept()
    point = s.checkpoint()
    assert point is not None
    committed, state = point
    assert committed == 0  # svc-a's trace (offset 0) is held: svc-b's records after it do not move the commit
    # Crash: a new owner reads from the committed offset with the saved state and rebuilds the same record.
    again = stream(committed, state)
    closed, _ = again.read(lines[committed:], WorkerMetrics(), NoDeadLetters())  # type: ignore[arg-type]
    assert again.joiner is not None and again.joiner.held_offset() == 0
    windows = windows_of(again, closed)
    assert windows["svc-a"].count == 1 and [*windows["svc-a"].samples.values()][0].splitlines() == TRACE


def test_the_timeout_hands_a_quiet_keys_record_on_and_then_commits_past_it() -> None:
    s, metrics = stream(), WorkerMetrics()
    s.read(interleaved(), metrics, NoDeadLetters())  # type: ignore[arg-type]
    assert s.expire(0.0, metrics, NoDeadLetters()) == ([], [])  # type: ignore[arg-type]  # not yet quiet long enough
    s.expire(10**12, metrics, NoDeadLetters())  # type: ignore[arg-type]
    s.accept()
    assert s.joiner is not None and s.joiner.held_offset() is None
    point = s.checkpoint()
    assert point is not None and point[0] == 0  # the open tumbling windows still hold offset 0 and 1
    assert s.ledger.next_offset == len(TRACE) * 2  # every line read was handed on


def test_without_multiline_every_line_is_a_record() -> None:
    s = PartitionStream(TP, PipelineSettings(entity_regex=r"svc-\w+", window="tumbling", multiline=False), tag,
                        PartitionLedger(ORIGIN, None))
    metrics = WorkerMetrics()
    closed, _ = s.read(interleaved(), metrics, NoDeadLetters())  # type: ignore[arg-type]
    # Every frame is a record of its own; none names the service, so they are counted without entity.
    assert windows_of(s, closed)["svc-a"].count == 1
    assert metrics.registry.get_sample_value("logwarden_worker_records_without_entity_total") == len(TRACE) - 1


def test_a_commit_at_a_held_record_saves_the_watermark_in_force_now() -> None:
    ledger = PartitionLedger(ORIGIN, None)
    ledger.before(10, 100.0, 100.0)
    ledger.done(14)  # a record of lines 10..14
    ledger.before(11, 105.0, 105.0)  # a record of another key, after it in offset order
    ledger.done(11)
    point = ledger.checkpoint([], 110.0, 110.0, held=12)  # the record at 11 moved them to 110
    assert point is not None
    offset, state = point
    # 12 is held: everything windowed so far came before it, so a replay from 12 starts from the values now.
    assert offset == 12 and (state.watermark, state.clock) == (110.0, 110.0)
    assert ledger.next_offset == 15  # the lines of the first record are read, whatever order done() came in


def test_cri_partial_lines_are_reassembled_per_pod_in_the_worker() -> None:
    settings = PipelineSettings().merged(presets.apply("cri", {}))
    s = PartitionStream(TP, settings, tag, PartitionLedger(ORIGIN, None))
    feed = [record(0, "2026-11-30T10:00:00.1Z stdout P a very long line, pa", b"pod-a"),
            record(1, "2026-11-30T10:00:00.2Z stdout F ping", b"pod-b"),
            record(2, "2026-11-30T10:00:00.3Z stdout F rt two", b"pod-a")]
    metrics = WorkerMetrics()
    s.read(feed[:2], metrics, NoDeadLetters())  # type: ignore[arg-type]
    s.accept()
    point = s.checkpoint()
    assert point is not None and point[0] == 0  # pod-a's first piece is held: nothing past it is committed
    closed, _ = s.read(feed[2:], metrics, NoDeadLetters())  # type: ignore[arg-type]
    windows = windows_of(s, closed)
    [only] = windows.values()  # one stream entity: the container's output per minute
    assert only.count == 2
    assert sorted(line for line in only.samples.values()) == [
        "2026-11-30T10:00:00.1Z stdout F a very long line, part two", "2026-11-30T10:00:00.2Z stdout F ping"]
