"""Compressed inputs: bzip2, xz and zstd by magic bytes (gzip is in test_files.py), and their broken forms."""

from __future__ import annotations

import builtins
import bz2
import lzma
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from pipeline.errors import InputError
from pipeline.sources.compression import ZSTD_HINT
from pipeline.sources.files import count_bytes, read_lines
from tests.fakes import FakeStdin


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


CODECS: dict[str, Callable[[bytes], bytes]] = {"bz2": bz2.compress, "xz": lzma.compress, "zst": _zstd}
NAMES = {"bz2": "bzip2", "xz": "xz", "zst": "zstd"}
BODY = b"".join(b"2026-11-30T10:%02d:00Z host-%d GET /api/%d took %dms\n" % (i % 60, i % 7, i, i * 3)
                for i in range(20000))


def lines(path: str) -> list[bytes]:
    return [r.data for r in read_lines([path])]


@pytest.mark.parametrize("suffix", CODECS)
def test_by_suffix_and_by_magic(tmp_path: Path, suffix: str) -> None:
    packed = CODECS[suffix](BODY)
    named = tmp_path / f"app.log.1.{suffix}"
    named.write_bytes(packed)
    anonymous = tmp_path / "rotated.1"  # logrotate with a custom compressext, or no suffix at all
    anonymous.write_bytes(packed)
    expected = BODY.splitlines()
    assert lines(str(named)) == expected
    assert lines(str(anonymous)) == expected
    assert [r.data for r in read_lines(["-"], stdin=FakeStdin(packed))] == expected
    assert count_bytes([named]) == len(packed)  # progress counts compressed bytes


@pytest.mark.parametrize("suffix", CODECS)
def test_concatenated_streams(tmp_path: Path, suffix: str) -> None:
    # `cat a.zst b.zst > c.zst` (and the same with bzip2, xz) decompresses to both: the tools do that too.
    path = tmp_path / f"cat.{suffix}"
    path.write_bytes(CODECS[suffix](b"a\nb\n") + CODECS[suffix](b"c\n"))
    assert lines(str(path)) == [b"a", b"b", b"c"]


@pytest.mark.parametrize("suffix", CODECS)
def test_truncated_archive_is_one_error_line(tmp_path: Path, suffix: str) -> None:
    packed = CODECS[suffix](BODY)
    path = tmp_path / f"cut.log.{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=f"cut.log.{suffix}: truncated {NAMES[suffix]} data") as err:
        lines(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", CODECS)
def test_corrupt_archive_is_one_error_line(tmp_path: Path, suffix: str) -> None:
    packed = bytearray(CODECS[suffix](BODY))
    middle = len(packed) // 2
    packed[middle:middle + 256] = b"\xa5" * 256
    path = tmp_path / f"bad.log.{suffix}"
    path.write_bytes(bytes(packed))
    with pytest.raises(InputError, match=f"bad.log.{suffix}: (corrupt|truncated) {NAMES[suffix]} data") as err:
        lines(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", CODECS)
def test_name_promises_a_format_the_data_lacks(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"fake.log.{suffix}"
    path.write_bytes(b"plain text\n")
    with pytest.raises(InputError, match=f"fake.log.{suffix}: not {NAMES[suffix]} data"):
        count_bytes([path])


def test_zstd_without_the_package_is_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.log.zst"
    path.write_bytes(_zstd(b"x\n"))
    real_import = builtins.__import__

    def blocked(name: str, *args: object, **kwargs: object) -> object:
        if name == "zstandard":
            raise ImportError("No module named 'zstandard'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(InputError) as err:
        count_bytes([path])
    assert str(err.value) == ZSTD_HINT and "pip install 'logwarden[zstd]'" in ZSTD_HINT


def test_long_line_in_zstd_is_truncated_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.zst"
    path.write_bytes(_zstd(b"B" * (4 * 1024 * 1024) + b"\nok\n"))
    got = list(read_lines([str(path)], max_line_bytes=1024))
    assert [(len(r.data), r.truncated) for r in got] == [(1024, True), (2, False)]
