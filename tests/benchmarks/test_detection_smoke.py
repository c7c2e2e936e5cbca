"""Smoke test of the HDFS detection benchmark on its --quick slice, plus its scoring helpers.

The floors here sit well below the published figures (loglizer's Isolation Forest: F1 0.80 on HDFS) and below
our goal (F1 and PR-AUC >= 0.90): the full figures belong to ``python -m benchmarks.detection``, not to a test.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.detection import QUICK_SIZES, logwarden_command, read_scores, run_benchmark, unavailable_reason
from benchmarks.hdfs_render import sessions_dir
from benchmarks.reference import block_metrics, content, count_matrix

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not (sessions_dir() / "hdfs_train").is_file():
        if IN_CI:
            pytest.fail(f"HDFS session data missing under CI: {sessions_dir()}")
        pytest.skip(f"HDFS session data not found: {sessions_dir()}")
    return run_benchmark(*QUICK_SIZES, seed=0)


def test_quick_slice_data(report: dict[str, Any]) -> None:
    assert report["data"]["train"] == {"blocks": 1031, "anomalous": 31, "lines": report["data"]["train"]["lines"]}
    assert report["data"]["test"]["blocks"] == 1031 and report["data"]["test"]["anomalous"] == 31
    json.dumps(report)  # the document is plain JSON


def test_reference_runs_and_detects(report: dict[str, Any]) -> None:
    ref = report["reference"]
    for key in ("precision", "recall", "f1", "pr_auc"):
        assert 0.0 <= ref[key] <= 1.0
    assert ref["blocks"] == 1031 and ref["missing"] == 0
    assert ref["f1"] >= 0.4 and ref["pr_auc"] >= 0.4, ref


def test_ours_beats_a_floor(report: dict[str, Any]) -> None:
    ours = report["ours"]
    if "skipped" in ours:
        if IN_CI:
            pytest.fail(f"logwarden was not run under CI: {ours['skipped']}")
        pytest.skip(ours["skipped"])
    assert "error" not in ours, ours.get("error")
    assert ours["missing"] == 0, "every test block must get a score"
    assert ours["f1"] >= 0.5 and ours["pr_auc"] >= 0.5, ours


def test_read_scores_takes_each_blocks_worst_window(tmp_path: Path) -> None:
    rows = [
        {"entity": {"id": "blk_1"}, "anomaly": {"score": 0.2, "is_anomaly": False}},
        {"entity": {"id": "blk_1"}, "anomaly": {"score": 0.9, "is_anomaly": True}},
        {"entity": {"id": "blk_-2"}, "anomaly": {"score": -0.5, "is_anomaly": False}},
        {"entity.id": "blk_3", "anomaly.score": 0.1, "anomaly.is_anomaly": False},
    ]
    path = tmp_path / "scores.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    scores, flagged = read_scores(path)
    assert scores == {"blk_1": 0.9, "blk_-2": -0.5, "blk_3": 0.1}
    assert flagged == {"blk_1": True, "blk_-2": False, "blk_3": False}


def test_block_metrics() -> None:
    labels = {"a": 1, "b": 1, "c": 0, "d": 0}
    flagged = {"a": True, "b": False, "c": True, "d": False}
    scores = {"a": 3.0, "b": 2.0, "c": 1.0}  # d missing: lowest score, not flagged
    m = block_metrics(labels, flagged, scores)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["pr_auc"] == 1.0 and m["missing"] == 1 and m["flagged"] == 2


def test_reference_helpers() -> None:
    line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38 terminating"
    assert content(line) == "PacketResponder 1 for block blk_38 terminating"
    matrix = count_matrix({"blk_1": Counter({7: 2, 9: 1})}, ["blk_1", "blk_2"], [7, 8])
    assert matrix.tolist() == [[2.0, 0.0], [0.0, 0.0]]  # cluster 9 unseen in training: dropped


def test_missing_command_is_reported() -> None:
    assert unavailable_reason(None) is not None
    assert logwarden_command() is None or Path(logwarden_command() or "").name == "logwarden"
