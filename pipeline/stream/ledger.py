"""Offset bookkeeping for the streaming worker: which offset may be committed, and what to remember with it.

Delivery scheme
===============

**At-least-once processing, effectively-once documents.** Every record is windowed at least once; every
anomalous window becomes an Elasticsearch document whose ``_id`` is deterministic
(:func:`pipeline.scoring.document_id`: entity, window start and kind, late flag, model version), so a
window processed twice overwrites its own document instead of adding a second one.

**Commit order**: see :class:`pipeline.stream.checkpoint.Checkpoint` (the one place it is written). This module
decides what a checkpoint commits and saves for each partition.

**Which offset.** For a partition, the committed offset is
``min(smallest offset held by an open window of that partition, next offset to read)``: never past a
record whose window has not been flushed (a window scored non-anomalous needs no flush: it provably holds
no anomaly). On restart or reassignment the new owner reads again from that offset and rebuilds the open
windows from the records themselves.

**The interleaving problem and the replay state.** Between the committed offset ``C`` and the next offset
lie records of windows that were *already* closed and flushed (another entity's window kept ``C`` low).
Reading them again would build partial windows of those entities with a different start, hence a different
``_id``: a spurious second document (or, for tumbling windows, a partial one overwriting the whole). So each
checkpoint also saves, per partition, a :class:`SavedState`:

* ``skip``: for each entity ``k`` whose flushed windows hold records at offsets ``>= C``, the largest
  offset ``M_k`` such that every record of ``k`` in ``[C, M_k]`` is in a flushed window, plus the explicit
  offsets ``X_k > M_k`` of flushed records of ``k`` that interleave with a still-open window of ``k``
  (out-of-order records: a late window beside the live one, two tumbling buckets). Replaying, a record's
  part for ``k`` is skipped when its offset is ``<= M_k`` or in ``X_k`` (the watermark still advances,
  exactly as the first time). Why that is exact: every record of ``k`` in ``[C, next)`` is either in an
  open window of ``k`` or in a flushed one (closed windows are flushed before the state is saved), and the
  worker's windower records which offsets each window holds (8 bytes per record in an open window).
  ``X_k`` stays small: it only holds records that arrived out of order, within the allowed lateness.
* ``watermark`` and ``clock``: the windower's watermark and the event clock just before offset ``C`` was
  first processed, so lateness and window closing replay identically.

Entries below ``C`` are pruned at every checkpoint, so the state holds only entities active since the
oldest open window. It is stored in the commit itself (``OffsetAndMetadata.metadata``, JSON) when it fits
the broker's ``offset.metadata.max.bytes`` (4096 by default); otherwise in the compacted topic
``<group>.logwarden-state`` keyed by ``topic/partition``, written with ``acks=all`` and flushed before the
commit, and the commit metadata points at that record. On assignment the state is read back with the
committed offset and used only if it belongs to exactly that offset.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import Window

log = logging.getLogger(__name__)

EntityKey = tuple[str, str]
STATE_VERSION = 1
INLINE_LIMIT = 4000  # bytes; Kafka's offset.metadata.max.bytes defaults to 4096
MAX_SKIP_ENTRIES = 200_000


@dataclass
class SavedState:
    """Replay state of one partition at committed offset ``offset`` (see the module docstring).

    ``skip[k] = M_k`` (only when ``M_k >= offset``) and ``extra[k] = X_k`` (sorted offsets above ``M_k``).
    """

    offset: int
    watermark: float | None = None
    clock: float | None = None
    skip: dict[EntityKey, int] = field(default_factory=dict)
    extra: dict[EntityKey, tuple[int, ...]] = field(default_factory=dict)

    def entities(self) -> int:
        return len(self.skip.keys() | self.extra.keys())

    def to_dict(self) -> dict[str, Any]:
        grouped: dict[str, dict[str, Any]] = {}
        base = self.offset
        for key in sorted(self.skip.keys() | self.extra.keys()):
            last = self.skip.get(key, base - 1) - base
            extra = self.extra.get(key)
            grouped.setdefault(key[0], {})[key[1]] = [last, [o - base for o in extra]] if extra else last
        return {"v": STATE_VERSION, "o": self.offset, "w": self.watermark, "t": self.clock, "e": grouped}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SavedState:
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('v')!r}")
        base = int(data["o"])
        skip: dict[EntityKey, int] = {}
        extra: dict[EntityKey, tuple[int, ...]] = {}
        for entity_field, ids in dict(data.get("e") or {}).items():
            for entity_id, value in dict(ids).items():
                key = (str(entity_field), str(entity_id))
                last, explicit = (value[0], value[1]) if isinstance(value, list) else (value, ())
                if int(last) >= 0:
                    skip[key] = base + int(last)
                if explicit:
                    extra[key] = tuple(base + int(o) for o in explicit)
        watermark = data.get("w")
        clock = data.get("t")
        return cls(base, None if watermark is None else float(watermark), None if clock is None else float(clock),
                   skip, extra)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


Offsets = Sequence[int]


class PartitionLedger:
    """Offsets, skip rule and checkpoint arithmetic for one partition (``origin`` = ``topic/partition``).

    The worker calls, per record: :meth:`before` (with the windower's watermark and the event clock before
    the record), :meth:`should_skip` per entity, :meth:`done` when the record is handled; :meth:`closed`
    with each window that closed and the offsets it holds; :meth:`checkpoint` after the sink was flushed.
    """

    def __init__(self, origin: str, start: int | None, state: SavedState | None = None) -> None:
        self.origin = origin
        self.next_offset = start  # next offset to read; None until the first record when nothing was committed
        self.skip: dict[EntityKey, int] = dict(state.skip) if state is not None else {}
        self.extra: dict[EntityKey, frozenset[int]] = (
            {k: frozenset(v) for k, v in state.extra.items()} if state is not None else {})
        self._flushed: dict[EntityKey, list[Offsets]] = {}
        # (offset, watermark before it, event clock before it): appended whenever either value changes.
        self._marks: deque[tuple[int, float | None, float | None]] = deque()
        if state is not None and start is not None:
            self._marks.append((start, state.watermark, state.clock))

    # ---------------------------------------------------------------------------------- per record
    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        """Remember the watermark and clock in force before ``offset`` (only when they changed)."""
        if self.next_offset is None:
            self.next_offset = offset
        mark = (offset, _finite(watermark), _finite(clock))
        if not self._marks or self._marks[-1][1:] != mark[1:]:
            self._marks.append(mark)

    def should_skip(self, key: EntityKey, offset: int) -> bool:
        """True when this record's part for ``key`` is already in a flushed window (a replay)."""
        last = self.skip.get(key)
        if last is not None and offset <= last:
            return True
        extra = self.extra.get(key)
        return extra is not None and offset in extra

    def done(self, offset: int) -> None:
        self.next_offset = offset + 1

    def closed(self, window: Window, offsets: Offsets) -> None:
        """A window closed holding records at ``offsets``; it is flushed before the next commit."""
        if offsets:
            self._flushed.setdefault((window.entity_field, window.entity_id), []).append(offsets)

    # --------------------------------------------------------------------------------- checkpoints
    def checkpoint(
        self, open_windows: Iterable[Window], watermark: float, clock: float | None
    ) -> tuple[int, SavedState] | None:
        """Offset to commit and the state that goes with it; None when nothing was read yet.

        Call only after every closed window was flushed. Prunes what the new offset makes irrelevant.
        """
        if self.next_offset is None:
            return None
        open_lo: dict[EntityKey, int] = {}
        for window in open_windows:
            lo = window.positions.get(self.origin)
            if lo is not None:
                key = (window.entity_field, window.entity_id)
                open_lo[key] = min(lo, open_lo.get(key, lo))
        commit = min(min(open_lo.values(), default=self.next_offset), self.next_offset)
        skip: dict[EntityKey, int] = {}
        extra: dict[EntityKey, frozenset[int]] = {}
        for key in self.skip.keys() | self.extra.keys() | self._flushed.keys():
            lo = open_lo.get(key)
            last = self.skip.get(key, -1)
            explicit = set(self.extra.get(key, ()))
            for offsets in self._flushed.get(key, ()):
                for offset in offsets:
                    if lo is None or offset < lo:
                        last = max(last, offset)
                    else:
                        explicit.add(offset)
            explicit = {o for o in explicit if o > last and o >= commit}
            if last >= commit:
                skip[key] = last
            if explicit:
                extra[key] = frozenset(explicit)
        if len(skip) > MAX_SKIP_ENTRIES:
            log.warning("replay state of %s holds %d entities; keeping the %d newest (older ones may be "
                        "indexed again as partial windows after a crash)", self.origin, len(skip), MAX_SKIP_ENTRIES)
            skip = dict(sorted(skip.items(), key=lambda kv: kv[1])[-MAX_SKIP_ENTRIES:])
        self.skip, self.extra = skip, extra
        self._flushed.clear()
        wm, clk = self._values_before(commit, watermark, clock)
        while len(self._marks) > 1 and self._marks[1][0] <= commit:
            self._marks.popleft()
        return commit, SavedState(commit, wm, clk, dict(skip), {k: tuple(sorted(v)) for k, v in extra.items()})

    def _values_before(self, offset: int, watermark: float, clock: float | None) -> tuple[float | None, float | None]:
        if offset >= (self.next_offset or 0):
            return _finite(watermark), _finite(clock)
        found: tuple[float | None, float | None] = (None, None)
        for mark_offset, wm, clk in self._marks:
            if mark_offset > offset:
                break
            found = (wm, clk)
        return found


# ------------------------------------------------------------------------------- commit metadata
METADATA_MARK = "logwarden"


def inline_metadata(state: SavedState) -> str | None:
    """Commit metadata carrying ``state`` itself, or None when it is too large for the broker."""
    text = json.dumps({METADATA_MARK: STATE_VERSION, "state": state.to_dict()}, separators=(",", ":"),
                      ensure_ascii=False)
    return text if len(text.encode("utf-8")) <= INLINE_LIMIT else None


def reference_metadata(offset: int, state_partition: int, state_offset: int) -> str:
    """Commit metadata pointing at a record of the state topic."""
    return json.dumps({METADATA_MARK: STATE_VERSION, "o": offset, "ref": [state_partition, state_offset]},
                      separators=(",", ":"))


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """The decoded metadata when it is ours, else None (empty, another tool's, or corrupt)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get(METADATA_MARK) != STATE_VERSION:
        return None
    return data


def state_from_metadata(data: dict[str, Any], committed: int) -> SavedState | None:
    """The inline state when it belongs to ``committed``; None otherwise (with a warning)."""
    try:
        state = SavedState.from_dict(data["state"])
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring unreadable replay state in commit metadata: %s", exc)
        return None
    if state.offset != committed:
        log.warning("ignoring replay state for offset %d: the committed offset is %d", state.offset, committed)
        return None
    return state
