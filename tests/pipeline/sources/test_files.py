"""Sources: line splitting, numbering, gzip, stdin, the size cap and every unreadable input."""

from __future__ import annotations

import gc
import gzip
import io
import os
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.sources.files as sources
from pipeline.errors import InputError, LogwardenError
from pipeline.sources.files import SourceStats, count_bytes, peek_lines, read_lines
from tests.fakes import FakeStdin, NoPeekStdin


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def datas(paths: list[str], **kwargs: object) -> list[bytes]:
    return [line.data for line in read_lines(paths, **kwargs)]  # type: ignore[arg-type]


def expected_lines(data: bytes) -> list[bytes]:
    """The reference split: on \\n, one trailing \\r dropped, no phantom line after a final \\n."""
    if not data:
        return []
    parts = data.split(b"\n")
    last = parts.pop()
    lines = [p[:-1] if p.endswith(b"\r") else p for p in parts]  # \r only counts before a \n
    return lines + [last] if last else lines


def test_lines_offsets_origin_and_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "a.log", b"first\r\nsecond\n\nlast without newline")
    lines = list(read_lines([path]))
    assert [line.data for line in lines] == [b"first", b"second", b"", b"last without newline"]
    assert [line.offset for line in lines] == [1, 2, 3, 4]
    assert {line.origin for line in lines} == {path}
    assert not any(line.truncated for line in lines)
    assert all(line.arrival > 0 for line in lines)


def test_files_in_order_offsets_restart(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", b"a1\na2\n")
    b = write(tmp_path / "b.log", b"b1\n")
    lines = list(read_lines([b, a]))
    assert [(line.origin, line.offset, line.data) for line in lines] == [
        (b, 1, b"b1"), (a, 1, b"a1"), (a, 2, b"a2")
    ]


def test_empty_file_has_no_lines(tmp_path: Path) -> None:
    stats = SourceStats()
    assert list(read_lines([write(tmp_path / "e.log", b"")], stats=stats)) == []
    assert stats.files == 1 and stats.lines == 0


def test_gzip_by_suffix_and_by_magic(tmp_path: Path) -> None:
    body = b"".join(b"line %d\n" % i for i in range(1000))
    named = write(tmp_path / "x.log.gz", gzip.compress(body))
    unnamed = write(tmp_path / "rotated.1", gzip.compress(body))
    assert datas([named]) == expected_lines(body)
    assert datas([unnamed]) == expected_lines(body)


def test_multi_member_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "cat.gz", gzip.compress(b"a\nb\n") + gzip.compress(b"c\n"))
    assert datas([path]) == [b"a", b"b", b"c"]


def test_stdin_plain_gzip_and_without_peek() -> None:
    assert [(r.origin, r.offset, r.data) for r in read_lines(["-"], stdin=FakeStdin(b"x\ny\n"))] == [
        ("-", 1, b"x"), ("-", 2, b"y")
    ]
    assert datas(["-"], stdin=FakeStdin(gzip.compress(b"z1\nz2"))) == [b"z1", b"z2"]
    assert datas(["-"], stdin=NoPeekStdin(b"p\nq\n")) == [b"p", b"q"]
    assert datas(["-"], stdin=NoPeekStdin(gzip.compress(b"g\n"))) == [b"g"]


def test_stdin_is_not_closed() -> None:
    stdin = FakeStdin(b"a\n")
    list(read_lines(["-"], stdin=stdin))
    assert not stdin.closed
    bare = io.BytesIO(b"b\nc\n")  # no peek: sources wrap it, and the wrapper must not close it either
    assert datas(["-"], stdin=bare) == [b"b", b"c"]
    gc.collect()
    assert not bare.closed


def test_paths_may_be_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "p.log"
    path.write_bytes(b"x\n")
    assert [(r.origin, r.data) for r in read_lines([path])] == [(str(path), b"x")]
    assert count_bytes([path]) == 2


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.log")
    with pytest.raises(InputError, match="nope.log: no such file"):
        list(read_lines([missing]))
    with pytest.raises(InputError, match="no such file"):
        count_bytes([missing])


def test_empty_directory(tmp_path: Path) -> None:
    # A directory stands for its files (tests/pipeline/sources/test_rotation.py); one without any is an error.
    with pytest.raises(InputError, match="a directory without log files"):
        list(read_lines([str(tmp_path)]))
    with pytest.raises(InputError, match="a directory without log files"):
        count_bytes([str(tmp_path)])


def test_permission_denied_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "secret.log", b"x\n")

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(sources, "open", deny, raising=False)
    with pytest.raises(InputError, match="secret.log: permission denied"):
        list(read_lines([path]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file")
def test_permission_denied_real_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.log", b"x\n")
    os.chmod(path, 0)
    with pytest.raises(InputError, match="permission denied"):
        list(read_lines([path]))


def test_gz_name_without_gzip_data(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.log.gz", b"plain text, not gzip\n")
    with pytest.raises(InputError, match="fake.log.gz: not gzip data"):
        list(read_lines([path]))
    with pytest.raises(InputError, match="not gzip data"):
        count_bytes([path])


def test_empty_gz_file_is_empty(tmp_path: Path) -> None:
    assert datas([write(tmp_path / "empty.gz", b"")]) == []


def test_corrupt_gzip_header(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.gz", b"\x1f\x8b" + b"\x00garbage" * 10)
    with pytest.raises(InputError, match="bad.gz: corrupt gzip data"):
        list(read_lines([path]))


def _big_text(lines: int = 20000) -> bytes:
    rng = random.Random(7)
    return b"".join(b"%d user=%x took %dms\n" % (i, rng.getrandbits(64), rng.randrange(10**6)) for i in range(lines))


def test_corrupt_gzip_mid_file(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(_big_text()))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)  # zeroed deflate data (or a bad CRC) halfway through
    path = write(tmp_path / "mid.gz", bytes(packed))
    got: list[bytes] = []
    with pytest.raises(InputError, match="mid.gz: corrupt gzip data") as err:
        for line in read_lines([path]):
            got.append(line.data)
    assert "\n" not in str(err.value)
    # Lines well before the damage come through intact (gzip's CRC is only checked at the end, so a few
    # lines just before the error may be garbage: the error is what tells the caller to stop trusting them).
    assert len(got) > 1000 and got[:1000] == expected_lines(_big_text())[:1000]


def test_truncated_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(_big_text())
    path = write(tmp_path / "cut.gz", packed[: len(packed) // 2])
    with pytest.raises(InputError, match="cut.gz: truncated gzip data"):
        list(read_lines([path]))


def test_errors_are_logwarden_errors_with_one_line() -> None:
    err = InputError("a\nb   c")
    assert isinstance(err, LogwardenError) and str(err) == "a b c" and err.exit_code == 2


@pytest.mark.parametrize(("line", "truncated"), [
    (b"x" * 16, False),
    (b"x" * 17, True),
    (b"x" * 15 + b"\r", False),   # 15 bytes + \r\n
    (b"x" * 16 + b"\r", False),   # exactly the cap, then \r\n
    (b"x" * 17 + b"\r", True),
])
def test_cap_boundaries(tmp_path: Path, line: bytes, truncated: bool) -> None:
    path = write(tmp_path / "c.log", line + b"\nnext\n")
    lines = list(read_lines([path], max_line_bytes=16))
    assert [r.data for r in lines] == [line.rstrip(b"\r")[:16], b"next"]
    assert lines[0].truncated is truncated and lines[1].truncated is False


def test_cap_on_last_line_without_newline(tmp_path: Path) -> None:
    lines = list(read_lines([write(tmp_path / "c.log", b"y" * 40)], max_line_bytes=16))
    assert [(r.data, r.truncated) for r in lines] == [(b"y" * 16, True)]


def test_ten_megabyte_line_is_truncated_without_holding_it(tmp_path: Path) -> None:
    huge = b"A" * (10 * 1024 * 1024)
    path = write(tmp_path / "huge.log", b"before\n" + huge + b"\nafter\n")
    stats = SourceStats()
    tracemalloc.start()
    try:
        lines = [(r.data, r.truncated, r.offset) for r in read_lines([path], max_line_bytes=65536, stats=stats)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == [(b"before", False, 1), (b"A" * 65536, True, 2), (b"after", False, 3)]
    assert stats.truncated == 1 and stats.lines == 3
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes: the long line was held in memory"


def test_ten_megabyte_line_in_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.gz", gzip.compress(b"B" * (10 * 1024 * 1024) + b"\nok\n"))
    lines = list(read_lines([path], max_line_bytes=1000))
    assert [(len(r.data), r.truncated) for r in lines] == [(1000, True), (2, False)]


def test_count_bytes_and_progress_add_up(tmp_path: Path) -> None:
    body = _big_text(100000)
    plain = write(tmp_path / "p.log", body)
    packed = write(tmp_path / "p.log.gz", gzip.compress(body))
    total = count_bytes([plain, packed])
    assert total == len(body) + os.path.getsize(packed)
    calls: list[int] = []
    stats = SourceStats()
    n = sum(1 for _ in read_lines([plain, packed], stats=stats, progress=calls.append))
    assert n == 2 * len(expected_lines(body))
    assert sum(calls) == total == stats.bytes_read
    assert len(calls) > 2  # reported along the way, not only at the end
    assert count_bytes(["-", plain]) is None


def test_peek_lines_keeps_everything() -> None:
    head, rest = peek_lines(iter(range(10)), 3)
    assert head == [0, 1, 2] and list(rest) == list(range(10))
    head, rest = peek_lines([1], 5)
    assert head == [1] and list(rest) == [1]


def test_bad_cap_rejected() -> None:
    with pytest.raises(ValueError):
        list(read_lines(["-"], max_line_bytes=0, stdin=FakeStdin(b"")))


chunks = st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"\r", b"\xff", b"0123456789"]), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=chunks, cap=st.integers(min_value=1, max_value=12), compress=st.booleans())
def test_property_line_count_and_content(tmp_path: Path, parts: list[bytes], cap: int, compress: bool) -> None:
    data = b"".join(parts)
    path = write(tmp_path / "prop.log", gzip.compress(data) if compress else data)
    lines = list(read_lines([path], max_line_bytes=cap))
    want = expected_lines(data)
    assert len(lines) == len(want)  # one RawLine per newline-separated line, never more, never fewer
    assert [r.offset for r in lines] == list(range(1, len(want) + 1))
    for raw, full in zip(lines, want, strict=True):
        assert raw.data == full[:cap]
        assert raw.truncated == (len(full) > cap)
