"""Smoke test of the ablation benchmark: it cuts windows with the CLI's chain and fits every variant.

It broke silently once when the training job's return value grew; this runs it on a small slice so that
cannot happen again. Floors are loose: the figures belong to ``python -m benchmarks.ablation``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.ablation import evaluate, windows_of
from benchmarks.hdfs_render import sessions_dir

IN_CI = os.environ.get("CI") == "true"


def test_ablation_windows_and_variants_run_on_a_small_slice(tmp_path: Path) -> None:
    if not (sessions_dir() / "hdfs_train").is_file():
        if IN_CI:
            pytest.fail(f"HDFS session data missing under CI: {sessions_dir()}")
        pytest.skip(f"HDFS session data not found: {sessions_dir()}")
    train, test, labels = windows_of(tmp_path, 0.03, 0, sizes=(400, 400))
    assert len(train) == 412 and len(test) == len(labels) == 412  # one session window per block
    full = evaluate(train, test, labels, random_state=0)
    rarity = evaluate(train, test, labels, weights={"iforest": 0.0, "rarity": 1.0, "excess": 0.0}, random_state=0)
    assert full["train_windows"] == 412
    assert full["pr_auc"] >= 0.5 and rarity["pr_auc"] >= 0.5  # threshold-free; 412 windows is a small model
    assert full["threshold"] != rarity["threshold"] or full["pr_auc"] != rarity["pr_auc"]  # variants differ
