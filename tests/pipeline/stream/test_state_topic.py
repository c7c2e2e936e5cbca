"""The state topic's encoding: compressed chunks that fit one Kafka message each, read back whole or not at all."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

import pytest
from kafka import OffsetAndMetadata, TopicPartition

from pipeline.stream.checkpoint import Checkpoint
from pipeline.stream.ledger import MAX_STATE_BYTES, SavedState, inline_metadata, parse_metadata
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.state_topic import (
    CHUNK_BYTES,
    StateTopic,
    assemble,
    decode_state,
    encode_state,
    load_start,
    parse_ref,
)

TP = TopicPartition("logs", 3)
ORIGIN = "logs/3"
PRODUCER_CAP = 1 << 20  # the worker producer's max_request_size and about the broker's default message size


def hostile_state(offset: int, entities: int) -> SavedState:
    """Incompressible ids (hex digests), odd characters and explicit late offsets."""
    skip = {("block", hashlib.sha256(str(i).encode()).hexdigest()): offset + i for i in range(entities)}
    skip[("message", "caf\u00e9 \"quoted\" \\ \u2028 \ud7ff")] = offset + 3
    return SavedState(offset, 1226262918.5, None, skip, {("block", "late"): (offset + 5, offset + 9)})


class _Sent:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.partition = 0

    def get(self, timeout: float | None = None) -> _Sent:
        return self


class OffsetProducer:
    """A producer that appends to one in-memory partition and hands back offsets."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, partition: int | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> _Sent:
        assert value is None or len(value) + len(key or b"") + 200 < PRODUCER_CAP, "record over the producer cap"
        self.log.append({"key": key, "value": value, "partition": partition, "headers": list(headers or [])})
        return _Sent(len(self.log) - 1)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def records(self, first: int = 0, last: int | None = None) -> list[tuple[Any, Any, Any]]:
        end = len(self.log) - 1 if last is None else last
        return [(r["key"], r["headers"], r["value"]) for r in self.log[first:end + 1]]


def ready_topic(producer: OffsetProducer) -> StateTopic:
    topic = StateTopic("unused:9092", "g.logwarden-state", producer)  # type: ignore[arg-type]
    topic._ready = True  # the topic exists (ensure_topics is tested against the real broker)
    return topic


def test_encoding_round_trips_and_every_chunk_fits_one_message() -> None:
    state = hostile_state(1_000, 50_000)
    assert state.size() > 2 * PRODUCER_CAP
    encoded = encode_state(state)
    assert len(encoded.chunks) >= 2 and all(0 < len(c) <= CHUNK_BYTES for c in encoded.chunks)
    assert sum(map(len, encoded.chunks)) < state.size() * 0.8  # compressed
    assert decode_state(encoded.chunks, encoded.digest) == state
    small = encode_state(SavedState(5))
    assert len(small.chunks) == 1 and decode_state(small.chunks, small.digest) == SavedState(5)


def test_chunks_out_of_order_missing_or_of_another_state_are_refused() -> None:
    encoded = encode_state(hostile_state(0, 25_000))
    other = encode_state(hostile_state(1, 25_000))
    assert len(encoded.chunks) == len(other.chunks) >= 2
    for chunks in (encoded.chunks[::-1], encoded.chunks[:-1], (other.chunks[0], *encoded.chunks[1:]),
                   (*encoded.chunks[:-1], encoded.chunks[-1][:-10])):
        with pytest.raises(ValueError):
            decode_state(chunks, encoded.digest)


def test_corrupt_or_oversized_payloads_are_refused() -> None:
    def sealed(payload: bytes) -> tuple[list[bytes], str]:
        return [payload], hashlib.sha256(payload).hexdigest()

    bomb = zlib.compress(b"[" * (MAX_STATE_BYTES + 10))
    for payload in (b"not zlib", zlib.compress(b"{not json"), zlib.compress(b'{"v": 99}'),
                    zlib.compress(b"\xff\xfe"), zlib.compress(b"[]"), bomb, zlib.compress(b'{"v":1}')[:-3]):
        with pytest.raises(ValueError):
            decode_state(*sealed(payload))


def test_written_chunks_are_keyed_apart_and_reassembled_only_from_one_checkpoint() -> None:
    producer = OffsetProducer()
    topic = ready_topic(producer)
    first_state = hostile_state(100, 25_000)
    [ref1] = topic.write({TP: first_state}).values()
    second_state = hostile_state(200, 25_000)
    [ref2] = topic.write({TP: second_state}).values()
    part, lo, hi, digest, count = parse_ref(ref2)
    assert part == 0 and count >= 2 and hi - lo + 1 == count
    assert all(r["partition"] == 0 for r in producer.log)
    assert len({r["key"] for r in producer.log[lo:hi + 1]}) == count  # compaction keeps each chunk
    chunks = assemble(producer.records(lo, hi), ORIGIN, digest, count)
    assert chunks is not None and decode_state(chunks, digest) == second_state
    # Everything in the topic: still only the chunks of the state the digest names.
    assert decode_state(assemble(producer.records(), ORIGIN, digest, count), digest) == second_state
    # Chunks of checkpoint 1 with chunk 0 of checkpoint 2 missing (compacted): not a state.
    mixed = producer.records(ref1[1], ref1[2]) + producer.records(lo + 1, hi)
    assert assemble(mixed, ORIGIN, digest, count) is None
    assert assemble(producer.records(lo, hi), "logs/4", digest, count) is None  # another partition's


def test_a_smaller_state_tombstones_the_chunks_it_no_longer_has() -> None:
    producer = OffsetProducer()
    topic = ready_topic(producer)
    [big] = topic.write({TP: hostile_state(0, 25_000)}).values()
    assert big[4] >= 2
    [small] = topic.write({TP: SavedState(10, None, None, {("block", "x"): 11})}).values()
    assert small[4] == 1
    tombstones = [r["key"] for r in producer.log[small[2] + 1:] if r["value"] is None]
    assert tombstones == [f"{ORIGIN}#{i}".encode() for i in range(1, big[4])]


def test_references_of_another_shape_are_not_used() -> None:
    for ref in ([0, 42], [0, 5, 4, "d", 1], [0, 1, 2, "d", 0], "x", None, [0, -1, 2, "d", 1], [0, 1, 2, 3, 1]):
        assert parse_ref(ref) is None
    assert ready_topic(OffsetProducer()).read(TP, [0, 42]) is None  # an older version's reference: cold start


class _Up:
    """A sink output and dead letters that always work (``flush(timeout)`` as the real ones take it)."""

    pending = 0  # nothing buffered (what the checkpoint reads before its flush)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class _Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append(offsets)


class _Point:
    def __init__(self, offset: int, state: SavedState) -> None:
        self.point = (offset, state)

    def checkpoint(self) -> tuple[int, SavedState]:
        return self.point


def test_checkpoint_counts_dropped_entries_and_writes_an_unchanged_state_once() -> None:
    producer = OffsetProducer()
    consumer = _Consumer()
    metrics = WorkerMetrics()
    checkpoint = Checkpoint(consumer, _Up(), _Up(), ready_topic(producer), metrics)  # type: ignore[arg-type]
    full = hostile_state(100, 5_000)
    bounded = full.bounded(full.size() // 3)
    assert bounded.dropped > 0
    assert checkpoint.commit({TP: _Point(100, bounded)})
    written = len(producer.log)
    assert metrics.replay_state_dropped._value.get() == bounded.dropped
    data = parse_metadata(consumer.commits[-1][TP].metadata)
    assert data is not None and data["o"] == 100 and parse_ref(data["ref"]) is not None
    again = SavedState.from_dict(json.loads(bounded.to_json()))
    assert checkpoint.commit({TP: _Point(100, again)})
    assert len(producer.log) == written and len(consumer.commits) == 1  # same state: nothing new written


# --- a damaged replay state is detected, reported in one line, and the partition starts cold (issue 13) ----

@pytest.mark.parametrize("state", [
    [], "x", None, {"v": 1}, {"v": 1, "o": "x"}, {"v": 1, "o": 5, "e": [1, 2]},
    {"v": 1, "o": 5, "e": {"f": {"id": []}}}, {"v": 1, "o": 5, "e": {"f": {"id": "abc"}}},
    {"v": 1, "o": 5, "e": {"f": []}}, {"v": 1, "o": 5, "w": "nan"}, {"v": 1, "o": 5, "t": "inf"},
    {"v": 1, "o": 5, "w": [1]}, {"v": 2, "o": 5},
], ids=repr)
def test_a_malformed_saved_state_is_a_value_error(state: Any) -> None:
    with pytest.raises(ValueError):
        SavedState.from_dict(state)


class _Committed:
    def __init__(self, offset: int, metadata: str) -> None:
        self.offset, self.metadata = offset, metadata


class _StubConsumer:
    def __init__(self, committed: _Committed) -> None:
        self._committed = committed
        self.seeks: list[tuple[TopicPartition, int]] = []

    def committed(self, tp: TopicPartition, metadata: bool = False) -> _Committed:
        return self._committed

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _inline(offset: int) -> str:
    state = SavedState(offset, 100.0, 99.0, {("message", "blk_1"): offset + 2}, {})
    text = inline_metadata(state)
    assert text is not None
    return text


@pytest.mark.parametrize("damage", ["truncated", "zero_length", "flipped", "wrong_shape", "other_offset"])
def test_damaged_commit_metadata_starts_the_partition_cold_with_one_warning(
        damage: str, caplog: pytest.LogCaptureFixture) -> None:
    good = _inline(40)
    metadata = {"truncated": good[: len(good) // 2], "zero_length": "", "flipped": good.replace('"o":40', '"o":"4x"'),
                "wrong_shape": json.dumps({"logwarden": 1, "state": []}), "other_offset": _inline(41)}[damage]
    tp = TopicPartition("logs", 0)
    consumer = _StubConsumer(_Committed(40, metadata))
    with caplog.at_level("INFO"):
        start, state = load_start(consumer, tp, StateTopic.__new__(StateTopic))  # type: ignore[arg-type]
    assert (start, state) == (40, None) and consumer.seeks == [(tp, 40)]  # from the committed offset, cold
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if damage == "zero_length":
        assert warnings == []  # no metadata is no state, not a damaged one
    else:
        assert len(warnings) == 1 and "logs/0" in warnings[0] and "\n" not in warnings[0], warnings
    good_start = load_start(_StubConsumer(_Committed(40, good)), tp, StateTopic.__new__(StateTopic))  # type: ignore[arg-type]
    assert good_start[1] is not None and good_start[1].skip == {("message", "blk_1"): 42}
