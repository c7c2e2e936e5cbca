"""Compressed rotations from the command line: a directory read in logrotate order, a broken archive is one line."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import zstandard
from click.testing import CliRunner

from pipeline.cli.app import cli


def test_parse_a_directory_of_rotations_in_time_order(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log.4.zst").write_bytes(zstandard.ZstdCompressor().compress(b"2026-11-30T10:00:00Z four\n"))
    (logs / "app.log.3.xz").write_bytes(lzma.compress(b"2026-11-30T10:00:01Z three\n"))
    (logs / "app.log.2.bz2").write_bytes(bz2.compress(b"2026-11-30T10:00:02Z two\n"))
    (logs / "app.log.1.gz").write_bytes(gzip.compress(b"2026-11-30T10:00:03Z one\n"))
    (logs / "app.log").write_bytes(b"2026-11-30T10:00:04Z live\n")
    result = CliRunner().invoke(cli, ["parse", str(logs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [row.split(",")[2] for row in result.stdout.splitlines()[1:]] == ["four", "three", "two", "one", "live"]


def test_a_truncated_archive_is_one_error_line(tmp_path: Path) -> None:
    packed = lzma.compress(b"".join(b"2026-11-30T10:00:00Z line %d %d\n" % (i, i * 7919 % 1000) for i in range(50000)))
    path = tmp_path / "app.log.1.xz"
    path.write_bytes(packed[: len(packed) // 2])
    result = CliRunner().invoke(cli, ["parse", str(path), "--out", str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"logwarden: error: {path}: truncated xz data (the compressed stream ends early)"]
    assert not (tmp_path / "out.csv").exists()  # the output is only written when the run completes
