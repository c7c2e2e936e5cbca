"""The bounded memo of the template stages: bounded by entries and by the characters of its keys."""

from __future__ import annotations

import copy
import pickle

from hypothesis import given
from hypothesis import strategies as st

from pipeline.stages.memo import MISSING, Memo


def test_a_memo_keeps_none_as_a_value_and_says_missing_for_an_unknown_key() -> None:
    memo: Memo[str, int | None] = Memo(10, 1000)
    memo.put("a", None, 1)
    assert memo.get("a") is None and memo.get("b") is MISSING and len(memo) == 1


def test_the_character_budget_clears_the_memo_and_an_oversized_key_is_never_kept() -> None:
    memo: Memo[str, int] = Memo(1000, 256 * 10)  # keys of at most 10 characters are kept
    memo.put("x" * 11, 1, 11)
    assert memo.get("x" * 11) is MISSING and len(memo) == 0
    for i in range(256):
        memo.put(f"{i:010d}", i, 10)
    assert len(memo) == 256 and memo.chars == 2560
    memo.put("next", 1, 10)  # over the budget: starts afresh
    assert len(memo) == 1 and memo.chars == 10 and memo.get("0000000000") is MISSING


def test_the_entry_bound_clears_the_memo() -> None:
    memo: Memo[int, int] = Memo(3, 10**6)
    for i in range(4):
        memo.put(i, i, 1)
    assert len(memo) == 1 and memo.get(3) == 3


@given(st.lists(st.tuples(st.sampled_from(["put", "clear"]), st.integers(0, 6), st.sampled_from([None, 1, 2])),
                max_size=40))
def test_find_answers_as_get_does_through_puts_clears_and_copies(ops: list[tuple[str, int, int | None]]) -> None:
    memo: Memo[int, int | None] = Memo(4, 10)
    for op, key, value in ops:
        if op == "put":
            memo.put(key, value, key)
        else:
            memo.clear()
        for probe in range(7):
            assert memo.find(probe, MISSING) is memo.get(probe)
    before = [memo.get(probe) for probe in range(7)]
    for twin in (copy.deepcopy(memo), pickle.loads(pickle.dumps(memo)), copy.copy(memo)):  # the shallow one shares
        twin.put(99, 5, 1)
        assert all(twin.find(probe, MISSING) == twin.get(probe) for probe in [*range(7), 99])
        assert twin.find(99, MISSING) == 5
    assert [memo.get(probe) for probe in range(7)] == before or memo.get(99) == 5
