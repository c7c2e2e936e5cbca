"""Replay state that does not fit the commit metadata, and reading a partition's start back.

:class:`StateTopic` is the compacted ``<group>.logwarden-state`` topic (step 3 of the commit order in
:mod:`pipeline.stream.checkpoint` writes to it); :func:`load_start` is the other end: on assignment, the
committed offset of a partition and the :class:`~pipeline.stream.ledger.SavedState` saved with it, inline or
through the reference the metadata holds.

**Encoding.** A state's JSON (at most :data:`~pipeline.stream.ledger.MAX_STATE_BYTES`, the ledger's bound) is
zlib-compressed (entity ids and offset deltas compress 3-5x) and cut into chunks of at most
:data:`CHUNK_BYTES`, so every record fits the producer's 1 MiB request cap and the topic's
``max.message.bytes`` whatever the state's size. Chunk ``i`` of ``n`` is keyed ``topic/partition#i`` (distinct
keys: compaction keeps the newest chunk ``i`` of each partition, never one chunk for all) and carries the
header ``logwarden-state: <digest>:<i>:<n>``, the digest being SHA-256 of the whole compressed payload. All
chunks go to partition 0 of the state topic; the commit metadata holds ``[partition, first offset, last
offset, digest, n]``.

**Reading back** takes, between those offsets, the chunks of that partition with exactly that digest, needs
all ``n`` of them, checks the digest of their concatenation, inflates at most ``MAX_STATE_BYTES`` and parses
the JSON. So chunks of two checkpoints are never mixed, and anything missing (compacted, deleted topic, a
commit from an older version), truncated or corrupt gives ``None``: the partition starts with a cold replay
state, with a warning (at-least-once, possibly partial duplicate windows; nothing lost).

**Topic settings** (:attr:`StateTopic.CONFIGS`, applied when the worker creates the topic; an existing topic
is left as it is): ``cleanup.policy=compact``; ``min.compaction.lag.ms`` of a day, so a chunk a commit still
points at is not compacted away by a newer write before the commit moves on; ``max.message.bytes`` 1 MiB,
stated rather than inherited (twice a chunk). Replication factor and ``min.insync.replicas`` are the
broker's defaults (``default.replication.factor``): the state is as durable as the cluster's policy for any
topic, a single-broker development cluster works, and a fixed factor of 3 would fail there while 1 would
drop the state with a broker in production. Records are written with ``acks=all``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from pipeline.sources.kafka import client_config, ensure_topics, origin_of
from pipeline.stream.ledger import (
    COLD_START,
    MAX_STATE_BYTES,
    METADATA_MARK,
    SavedState,
    parse_metadata,
    state_from_metadata,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
HEADER = "logwarden-state"
STATE_PARTITION = 0

Ref = list[Any]  # [state partition, first offset, last offset, digest, chunk count]


@dataclass(frozen=True)
class EncodedState:
    """A saved state as state-topic records: compressed payload chunks and the digest naming them."""

    offset: int
    digest: str
    chunks: tuple[bytes, ...]


def encode_state(state: SavedState, chunk_bytes: int = CHUNK_BYTES) -> EncodedState:
    payload = zlib.compress(state.to_json().encode("utf-8"), 6)
    digest = hashlib.sha256(payload).hexdigest()
    chunks = tuple(payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes))
    return EncodedState(state.offset, digest, chunks)


def decode_state(chunks: Sequence[bytes], digest: str, max_bytes: int = MAX_STATE_BYTES) -> SavedState:
    """The state the chunks (in order) hold; ``ValueError`` when they are not exactly the state ``digest`` names."""
    payload = b"".join(chunks)
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ValueError("the chunks do not add up to the state the commit points at")
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt compressed state: {exc}") from None
    if len(text) > max_bytes or inflate.unconsumed_tail or not inflate.eof:
        raise ValueError(f"state is truncated or larger than {max_bytes} bytes")
    try:
        data = json.loads(text.decode("utf-8"))
        return SavedState.from_dict(data)
    except (UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"unreadable state: {exc}") from None


def chunk_key(origin: str, index: int) -> bytes:
    return f"{origin}#{index}".encode()


def chunk_header(digest: str, index: int, count: int) -> tuple[str, bytes]:
    return HEADER, f"{digest}:{index}:{count}".encode()


def assemble(records: Iterable[tuple[bytes | None, Sequence[tuple[str, bytes]], bytes | None]], origin: str,
             digest: str, count: int) -> list[bytes] | None:
    """From ``(key, headers, value)`` records, the ``count`` chunks of ``origin`` with ``digest``, in order;
    None unless every one is there."""
    found: dict[int, bytes] = {}
    for key, headers, value in records:
        for index in range(count):
            if key == chunk_key(origin, index) and value is not None and \
                    chunk_header(digest, index, count) in list(headers or ()):
                found[index] = value
    return [found[i] for i in range(count)] if len(found) == count else None


def parse_ref(ref: Any) -> tuple[int, int, int, str, int] | None:
    if (isinstance(ref, list) and len(ref) == 5 and all(isinstance(v, int) and v >= 0 for v in ref[:3])
            and isinstance(ref[3], str) and isinstance(ref[4], int) and ref[4] > 0 and ref[1] <= ref[2]):
        return ref[0], ref[1], ref[2], ref[3], ref[4]
    return None


class StateTopic:
    """The compacted ``<group>.logwarden-state`` topic: replay states too large for commit metadata."""

    CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(24 * 3600 * 1000),
               "max.message.bytes": str(2 * CHUNK_BYTES)}

    def __init__(self, bootstrap_servers: str, name: str, producer: KafkaProducer) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.producer = producer
        self._ready = False
        self._reader: KafkaConsumer | None = None
        self._chunks: dict[TopicPartition, int] = {}  # chunks last written per partition

    def write(
        self, states: Mapping[TopicPartition, SavedState | EncodedState], timeout: float = 30.0
    ) -> dict[TopicPartition, Ref]:
        """Write states, wait for every acknowledgement; returns each partition's reference for its commit."""
        if not states:
            return {}
        if not self._ready:
            ensure_topics(self.bootstrap_servers, {self.name: (1, self.CONFIGS)})
            self._ready = True
        futures: dict[TopicPartition, tuple[EncodedState, list[Any]]] = {}
        for tp, state in states.items():
            encoded = state if isinstance(state, EncodedState) else encode_state(state)
            origin, count = origin_of(tp), len(encoded.chunks)
            sent = [self.producer.send(self.name, key=chunk_key(origin, i), value=chunk, partition=STATE_PARTITION,
                                       headers=[chunk_header(encoded.digest, i, count)])
                    for i, chunk in enumerate(encoded.chunks)]
            for i in range(count, self._chunks.get(tp, 0)):  # chunks a longer state left: tombstones
                self.producer.send(self.name, key=chunk_key(origin, i), value=None, partition=STATE_PARTITION)
            futures[tp] = (encoded, sent)
        self.producer.flush(timeout=timeout)
        written: dict[TopicPartition, Ref] = {}
        for tp, (encoded, sent) in futures.items():
            offsets = [future.get(timeout=timeout).offset for future in sent]
            written[tp] = [STATE_PARTITION, min(offsets), max(offsets), encoded.digest, len(encoded.chunks)]
            self._chunks[tp] = len(encoded.chunks)
        return written

    def read(self, tp: TopicPartition, ref: Any, timeout: float = 30.0) -> SavedState | None:
        """The state ``ref`` points at when every chunk of it is there and intact; else None (a warning)."""
        parsed = parse_ref(ref)
        origin = origin_of(tp)
        if parsed is None:
            log.warning("replay state reference %r of %s is not one this version writes; starting %s without "
                        "replay state", ref, origin, origin)
            return None
        part, first, last, digest, count = parsed
        state_tp = TopicPartition(self.name, part)
        if self._reader is None:
            self._reader = KafkaConsumer(**client_config(self.bootstrap_servers, group_id=None,
                                                          enable_auto_commit=False))
        reader = self._reader
        reader.assign([state_tp])
        seen: list[tuple[bytes | None, Sequence[tuple[str, bytes]], bytes | None]] = []
        chunks: list[bytes] | None = None
        try:
            if reader.end_offsets([state_tp]).get(state_tp, 0) <= last:
                return self._cold(origin, "the state topic ends before it (deleted or recreated)")
            reader.seek(state_tp, first)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and chunks is None and reader.position(state_tp) <= last:
                for record in reader.poll(timeout_ms=500).get(state_tp, []):
                    if first <= record.offset <= last:
                        seen.append((record.key, record.headers, record.value))
                chunks = assemble(seen, origin, digest, count)
        except KafkaError as exc:
            return self._cold(origin, f"reading {self.name} failed: {exc}")
        if chunks is None:
            return self._cold(origin, f"not all {count} chunks of it are in {self.name} at {first}-{last}")
        try:
            return decode_state(chunks, digest)
        except ValueError as exc:
            return self._cold(origin, str(exc))

    @staticmethod
    def _cold(origin: str, why: str) -> None:
        log.warning("replay state of %s cannot be used (%s); %s", origin, why, COLD_START)
        return None

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(KafkaError):
                self._reader.close()
            self._reader = None


def load_start(
    consumer: KafkaConsumer, tp: TopicPartition, state_topic: StateTopic
) -> tuple[int | None, SavedState | None]:
    """Committed offset of ``tp`` and the replay state saved with it; seeks the consumer there."""
    committed: Any = consumer.committed(tp, metadata=True)
    if committed is None or committed.offset is None or committed.offset < 0:
        return None, None
    offset = int(committed.offset)
    data = parse_metadata(committed.metadata)
    state: SavedState | None = None
    origin = origin_of(tp)
    if data is not None and "state" in data:
        state = state_from_metadata(data, offset, origin)
    elif data is not None and "ref" in data and data.get("o") == offset:
        state = state_topic.read(tp, data["ref"])
        if state is not None and state.offset != offset:
            log.warning("replay state of %s cannot be used (it is for offset %d, the committed offset is %d); %s",
                        origin, state.offset, offset, COLD_START)
            state = None
    elif data is not None:
        log.warning("replay state of %s cannot be used (the commit metadata names neither a state nor one for "
                    "offset %d); %s", origin, offset, COLD_START)
    elif data is None and committed.metadata and f'"{METADATA_MARK}"' in committed.metadata:
        log.warning("replay state of %s in the commit metadata is damaged (not the JSON Logwarden wrote); %s",
                    origin, COLD_START)
    elif data is None and committed.metadata:
        log.info("%s/%d: commit metadata is not Logwarden's; rebuilding windows without replay state",
                 tp.topic, tp.partition)
    consumer.seek(tp, offset)
    via = " from the state topic" if state is not None and data is not None and "ref" in data else ""
    log.info("%s/%d: starting at committed offset %d (%s)", tp.topic, tp.partition, offset,
             f"replay state: {state.entities()} entities{via}" if state is not None else "no replay state")
    return offset, state
