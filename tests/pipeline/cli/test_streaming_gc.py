"""``detect`` collects less often while it streams, and leaves the collector as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.loghub import LOG_FORMATS
from pipeline.cli import files
from pipeline.cli.app import cli
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
FLAGS = ["--log-format", LOG_FORMATS["HDFS"], "--entity-regex", r"blk_-?\d+"]


def test_streaming_gc_freezes_raises_the_threshold_and_restores_both() -> None:
    before = gc.get_threshold()
    with files.streaming_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == files.STREAMING_GC_THRESHOLD
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_streaming_gc_restores_after_an_error() -> None:  # a failed run in a long-lived process (tests, a notebook)
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), files.streaming_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_detect_streams_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    real = files.streaming_gc

    @contextmanager
    def spy() -> Iterator[None]:
        with real():
            seen.append(gc.get_threshold())
            yield

    monkeypatch.setattr(files, "streaming_gc", spy)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["detect", str(SAMPLE), *FLAGS, "--all-windows", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [files.STREAMING_GC_THRESHOLD]
    assert out.read_text().count("\n") > 0
    assert gc.get_freeze_count() == 0
