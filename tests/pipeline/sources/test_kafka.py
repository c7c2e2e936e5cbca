"""A consumed Kafka record as the decoder's input: :func:`raw_line`, and :func:`raw_lines` for a poll's batch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka import TopicPartition

from pipeline.records import RawLine
from pipeline.sources.kafka import raw_line, raw_lines
from tests.fakes import consumer_record

TP = TopicPartition("logs", 3)


def test_raw_line_strips_one_line_end_cuts_and_keeps_the_kafka_time() -> None:
    assert raw_line(consumer_record(TP, 7, b"abc\r\n", b"k", 1500), 10) == RawLine(b"abc", "logs/3", 7, b"k", 1.5)
    assert raw_line(consumer_record(TP, 8, b"abcdef\n", None, -1), 4) == RawLine(b"abcd", "logs/3", 8, None, 0.0,
                                                                                  True)
    assert raw_line(consumer_record(TP, 9, None), 4) == RawLine(b"", "logs/3", 9)


_values = st.none() | st.binary(max_size=12).flatmap(
    lambda b: st.sampled_from([b, b + b"\n", b + b"\r\n", b + b"\n\n", b"\r", b"\n", b"\r\n"]))


@given(st.lists(st.tuples(_values, st.none() | st.binary(max_size=3), st.sampled_from([-1, 0, 1, 1_700_000_000_123])),
                max_size=8), st.integers(0, 14))
def test_raw_lines_equals_raw_line_per_record(items: list[tuple[bytes | None, bytes | None, int]], cap: int) -> None:
    records = [consumer_record(TP, 100 + i, value, key, ts) for i, (value, key, ts) in enumerate(items)]
    assert raw_lines(records, cap, "logs/3") == [raw_line(record, cap) for record in records]
