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

**Marks: the watermark and clock at a commit point, kept only where one can be.** A checkpoint commits
``C = min(next offset, smallest offset of each open window)``, and a window's smallest offset is the offset
of the record that opened it: records are read in offset order, a window only ever gains later records
(sessions are never merged), and ``Window.positions`` keeps the minimum. So ``C`` is either the next offset
(its values are the windower's current ones, passed to :meth:`PartitionLedger.checkpoint`) or the opening
offset of a window that is open at that checkpoint. The ledger records ``(offset, watermark, clock)`` in
:meth:`~PartitionLedger.before` whenever the values change (the values before any offset are those of the
last mark at or below it), and at every checkpoint it keeps only one mark per distinct opening offset of the
open windows, holding the values in force before that offset. That is exact for every later checkpoint:
an offset that is not the opening of a currently open window and lies below the next offset can never be
committed again (windows only close; a window opened later opens at an offset read later, whose marks are
recorded from then on), and a kept mark carries exactly the values the full history gave for its offset.
Memory: three machine numbers (24 bytes) per record read *since the last checkpoint*, plus one mark per
open window; not a mark per record pinned until the oldest open window closes (measured by
``benchmarks/ledger_memory.py``).

**Bound.** Entries below ``C`` are pruned at every checkpoint, so the state holds only entities active since
the oldest open window. Its JSON is kept within :data:`MAX_STATE_BYTES`: when more entities are active, the
oldest entries (those whose newest flushed offset is smallest) are dropped, both from the saved state and
from the ledger, and counted (``SavedState.dropped``, the ``replay_state_dropped`` metric). A dropped
entity's records after ``C`` are read again after a crash and may be indexed a second time as a partial
window; nothing is lost. The state is stored in the commit itself (``OffsetAndMetadata.metadata``, JSON) when it fits
the broker's ``offset.metadata.max.bytes`` (4096 by default); otherwise in the compacted topic
``<group>.logwarden-state`` (compressed, in chunks: :mod:`pipeline.stream.state_topic`), written with
``acks=all`` and flushed before the commit, and the commit metadata points at those records. On assignment
the state is read back with the committed offset and used only if it is whole and belongs to exactly that
offset; otherwise the partition starts without replay state (a warning).
"""

from __future__ import annotations

import json
import logging
import math
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import Window

log = logging.getLogger(__name__)

EntityKey = tuple[str, str]
STATE_VERSION = 1
INLINE_LIMIT = 4000  # bytes; Kafka's offset.metadata.max.bytes defaults to 4096
# JSON bytes of one partition's saved state (zlib-compressed and chunked by the state topic). 16 MiB holds
# about 450,000 entities with HDFS-like block ids: far beyond what the old 200,000-entry cap allowed.
MAX_STATE_BYTES = 16 << 20
_NONE = math.nan  # a missing watermark or clock in the mark arrays


@dataclass
class SavedState:
    """Replay state of one partition at committed offset ``offset`` (see the module docstring).

    ``skip[k] = M_k`` (only when ``M_k >= offset``) and ``extra[k] = X_k`` (sorted offsets above ``M_k``).
    ``dropped`` counts the entries the byte bound left out (not saved). Treat a state as immutable once
    :meth:`to_json` was called: the text is computed once.
    """

    offset: int
    watermark: float | None = None
    clock: float | None = None
    skip: dict[EntityKey, int] = field(default_factory=dict)
    extra: dict[EntityKey, tuple[int, ...]] = field(default_factory=dict)
    dropped: int = field(default=0, compare=False)
    _text: str | None = field(default=None, compare=False, repr=False)

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
        if self._text is None:
            self._text = json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)
        return self._text

    def size(self) -> int:
        """Bytes of the UTF-8 JSON."""
        return len(self.to_json().encode("utf-8"))

    def bounded(self, max_bytes: int = MAX_STATE_BYTES) -> SavedState:
        """This state, or a copy without its oldest entries whose JSON fits ``max_bytes`` (``dropped`` set).

        Oldest: the entities whose newest flushed offset is smallest (their records are the first a replay
        reads). The watermark, clock and offset are always kept.
        """
        excess = self.size() - max_bytes
        if excess <= 0:
            return self
        base = self.offset
        keys = self.skip.keys() | self.extra.keys()

        def newest(key: EntityKey) -> tuple[int, EntityKey]:
            return max((self.skip.get(key, -1), *self.extra.get(key, ()))), key

        def cost(key: EntityKey) -> int:  # the entry's bytes in to_dict's grouping, with its comma
            last = self.skip.get(key, base - 1) - base
            extra = self.extra.get(key)
            value: Any = [last, [o - base for o in extra]] if extra else last
            return len(json.dumps(key[1], ensure_ascii=False).encode("utf-8")) + 2 + len(
                json.dumps(value, separators=(",", ":")))

        oldest_first = sorted(keys, key=newest)
        state, dropped = self, 0
        while excess > 0 and dropped < len(oldest_first):
            freed = 0
            while freed < excess and dropped < len(oldest_first):
                freed += cost(oldest_first[dropped])
                dropped += 1
            kept = set(oldest_first[dropped:])
            state = SavedState(base, self.watermark, self.clock, {k: v for k, v in self.skip.items() if k in kept},
                               {k: v for k, v in self.extra.items() if k in kept}, dropped=self.dropped + dropped)
            excess = state.size() - max_bytes  # an emptied field group frees a little more than counted
        return state

    @classmethod
    def from_dict(cls, data: Any) -> SavedState:
        """The state ``data`` (JSON as :meth:`to_dict` wrote it) holds; ValueError, with the reason, for anything
        else: a saved state read back damaged must start its partition cold, never crash or mislead it."""
        if not isinstance(data, dict):
            raise ValueError(f"a saved state is a JSON object, not {type(data).__name__}")
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('v')!r}")
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            raise ValueError(f"malformed saved state: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> SavedState:
        base = int(data["o"])
        skip: dict[EntityKey, int] = {}
        extra: dict[EntityKey, tuple[int, ...]] = {}
        groups = data.get("e") or {}
        if not isinstance(groups, dict) or not all(isinstance(ids, dict) for ids in groups.values()):
            raise TypeError("entities are not objects of entity ids")
        for entity_field, ids in groups.items():
            for entity_id, value in ids.items():
                key = (str(entity_field), str(entity_id))
                last, explicit = (value[0], value[1]) if isinstance(value, list) else (value, ())
                if int(last) >= 0:
                    skip[key] = base + int(last)
                if explicit:
                    extra[key] = tuple(base + int(o) for o in explicit)
        times = []
        for name in ("w", "t"):
            value = data.get(name)
            number = None if value is None else float(value)
            if number is not None and not math.isfinite(number):
                raise ValueError(f"{name} is {value!r}, not a finite time")
            times.append(number)
        return cls(base, times[0], times[1], skip, extra)


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
        # Marks (module docstring): offset, watermark before it, event clock before it (NaN = none); appended
        # whenever either value changes, thinned to the open windows' opening offsets at each checkpoint.
        self._at = array("q")
        self._wm = array("d")
        self._clk = array("d")
        self._last: tuple[float | None, float | None] | None = None
        if state is not None and start is not None:
            self._mark(start, state.watermark, state.clock)

    def _mark(self, offset: int, watermark: float | None, clock: float | None) -> None:
        self._at.append(offset)
        self._wm.append(_NONE if watermark is None else watermark)
        self._clk.append(_NONE if clock is None else clock)
        self._last = (watermark, clock)

    @property
    def marks(self) -> int:
        """How many marks are held (one per change since the last checkpoint, one per open window's opening)."""
        return len(self._at)

    # ---------------------------------------------------------------------------------- per record
    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        """Remember the watermark and clock in force before ``offset`` (only when they changed)."""
        if self.next_offset is None:
            self.next_offset = offset
        last = self._last
        # Unchanged since the last mark (most records): equal to a kept value means finite, or None for both,
        # so ``_finite`` would give exactly the kept pair (a NaN or infinity never equals one).
        if last is not None and watermark == last[0] and clock == last[1] and self._at:
            return
        values = (_finite(watermark), _finite(clock))
        if values != last or not self._at:
            self._mark(offset, *values)

    def should_skip(self, key: EntityKey, offset: int) -> bool:
        """True when this record's part for ``key`` is already in a flushed window (a replay)."""
        last = self.skip.get(key)
        if last is not None and offset <= last:
            return True
        extra = self.extra.get(key)
        return extra is not None and offset in extra

    def done(self, offset: int) -> None:
        """``offset``: the record's last line (a multi-line record's lines after its first are read too)."""
        self.next_offset = max(offset + 1, self.next_offset or 0)

    def closed(self, window: Window, offsets: Offsets) -> None:
        """A window closed holding records at ``offsets``; it is flushed before the next commit."""
        if offsets:
            self._flushed.setdefault((window.entity_field, window.entity_id), []).append(offsets)

    # --------------------------------------------------------------------------------- checkpoints
    def checkpoint(
        self, open_windows: Iterable[Window], watermark: float, clock: float | None, held: int | None = None
    ) -> tuple[int, SavedState] | None:
        """Offset to commit and the state that goes with it; None when nothing was read yet.

        ``held``: the smallest offset of a line read but not yet windowed (a multi-line record the joiner holds,
        :mod:`pipeline.stages.multiline`); the commit never passes it. Records reach the chain in the order of
        their first offsets, so nothing at or above ``held`` was windowed and the values in force now are
        those before it. Call only after every closed window was flushed. Prunes what the new offset makes
        irrelevant.
        """
        if self.next_offset is None:
            if held is None:
                return None
            self.next_offset = held
        open_lo: dict[EntityKey, int] = {}
        for window in open_windows:
            lo = window.positions.get(self.origin)
            if lo is not None:
                key = (window.entity_field, window.entity_id)
                open_lo[key] = min(lo, open_lo.get(key, lo))
        commit = min(min(open_lo.values(), default=self.next_offset), self.next_offset)
        if held is not None:
            commit = min(commit, held)
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
        self._flushed.clear()
        if held is not None and commit == held:
            wm, clk = _finite(watermark), _finite(clock)  # nothing at or above ``held`` was windowed yet
        else:
            wm, clk = self._values_before(commit, watermark, clock)
        saved = {k: tuple(sorted(v)) for k, v in extra.items()}
        state = SavedState(commit, wm, clk, skip, saved).bounded(MAX_STATE_BYTES)
        if state.dropped:
            log.warning("replay state of %s is over %d bytes; left out the %d oldest of %d entities (their records "
                        "may be indexed again as partial windows after a crash)", self.origin, MAX_STATE_BYTES,
                        state.dropped, len(skip.keys() | extra.keys()))
            extra = {k: v for k, v in extra.items() if k in state.extra}
        self.skip, self.extra = dict(state.skip), extra
        self._thin(sorted(set(open_lo.values())))
        return commit, state

    def _values_before(self, offset: int, watermark: float, clock: float | None) -> tuple[float | None, float | None]:
        if offset >= (self.next_offset or 0):
            return _finite(watermark), _finite(clock)
        i = bisect_right(self._at, offset) - 1
        if i < 0:
            return None, None
        wm, clk = self._wm[i], self._clk[i]
        return (None if math.isnan(wm) else wm), (None if math.isnan(clk) else clk)

    def _thin(self, openings: list[int]) -> None:
        """Keep one mark per opening offset of an open window: the only offsets below the next one that a
        later checkpoint can commit (module docstring)."""
        kept = [(offset, *self._values_before(offset, math.nan, None)) for offset in openings
                if offset < (self.next_offset or 0)]
        self._at, self._wm, self._clk = array("q"), array("d"), array("d")
        self._last = None
        for offset, wm, clk in kept:
            self._mark(offset, wm, clk)
        # before() now compares with the last kept mark, so the next record records the values in force
        # unless they equal it: offsets from the next one on never read a kept mark's stale values.


# ------------------------------------------------------------------------------- commit metadata
METADATA_MARK = "logwarden"


def inline_metadata(state: SavedState) -> str | None:
    """Commit metadata carrying ``state`` itself, or None when it is too large for the broker."""
    if state.size() > INLINE_LIMIT:
        return None  # without serializing a large state a second time
    text = json.dumps({METADATA_MARK: STATE_VERSION, "state": state.to_dict()}, separators=(",", ":"),
                      ensure_ascii=False)
    return text if len(text.encode("utf-8")) <= INLINE_LIMIT else None


def reference_metadata(offset: int, ref: Sequence[Any]) -> str:
    """Commit metadata pointing at the state-topic records ``ref`` names (:mod:`pipeline.stream.state_topic`)."""
    return json.dumps({METADATA_MARK: STATE_VERSION, "o": offset, "ref": list(ref)}, separators=(",", ":"))


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


COLD_START = "starting without it: records after the committed offset may be indexed again as partial windows"


def state_from_metadata(data: dict[str, Any], committed: int, origin: str = "") -> SavedState | None:
    """The inline state when it belongs to ``committed``; None otherwise (with one warning naming ``origin``)."""
    try:
        state = SavedState.from_dict(data["state"])
    except (KeyError, ValueError) as exc:
        log.warning("replay state of %s in the commit metadata cannot be used (%s); %s", origin or "a partition",
                    exc, COLD_START)
        return None
    if state.offset != committed:
        log.warning("replay state of %s cannot be used (it is for offset %d, the committed offset is %d); %s",
                    origin or "a partition", state.offset, committed, COLD_START)
        return None
    return state
