"""Smoke test of the multi-line benchmark on its --quick slice: joined traces leave the figures as they were,
unjoined ones (--no-multiline) bring them down. Full figures: ``python -m benchmarks.multiline``."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from benchmarks.detection import QUICK_SIZES
from benchmarks.hdfs_render import sessions_dir
from benchmarks.multiline import add_traces, run_benchmark, trace_for

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not (sessions_dir() / "hdfs_train").is_file():
        if IN_CI:
            pytest.fail(f"HDFS session data missing under CI: {sessions_dir()}")
        pytest.skip(f"HDFS session data not found: {sessions_dir()}")
    result = run_benchmark(*QUICK_SIZES, seed=0)
    if "skipped" in result:
        pytest.fail(f"benchmark skipped: {result['skipped']}")
    return result


def test_traces_only_name_their_block_in_one_line(tmp_path: Path) -> None:
    trace = trace_for("blk_42", random.Random(0))
    assert [line for line in trace if "blk_42" in line] == [trace[-2]] and trace[-2].startswith("Caused by:")
    src, dst = tmp_path / "a.log", tmp_path / "b.log"
    src.write_text("".join(f"081109 2035{i:02d} 1 INFO x: blk_{i} ok\n" for i in range(20)))
    assert add_traces(src, dst, 0.5, 1) == 10
    assert dst.read_text().count("Caused by:") == 10


def test_joined_traces_keep_the_figures(report: dict[str, Any]) -> None:
    assert report["data"]["traces"]["test"] > 50
    assert report["joined"]["f1"] == pytest.approx(report["plain"]["f1"], abs=0.01)
    assert report["joined"]["pr_auc"] == pytest.approx(report["plain"]["pr_auc"], abs=0.01)


def test_unjoined_traces_bring_them_down(report: dict[str, Any]) -> None:
    assert report["not_joined"]["f1"] < report["joined"]["f1"] - 0.2
    assert report["not_joined"]["precision"] < report["joined"]["precision"] - 0.2
