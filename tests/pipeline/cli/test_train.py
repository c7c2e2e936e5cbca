"""``logwarden train`` sources and time ranges: every mistake is one line and exit status 2, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import parse_time_bound
from pipeline.errors import LogwardenError
from tests.pipeline.cli.test_files import HDFS_FLAGS, SAMPLE, assert_user_error, run


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "give PATH... or --source"),
    (["--source", "s3:bucket"], "expected kafka:TOPIC or es:INDEX"),
    (["--source", "kafka:"], "expected kafka:TOPIC or es:INDEX"),
    ([str(SAMPLE), "--source", "kafka:logs"], "not both"),
    ([str(SAMPLE), "--since", "7d"], "--since and --until go with --source"),
    (["--source", "kafka:logs", "--since", "yesterday"], "--since: 'yesterday' is neither an ISO 8601 time"),
    (["--source", "kafka:logs", "--since", "1d", "--until", "2d"], "--since must be before --until"),
    ([str(SAMPLE), "--sample-windows", "0"], "--sample-windows"),
])
def test_source_mistakes(args: list[str], fragment: str, tmp_path: Path) -> None:
    assert_user_error(run("train", *args, "--model-dir", str(tmp_path / "m"), *HDFS_FLAGS), fragment)
    assert not (tmp_path / "m" / "CURRENT").exists()


def test_an_unreachable_kafka_is_one_line(tmp_path: Path) -> None:
    result = run("train", "--source", "kafka:logs", "--bootstrap-servers", "127.0.0.1:1", "--model-dir",
                 str(tmp_path / "m"), *HDFS_FLAGS)
    assert_user_error(result, "Kafka")


def test_time_bounds() -> None:
    now = 1_800_000_000.0
    assert parse_time_bound("now", "--until", now) == now
    assert parse_time_bound("7d", "--since", now) == now - 7 * 86400
    assert parse_time_bound("90m", "--since", now) == now - 5400
    assert parse_time_bound("2026-11-30T00:00:00Z", "--since") == 1_795_996_800.0
    assert parse_time_bound("2026-11-30T01:00:00+01:00", "--since") == 1_795_996_800.0
    assert parse_time_bound("2026-11-30", "--since") == 1_795_996_800.0  # no zone: UTC
    with pytest.raises(LogwardenError, match="--since must be positive"):
        parse_time_bound("0d", "--since", now)


def test_help_says_memory_is_bounded() -> None:
    text = run("train", "--help").stdout
    assert "reservoir sample" in text and "--sample-windows" in text and "kafka:TOPIC" in text
