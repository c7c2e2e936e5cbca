"""Replay state that does not fit the commit metadata, and reading a partition's start back.

:class:`StateTopic` is the compacted ``<group>.logwarden-state`` topic (step 3 of the commit order in
:mod:`pipeline.stream.checkpoint` writes to it); :func:`load_start` is the other end: on assignment, the
committed offset of a partition and the :class:`~pipeline.stream.ledger.SavedState` saved with it, inline or
through the reference the metadata holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from pipeline.sources.kafka import client_config, ensure_topics, origin_of
from pipeline.stream.ledger import SavedState, parse_metadata, state_from_metadata

log = logging.getLogger(__name__)


class StateTopic:
    """The compacted ``<group>.logwarden-state`` topic: replay states too large for commit metadata."""

    CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(24 * 3600 * 1000)}

    def __init__(self, bootstrap_servers: str, name: str, producer: KafkaProducer) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.producer = producer
        self._ready = False
        self._reader: KafkaConsumer | None = None

    def write(
        self, states: Mapping[TopicPartition, SavedState], timeout: float = 30.0
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Write states, wait for every acknowledgement; returns ``{tp: (state partition, state offset)}``."""
        if not states:
            return {}
        if not self._ready:
            ensure_topics(self.bootstrap_servers, {self.name: (1, self.CONFIGS)})
            self._ready = True
        futures = {
            tp: self.producer.send(self.name, key=origin_of(tp).encode(), value=state.to_json().encode())
            for tp, state in states.items()
        }
        self.producer.flush(timeout=timeout)
        written = {}
        for tp, future in futures.items():
            meta = future.get(timeout=timeout)
            written[tp] = (meta.partition, meta.offset)
        return written

    def read(self, tp: TopicPartition, ref: tuple[int, int], timeout: float = 10.0) -> SavedState | None:
        """The state record ``ref`` points at, if it is still there and belongs to ``tp``."""
        state_tp = TopicPartition(self.name, int(ref[0]))
        if self._reader is None:
            self._reader = KafkaConsumer(**client_config(self.bootstrap_servers, group_id=None,
                                                          enable_auto_commit=False))
        reader = self._reader
        reader.assign([state_tp])
        reader.seek(state_tp, int(ref[1]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=500).get(state_tp, []):
                if record.offset != int(ref[1]):
                    log.warning("replay state of %s at %s:%s is gone (compacted); records after the committed "
                                "offset may be indexed again as partial windows", origin_of(tp), *ref)
                    return None
                if record.key != origin_of(tp).encode():
                    log.warning("state record %s:%s belongs to %r, not %s", *ref, record.key, origin_of(tp))
                    return None
                return SavedState.from_dict(json.loads(record.value))
        log.warning("could not read replay state of %s from %s within %.0f s", origin_of(tp), self.name, timeout)
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
    if data is not None and "state" in data:
        state = state_from_metadata(data, offset)
    elif data is not None and "ref" in data and data.get("o") == offset:
        state = state_topic.read(tp, tuple(data["ref"]))  # type: ignore[arg-type]
        if state is not None and state.offset != offset:
            log.warning("ignoring replay state of %s/%d: it is for offset %d, not %d", tp.topic, tp.partition,
                        state.offset, offset)
            state = None
    elif data is None and committed.metadata:
        log.info("%s/%d: commit metadata is not Logwarden's; rebuilding windows without replay state",
                 tp.topic, tp.partition)
    consumer.seek(tp, offset)
    log.info("%s/%d: starting at committed offset %d (%s)", tp.topic, tp.partition, offset,
             f"replay state: {len(state.skip)} entities" if state is not None else "no replay state")
    return offset, state
