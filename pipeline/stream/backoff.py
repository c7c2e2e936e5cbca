"""The worker's one backoff: exponential, capped, reset on success.

Used wherever the worker waits for a server to come back (Elasticsearch at start-up, the sink during an
outage). The loop must never block for long (heartbeats, ``max.poll.interval.ms``), so a :class:`Backoff` is a
schedule, not a sleep: the caller asks :meth:`due` and keeps polling in between; :meth:`wait` is for the
start-up path, where nothing else needs the thread. Retries *inside* one request (429/5xx per bulk item,
connection errors) are the Elasticsearch client's and bulk helper's own, configured in
:mod:`pipeline.sinks.elasticsearch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Backoff:
    """Delays ``initial, 2*initial, 4*initial ...`` up to ``maximum``; :meth:`reset` starts over."""

    def __init__(self, initial: float = 1.0, maximum: float = 15.0, clock: Callable[[], float] = time.monotonic):
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self.delay = initial
        self.retry_at = 0.0
        self.failures = 0

    def failed(self) -> float:
        """Record a failure: the next attempt is due after the current delay, which then doubles."""
        wait = self.delay
        self.retry_at = self.clock() + wait
        self.delay = min(self.delay * 2, self.maximum)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.delay = self.initial
        self.retry_at = 0.0
        self.failures = 0

    def due(self) -> bool:
        """True when the next attempt may be made."""
        return self.clock() >= self.retry_at

    def wait(self, should_stop: Callable[[], bool], step: float = 0.2) -> bool:
        """Sleep until the next attempt is due, waking every ``step`` seconds; False if asked to stop."""
        while not self.due():
            if should_stop():
                return False
            time.sleep(min(step, max(0.0, self.retry_at - self.clock())))
        return not should_stop()
