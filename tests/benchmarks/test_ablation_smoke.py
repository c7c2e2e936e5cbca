"""Smoke test of the ablation benchmark: it cuts windows with the CLI's chain and fits every variant.

It broke silently once when the training job's return value grew; this runs it on a small slice so that
cannot happen again. Floors are loose: the figures belong to ``python -m benchmarks.ablation``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.ablation import evaluate, forest_noise, outranking_normals, windows_of
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
    assert all(top["components"].keys() == {"iforest", "rarity", "excess"} for top in full["outranking_normals"])
    # The forest's own noise: the first random state is the one the table shows, the others differ.
    noise = forest_noise(train, test, labels, seed=0, forest_seeds=2)
    assert noise.keys() == {"iforest", "full"} and noise["full"]["random_states"] == [0, 101]
    assert noise["full"]["pr_auc"][0] == full["pr_auc"]
    assert noise["full"]["spread"] == round(max(noise["full"]["pr_auc"]) - min(noise["full"]["pr_auc"]), 4)


def test_outranking_normals_lists_normal_blocks_above_anomalous_ones_with_their_cost() -> None:
    labels = {"a1": 1, "a2": 1, "n1": 0, "n2": 0, "n3": 0}
    scores = {"n1": 9.0, "a1": 5.0, "n2": 4.0, "a2": 3.0, "n3": 1.0}
    details = {"n1": {"reason": "excess", "lines": 269}, "n2": {"reason": "iforest", "lines": 19}}
    tops = outranking_normals(labels, scores, details)
    assert [(t["block"], t["rank"], t["anomalies_below"]) for t in tops] == [("n1", 0, 2), ("n2", 2, 1)]
    assert tops[0]["reason"] == "excess" and tops[0]["lines"] == 269  # n3 ranks below every anomaly: absent
    assert outranking_normals(labels, scores, details, limit=1) == tops[:1]
    assert outranking_normals({"n1": 0}, {"n1": 1.0}, {}) == []  # no anomalous block, nothing outranks one
