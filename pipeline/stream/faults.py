"""Fault injection for the fault tests, and for nothing else: named crash points in the commit order.

``LOGWARDEN_TEST_CRASH_AT=STEP[:N]`` (read once, when a :class:`~pipeline.stream.checkpoint.Checkpoint` is
made) makes the worker end with :func:`os._exit` (status :data:`CRASH_EXIT`: no ``finally``, no flush, no
commit, no leaving the group, like a power cut) the N-th time (default 1) a checkpoint that had anomalies to
index reaches STEP, one of :data:`STEPS`, the boundaries between the four steps of
:meth:`Checkpoint.commit <pipeline.stream.checkpoint.Checkpoint.commit>`:

* ``after_bulk``: the documents are in Elasticsearch; dead letters, state and offsets are not written;
* ``after_dead_letters``: dead letters acknowledged too; no state, no commit;
* ``after_state``: the replay state is written (inline metadata prepared, or records on the state topic);
  the offsets are not committed;
* ``after_commit``: everything is durable; the worker dies before its next step;
* ``after_state_topic``, ``after_commit_topic``: the same two points, counting only checkpoints whose replay
  state was too large for commit metadata and went to the compacted state topic.

Only checkpoints with anomalies pending count, so ``:N`` lands mid-stream with real work at stake. The
variable is a test hook (``tests/integration/test_worker_crash_points.py``); it is unset in production and an
invalid value is refused at start-up rather than ignored.
"""

from __future__ import annotations

import os

from pipeline.errors import LogwardenError

CRASH_ENV = "LOGWARDEN_TEST_CRASH_AT"
CRASH_EXIT = 86
STEPS = ("after_bulk", "after_dead_letters", "after_state", "after_commit")
TOPIC_STEPS = ("after_state_topic", "after_commit_topic")


class CrashPoints:
    """Where (and at which pass) to die; does nothing when the variable is unset."""

    def __init__(self, spec: str | None) -> None:
        self.step: str | None = None
        self.at = 1
        self._seen = 0
        if not spec:
            return
        step, _, count = spec.strip().partition(":")
        if step not in STEPS + TOPIC_STEPS or (count and not (count.isdigit() and int(count) >= 1)):
            raise LogwardenError(f"{CRASH_ENV}={spec!r}: expected one of {', '.join(STEPS + TOPIC_STEPS)}, "
                                 "optionally :N (N >= 1)")
        self.step, self.at = step, int(count or 1)

    @classmethod
    def from_env(cls) -> CrashPoints:
        return cls(os.environ.get(CRASH_ENV))

    def reached(self, step: str, busy: bool = True, via_topic: bool = False) -> None:
        """A checkpoint passed ``step``; ``busy``: it had anomalies to index (only those count); ``via_topic``:
        its replay state went to the state topic."""
        if not busy or (step != self.step and not (via_topic and f"{step}_topic" == self.step)):
            return
        self._seen += 1
        if self._seen >= self.at:
            os.write(2, f"{CRASH_ENV}: crashing {self.step} (pass {self._seen})\n".encode())
            os._exit(CRASH_EXIT)
