"""Dead letters: reasons from decoder flags, topic names, headers, and failures that must stop commits."""

from __future__ import annotations

import pytest

from pipeline.stream.dead_letters import (
    MAX_VALUE_BYTES,
    DeadLetterError,
    DeadLetters,
    dlq_topic_for,
    record_reasons,
)
from tests.fakes import RecordingProducer


def test_reasons_come_from_decoder_flags_in_a_fixed_order() -> None:
    assert record_reasons(("truncated", "bad_timestamp", "invalid_utf8")) == ["invalid_utf8", "truncated"]
    assert record_reasons(("unmatched", "bad_timestamp")) == []
    assert record_reasons(("not_json",)) == ["not_json"]


def test_topic_names() -> None:
    assert dlq_topic_for("app-logs") == "app-logs.dlq"
    assert dlq_topic_for("app-logs", "all-dead-letters") == "all-dead-letters"


def test_headers_name_reason_and_source() -> None:
    producer = RecordingProducer()
    seen: list[str] = []
    letters = DeadLetters(producer, on_sent=seen.append)  # type: ignore[arg-type]
    letters.send("logs", 3, 1234, b"\xff raw", ["invalid_utf8", "truncated"], key=b"k", detail="x" * 5000,
                 extra={"original.bytes": "10485760"})
    [sent] = producer.sent
    assert sent["topic"] == "logs.dlq" and sent["value"] == b"\xff raw" and sent["key"] == b"k"
    assert sent["headers"]["reason"] == b"invalid_utf8,truncated"
    assert sent["headers"]["source.topic"] == b"logs"
    assert sent["headers"]["source.partition"] == b"3" and sent["headers"]["source.offset"] == b"1234"
    assert len(sent["headers"]["error.message"]) == 1000  # details are capped
    assert sent["headers"]["original.bytes"] == b"10485760"
    assert seen == ["invalid_utf8", "truncated"]
    assert letters.pending == 1
    letters.flush()
    assert letters.pending == 0


class _FailedFuture:
    def get(self, timeout: float | None = None) -> None:
        raise TimeoutError("broker unreachable")


class FailingProducer(RecordingProducer):
    def send(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _FailedFuture()


def test_a_dead_letter_that_was_not_written_raises() -> None:
    letters = DeadLetters(FailingProducer())  # type: ignore[arg-type]
    letters.send("logs", 0, 5, b"x", ["not_json"])
    with pytest.raises(DeadLetterError, match="logs/0@5"):
        letters.flush()


def test_a_dead_letter_that_was_not_written_stays_pending() -> None:
    """A failed dead letter must fail every later flush too: no checkpoint may ever commit past its record."""
    letters = DeadLetters(FailingProducer())  # type: ignore[arg-type]
    letters.send("logs", 0, 5, b"x", ["not_json"])
    for _ in range(2):
        with pytest.raises(DeadLetterError, match="logs/0@5"):
            letters.flush()
    assert letters.pending == 1


def test_a_dead_letter_never_exceeds_what_a_default_broker_takes() -> None:
    """With ``--max-line-bytes`` above 1 MiB a cut record is still larger than the dead-letter topic accepts by
    default (``message.max.bytes`` 1 MiB); its dead letter would fail for ever and stop the worker on that
    record at every restart. The value is cut to fit, and ``original.bytes`` says how large the record was."""
    producer = RecordingProducer()
    letters = DeadLetters(producer)  # type: ignore[arg-type]
    letters.send("logs", 0, 7, b"x" * (4 << 20), ["truncated"], detail="d", extra={"original.bytes": "10485760"})
    letters.send("logs", 0, 8, b"\xff" * (2 << 20), ["invalid_utf8"])
    cut, bad = producer.sent
    assert len(cut["value"]) == MAX_VALUE_BYTES and cut["headers"]["original.bytes"] == b"10485760"
    assert len(bad["value"]) == MAX_VALUE_BYTES and bad["headers"]["original.bytes"] == str(2 << 20).encode()
    assert MAX_VALUE_BYTES + 64 * 1024 <= 1 << 20  # room for the key, headers and batch overhead
