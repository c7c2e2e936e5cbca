"""The cluster index behind the miner's matching: a burst of unrelated lines costs linear time, same choices."""

from __future__ import annotations

import json
import random
import string
import time

import pytest

from pipeline.stages import template_index
from pipeline.stages.templates import TemplateMiner


def junk(n: int, seed: int = 14, words: int = 8) -> list[str]:
    """``n`` lines of ``words`` random letter words: every line its own template, one Drain leaf per length."""
    rng = random.Random(seed)
    return [" ".join("".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(3, 10)))
                     for _ in range(words)) for _ in range(n)]


def learn_seconds(lines: list[str]) -> tuple[float, TemplateMiner]:
    miner = TemplateMiner()
    start = time.process_time()
    for line in lines:
        miner.learn_cluster(line)
    return time.process_time() - start, miner


def test_a_burst_of_unrelated_lines_is_learnt_and_matched_in_linear_time() -> None:
    # Drain compares a line with every cluster of its leaf: 5,000 random lines took ~17 s (quadratic).
    small, _ = learn_seconds(junk(1000, seed=1))
    big, miner = learn_seconds(junk(5000))
    assert len(miner.templates()) == 5000
    assert big < 3.0 + 12 * small, (small, big)  # linear: ~5x the 1,000-line time; quadratic: ~25x
    assert big < 10.0, big
    start = time.process_time()
    for line in junk(5000, seed=99):
        assert not miner.match(line).known
    assert time.process_time() - start < 3.0 + 12 * small


def test_the_index_makes_drains_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every leaf through the index (LEAF_SCAN 0) gives the state and matches the plain scan gives."""
    rng = random.Random(3)
    lines = [f"{rng.choice(['open', 'close', 'read'])} file {rng.choice(['a', 'b', 'c', 'd'])} "
             f"user {rng.choice(['x', 'y'])} took {rng.randint(1, 99)} ms" for _ in range(300)]
    lines += junk(400, seed=5, words=6) + [f"w{i % 7} {' '.join(junk(1, seed=i, words=5))}" for i in range(300)]
    rng.shuffle(lines)

    def run(scan: int) -> str:
        monkeypatch.setattr(template_index, "LEAF_SCAN", scan)
        miner = TemplateMiner()
        handles = [miner.learn_cluster(line) for line in lines]
        finals = [miner.final_template(h).template_id for h in handles]
        matched = [miner.match(line).template_id for line in lines[::2] + junk(50, seed=8, words=6)]
        return json.dumps([finals, matched, miner.to_state()], sort_keys=True)

    assert run(0) == run(10**9)
