"""Memory the streaming worker's ledger holds per record read, against the previous algorithm in one run.

The ledger (:class:`pipeline.stream.ledger.PartitionLedger`) remembers the watermark and event clock in force
before offsets a checkpoint may commit. The previous algorithm (:class:`PreviousLedger` below, its mark
handling copied from the commit before the change) appended a tuple whenever either value changed (for
in-order records: at every record) and dropped marks only below the committed offset, which a long-open
window pins: memory grew with every record until the oldest window closed. The current one keeps one mark
per open window's opening offset after each checkpoint.

Workload, fed straight to the ledger as the record chain calls it (``before``, ``should_skip``, ``done``;
``closed`` with each window's offsets; ``checkpoint`` every ``--checkpoint-every`` records, 5 s at 10k
lines/s by default): ``--records`` records whose event time advances at every record; ``--long-open``
entities whose windows open at the first offsets and stay open to the end (they pin the committed offset at
0); and, unless ``--session-records 0``, short sessions of that many consecutive records each, closed and
flushed as the next begins (their skip entries are the replay state both algorithms keep alike). Both ledgers
get the same calls and must return the same commit points; ``tracemalloc`` measures what each one holds
after the last checkpoint (``retained``) and at most during the run (``peak``), per record read. Prints
JSON. Usage::

    python -m benchmarks.ledger_memory                          # 300,000 records, 100 long-open entities
    python -m benchmarks.ledger_memory --records 1000000 --session-records 0
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from array import array
from collections import deque
from typing import Any

from pipeline.records import Window
from pipeline.stream.ledger import PartitionLedger, SavedState, _finite

ORIGIN = "logs/0"


class PreviousLedger(PartitionLedger):
    """The ledger with the previous commit's marks: a tuple per change, pruned only below the commit."""

    def __init__(self, origin: str, start: int | None, state: SavedState | None = None) -> None:
        super().__init__(origin, start, state)
        self._old: deque[tuple[int, float | None, float | None]] = deque()

    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        if self.next_offset is None:
            self.next_offset = offset
        mark = (offset, _finite(watermark), _finite(clock))
        if not self._old or self._old[-1][1:] != mark[1:]:
            self._old.append(mark)

    def _values_before(self, offset: int, watermark: float, clock: float | None) -> tuple[float | None, float | None]:
        if offset >= (self.next_offset or 0):
            return _finite(watermark), _finite(clock)
        found: tuple[float | None, float | None] = (None, None)
        for mark_offset, wm, clk in self._old:
            if mark_offset > offset:
                break
            found = (wm, clk)
        return found

    def _thin(self, openings: list[int]) -> None:
        commit = min([*openings, self.next_offset or 0])
        while len(self._old) > 1 and self._old[1][0] <= commit:
            self._old.popleft()


def feed(ledger: PartitionLedger, records: int, long_open: int, session_records: int,
         checkpoint_every: int) -> list[tuple[int, SavedState] | None]:
    t0 = 1_700_000_000.0
    pinned = [Window("block", f"blk_long_{i}", "session", t0, t0, positions={ORIGIN: i}) for i in range(long_open)]
    points: list[tuple[int, SavedState] | None] = []
    current: Window | None = None
    held = array("q")
    for offset in range(records):
        ts = t0 + offset * 0.001
        ledger.before(offset, ts - 3.0, ts)
        if offset >= long_open and session_records:
            if current is None or len(held) >= session_records:
                if current is not None:
                    ledger.closed(current, held)
                current = Window("block", f"blk_{offset}", "session", ts, ts, positions={ORIGIN: offset})
                held = array("q")
            held.append(offset)
            ledger.should_skip(("block", current.entity_id), offset)
        ledger.done(offset)
        if (offset + 1) % checkpoint_every == 0:
            open_windows = pinned + ([current] if current is not None else [])
            points.append(ledger.checkpoint(open_windows, ts + 0.001 - 3.0, ts))
    return points


def measure(kind: type[PartitionLedger], args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    tracemalloc.start()
    try:
        start = time.process_time()
        ledger = kind(ORIGIN, None)
        points = feed(ledger, args.records, args.long_open, args.session_records, args.checkpoint_every)
        cpu = time.process_time() - start
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del ledger
    return {"retained_bytes_per_record": round(retained / args.records, 2),
            "peak_bytes_per_record": round(peak / args.records, 2),
            "retained_mib": round(retained / 2**20, 2), "cpu_s_traced": round(cpu, 2)}, points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--long-open", type=int, default=100, help="entities open from the start to the end")
    parser.add_argument("--session-records", type=int, default=50,
                        help="records per short session (0: only long-open entities)")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="records between checkpoints")
    args = parser.parse_args(argv)
    previous, expected = measure(PreviousLedger, args)
    current, points = measure(PartitionLedger, args)
    assert points == expected, "the two ledgers disagree on a commit point"
    ratio = {name: round(previous[name] / current[name], 1) if current[name] else None
             for name in ("retained_bytes_per_record", "peak_bytes_per_record")}
    print(json.dumps({"records": args.records, "long_open_entities": args.long_open,
                      "session_records": args.session_records, "checkpoint_every": args.checkpoint_every,
                      "checkpoints": len(points), "previous": previous, "current": current,
                      "previous_over_current": ratio}, indent=2))


if __name__ == "__main__":
    main()
