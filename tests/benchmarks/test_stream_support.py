"""The stream benchmark's /proc readings, on this process (no servers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from benchmarks import stream_support as ss


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _spin_then_wait(seconds: float, spun: threading.Event, release: threading.Event) -> None:
    _spin(seconds)
    spun.set()
    release.wait()


def test_sched_seconds_counts_every_thread_of_a_process() -> None:
    before = ss.sched_seconds(os.getpid())
    assert before is not None
    spun, release = threading.Event(), threading.Event()
    helper = threading.Thread(target=_spin_then_wait, args=(0.2, spun, release))
    helper.start()
    _spin(0.2)
    spun.wait()
    after = ss.sched_seconds(os.getpid())  # the helper thread is alive: its 0.2 s counts too
    release.set()
    helper.join()
    assert after is not None
    ran, waited = after[0] - before[0], after[1] - before[1]
    assert ran >= 0.39 and waited >= 0


def test_sched_seconds_of_a_process_that_is_gone_is_none() -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    assert ss.sched_seconds(int(done.stdout)) is None


def test_copies_of_the_sample_follow_each_other_within_one_day() -> None:
    """100,000 records (the benchmark's default): one daily index, as a live stream writes, and each copy
    starts after the one before it ended, by more than the benchmark model's session gap and lateness."""
    import json
    from datetime import datetime

    from benchmarks.stream_throughput import LATENESS, SESSION_GAP

    lines = ss.sample_lines()
    stamps = [datetime.fromisoformat(json.loads(value)["@timestamp"]) for _, value in ss.copies(lines, 100_000, 14)]
    assert len({stamp.date() for stamp in stamps}) == 1
    size = len(lines)
    first, second = stamps[:size], stamps[size:2 * size]
    assert (min(second) - max(first)).total_seconds() > SESSION_GAP + LATENESS
