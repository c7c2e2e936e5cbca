"""Rotated files: a directory or a glob is read in logrotate's order (oldest rotation first, live file last)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.sources.files import read_lines
from pipeline.sources.rotation import expand, in_time_order


def test_numbered_rotations_highest_first_live_last() -> None:
    names = ["app.log", "app.log.1", "app.log.10.gz", "app.log.2.gz", "app.log.3.bz2"]
    assert in_time_order(names) == ["app.log.10.gz", "app.log.3.bz2", "app.log.2.gz", "app.log.1", "app.log"]


def test_dateext_rotations_oldest_first() -> None:
    names = ["app.log", "app.log-20261130.gz", "app.log-20261128.xz", "app.log-2026112912.zst"]
    assert in_time_order(names) == ["app.log-20261128.xz", "app.log-2026112912.zst", "app.log-20261130.gz",
                                    "app.log"]


def test_several_logs_one_after_another() -> None:
    names = ["b.log", "a.log.1", "b.log.1.gz", "a.log"]
    assert in_time_order(names) == ["a.log.1", "a.log", "b.log.1.gz", "b.log"]


def test_directory_read_in_time_order_and_mtimes_ignored(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"live\n")
    (tmp_path / "app.log.1").write_bytes(b"one\n")
    (tmp_path / "app.log.2.gz").write_bytes(gzip.compress(b"two\n"))
    (tmp_path / ".hidden").write_bytes(b"never\n")
    os.utime(tmp_path / "app.log", (1, 1))  # a copy that lost its mtimes must not change the order
    got = [(Path(r.origin).name, r.data) for r in read_lines([str(tmp_path)])]
    assert got == [("app.log.2.gz", b"two"), ("app.log.1", b"one"), ("app.log", b"live")]


def test_glob_pattern_expanded_in_time_order(tmp_path: Path) -> None:
    for name in ("app.log", "app.log.1", "app.log.2", "other.log"):
        (tmp_path / name).write_bytes(name.encode() + b"\n")
    assert [Path(p).name for p in expand([str(tmp_path / "app.log*")])] == ["app.log.2", "app.log.1", "app.log"]


def test_explicit_list_keeps_the_given_order(tmp_path: Path) -> None:
    a, b = tmp_path / "app.log", tmp_path / "app.log.1"
    a.write_bytes(b"a\n")
    b.write_bytes(b"b\n")
    assert expand([str(a), str(b), "-"]) == [str(a), str(b), "-"]


def test_glob_without_match_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no file matches this pattern"):
        expand([str(tmp_path / "nothing*.log")])
