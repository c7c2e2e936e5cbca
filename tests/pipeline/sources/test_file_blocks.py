"""Sources: lines cut from blocks (one ``split`` per block) equal the per-line ``readline`` reading they replace.

The reference below is the previous implementation, kept here as the specification: one ``readline(cap + 1)``
per line, a ``\\r`` before the newline dropped, a line over the cap kept to its first ``cap`` bytes and marked,
the rest skipped. Small blocks put every boundary (a ``\\r\\n`` split across blocks, a line longer than a
block, a cap that falls mid-block) in reach of a few bytes of input.
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.sources.files as sources
from pipeline.sources.files import SourceStats

_SKIP_CHUNK = 1 << 16


def readline_lines(data: bytes, max_line_bytes: int) -> list[tuple[bytes, int, bool]]:
    """``(data, offset, truncated)`` of every line, read as the sources did before blocks."""
    readline = io.BytesIO(data).readline
    limit = max_line_bytes + 1
    out = []
    offset = 0
    while True:
        chunk = readline(limit)
        if not chunk:
            break
        offset += 1
        truncated = False
        if chunk[-1:] == b"\n":
            line = chunk[:-2] if chunk[-2:] == b"\r\n" else chunk[:-1]
        elif len(chunk) < limit:
            line = chunk
        else:
            rest = readline(_SKIP_CHUNK)
            if rest == b"\n" and chunk[-1:] == b"\r":
                line = chunk[:-1]
            else:
                line = chunk[:max_line_bytes]
                truncated = True
                while rest and rest[-1:] != b"\n":
                    rest = readline(_SKIP_CHUNK)
        out.append((line, offset, truncated))
    return out


def block_lines(data: bytes, max_line_bytes: int, block: int) -> tuple[list[tuple[bytes, int, bool]], SourceStats]:
    stats = SourceStats()
    reader = io.BytesIO(data)
    lines = sources._lines(reader, reader, False, "f", max_line_bytes, stats, None, block)
    return [(raw.data, raw.offset, raw.truncated) for raw in lines], stats


pieces = st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"\n\n", b"xyz" * 5, b"\t", b"\xff"]),
                  max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(data=pieces, cap=st.integers(1, 12), block=st.integers(1, 20))
def test_blocks_equal_readline(data: bytes, cap: int, block: int) -> None:
    expected = readline_lines(data, cap)
    got, stats = block_lines(data, cap, block)
    assert got == expected
    assert stats.lines == len(expected)
    assert stats.truncated == sum(t for _, _, t in expected)


def test_default_block_on_a_long_file_with_every_kind_of_line() -> None:
    lines = [b"plain", b"", b"crlf\r", b"x" * 70_000, b"y" * 65_536 + b"\r", b"z" * 65_537, b"\r", b"last"]
    data = b"\n".join(lines * 50)
    assert block_lines(data, 65_536, sources._BLOCK)[0] == readline_lines(data, 65_536)
    assert block_lines(data + b"\n", 65_536, sources._BLOCK)[0] == readline_lines(data + b"\n", 65_536)


def test_a_pipe_hands_on_what_arrived_without_waiting_for_a_full_block() -> None:
    class Pipe(io.RawIOBase):
        """Gives one line per read; reading past what was sent would fail the test."""

        def __init__(self) -> None:
            self.sent = [b"one\n", b"two\n"]

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            assert self.sent, "read past the lines sent so far"
            chunk = self.sent.pop(0)
            buffer[: len(chunk)] = chunk
            return len(chunk)

    reader = io.BufferedReader(Pipe())
    lines = sources._lines(reader, reader, False, "-", 100, SourceStats(), None)
    assert next(lines).data == b"one"
    assert next(lines).data == b"two"
