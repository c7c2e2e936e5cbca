"""The test-only crash hook: parsed strictly, counts only busy checkpoints, dies with its own status."""

from __future__ import annotations

import pytest

from pipeline.errors import LogwardenError
from pipeline.stream import faults
from pipeline.stream.faults import CRASH_EXIT, CrashPoints


def test_unset_does_nothing() -> None:
    points = CrashPoints(None)
    for step in faults.STEPS:
        points.reached(step)  # no exit


@pytest.mark.parametrize("spec", ["after_everything", "after_bulk:0", "after_bulk:x", "after_bulk:-1"])
def test_an_invalid_value_is_refused(spec: str) -> None:
    with pytest.raises(LogwardenError, match="LOGWARDEN_TEST_CRASH_AT"):
        CrashPoints(spec)


def test_the_nth_busy_pass_of_the_named_step_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)

    monkeypatch.setattr(faults.os, "_exit", fake_exit)
    points = CrashPoints("after_state:2")
    points.reached("after_bulk")
    points.reached("after_state", busy=False)  # nothing was at stake: not counted
    points.reached("after_state")
    assert exits == []
    points.reached("after_state")
    assert exits == [CRASH_EXIT]


def test_topic_steps_count_only_states_written_to_the_state_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(faults.os, "_exit", exits.append)
    points = CrashPoints("after_commit_topic")
    points.reached("after_commit", via_topic=False)
    assert exits == []
    points.reached("after_commit", via_topic=True)
    assert exits == [CRASH_EXIT]
