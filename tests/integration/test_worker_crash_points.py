"""Named crash points: the worker dies (``os._exit``, no clean-up) between each two steps of the commit order
(:meth:`pipeline.stream.checkpoint.Checkpoint.commit`) and restarts; the documents equal an uninterrupted run's.

``LOGWARDEN_TEST_CRASH_AT=STEP[:N]`` is the test-only hook of :mod:`pipeline.stream.faults`. One stream is
read by a chain of workers, each dying at its first checkpoint with anomalies at a different step:
after the bulk request, after the dead-letter flush, after the state write, after the commit; a last worker
reads to the end. With one partition the replay state grows too large for commit metadata and goes through
the state topic; that run crashes after writing such a state (``after_state_topic``) and after committing it
(``after_commit_topic``), and the restart must read it back from the topic.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.stream.faults import CRASH_ENV, CRASH_EXIT, STEPS
from tests.integration.worker_support import (
    Reference,
    Rig,
    assert_same_documents,
    cleanup,  # noqa: F401 - fixture
    committed_offsets,
    reference_run,  # noqa: F401 - fixture
    rig,  # noqa: F401 - fixture
)

pytestmark = pytest.mark.integration


def crash_chain(rig: Rig, steps: list[str]) -> list[str]:  # noqa: F811
    """One worker per step, each killed by the hook at ``step:1``; the logs of the crashed workers."""
    logs = []
    for i, step in enumerate(steps):
        worker = rig.start(f"crash{i}-{step}", env={CRASH_ENV: step})
        code = worker.wait(120)
        text = worker.text()
        assert code == CRASH_EXIT, f"worker did not crash at {step} (exit {code}):\n{text[-3000:]}"
        assert f"{CRASH_ENV}: crashing {step}" in text
        logs.append(text)
    return logs


def finish(rig: Rig) -> dict:  # noqa: F811
    last = rig.start("last", "--exit-when-idle", "4s")
    assert last.wait(180) == 0, last.text()[-3000:]
    return last.summary()


def test_a_crash_at_every_step_of_the_commit_order_loses_and_duplicates_nothing(
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    reference = reference_run(4)
    rig.replay()
    crash_chain(rig, list(STEPS))
    assert sum(committed_offsets(rig.admin, rig.group).values()) > 0, "no crash got past a commit"
    summary = finish(rig)
    assert summary["replay_skipped"] > 0, "the restarts never re-read a flushed window: the test bit on nothing"
    assert_same_documents(rig.docs(), reference.docs)


def test_a_crash_around_a_replay_state_in_the_state_topic_loses_and_duplicates_nothing(
    rig: Rig, reference_run: Callable[[int], Reference],  # noqa: F811
) -> None:
    """One partition: every block is open in it at once, so its replay state outgrows the commit metadata."""
    rig.partitions = 1
    reference = reference_run(1)
    rig.replay()
    logs = crash_chain(rig, ["after_state_topic", "after_commit_topic"])
    assert all("written to the state topic" in text for text in logs)
    last = rig.start("last", "--exit-when-idle", "4s")
    assert last.wait(180) == 0, last.text()[-3000:]
    assert last.messages("entities from the state topic"), "the restart did not read its state from the topic"
    assert last.summary()["replay_skipped"] > 0
    assert_same_documents(rig.docs(), reference.docs)
