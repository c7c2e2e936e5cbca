"""Sources: input files (or stdin) read as numbered raw lines.

Lines stay bytes here: decoding them, and counting the undecodable ones, is the decoder's job. Files are
read in the order given; ``-`` is stdin. Gzip is recognised by its magic bytes, whatever the name, so
``cat app.log.gz | logwarden detect -`` works; a file named ``.gz`` that is not gzip is an error rather than
a stream of garbage. Lines are split on ``\\n`` (a ``\\r`` before it is dropped) and numbered from 1 in each
file; a last line without a newline still counts, an empty file has no lines.

Memory stays bounded whatever the input: a line longer than ``max_line_bytes`` keeps its first
``max_line_bytes`` bytes, is marked ``truncated``, and the rest of it is skipped in chunks, never held whole.

Every problem with an input (missing, a directory, no permission, corrupt or truncated gzip, even halfway
through) raises :class:`~pipeline.errors.InputError` with a one-line message naming the file.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, TypeVar, cast

from pipeline.errors import InputError
from pipeline.records import RawLine

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_LINE_BYTES = 65536
_SKIP_CHUNK = 1 << 16
_PROGRESS_STEP = 1 << 20
_T = TypeVar("_T")


@dataclass
class SourceStats:
    """What the sources read; ``bytes_read`` is input bytes (compressed bytes for a gzip file)."""

    files: int = 0
    lines: int = 0
    truncated: int = 0
    bytes_read: int = 0


def _input_error(path: str, exc: BaseException) -> InputError:
    name = "stdin" if path == STDIN else path
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: no such file")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name}: is a directory, not a log file")
    if isinstance(exc, PermissionError):
        return InputError(f"{name}: permission denied")
    if isinstance(exc, EOFError):
        return InputError(f"{name}: truncated gzip data (the compressed stream ends early)")
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return InputError(f"{name}: corrupt gzip data ({exc})")
    if isinstance(exc, OSError):
        return InputError(f"{name}: cannot read: {exc.strerror or exc}")
    return InputError(f"{name}: cannot read: {exc}")


class _BorrowedReader(io.BufferedReader):
    """Buffers a stream we do not own (a stdin without ``peek``); closing or collecting it leaves that open."""

    def close(self) -> None:
        pass


def _open(path: str, stdin: IO[bytes] | None) -> tuple[IO[bytes], IO[bytes], bool]:
    """``(reader, base, is_gzip)``: ``reader`` yields the text bytes, ``base`` is the underlying input."""
    if path == STDIN:
        base = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if base is None:
            raise InputError("stdin: not available (no standard input to read '-' from)")
        if not hasattr(base, "peek"):
            base = _BorrowedReader(base)  # type: ignore[arg-type]
    else:
        try:
            base = open(path, "rb")  # noqa: SIM115 - closed by read_lines
        except OSError as exc:
            raise _input_error(path, exc) from None
    try:
        head = cast(io.BufferedReader, base).peek(2)[:2]  # every base here is buffered (see above)
    except OSError as exc:
        if path != STDIN:
            base.close()
        raise _input_error(path, exc) from None
    if head[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=base, mode="rb")), base, True
    if head and path != STDIN and path.lower().endswith(".gz"):
        base.close()
        raise InputError(f"{path}: not gzip data (the name ends in .gz but the file does not start like gzip)")
    return base, base, False


def read_lines(
    paths: Sequence[str | os.PathLike[str]],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    *,
    stats: SourceStats | None = None,
    progress: Callable[[int], object] | None = None,
    stdin: IO[bytes] | None = None,
) -> Iterator[RawLine]:
    """Yield every line of ``paths`` in order as :class:`RawLine` (origin = the path as given).

    ``progress`` is called now and then with the number of input bytes consumed since the last call (a
    ``tqdm(total=count_bytes(paths), unit='B').update`` fits); over a whole file the calls add up to its
    size. ``stdin`` replaces ``sys.stdin.buffer`` for ``-`` (tests).
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    stats = stats if stats is not None else SourceStats()
    for name in paths:
        path = os.fspath(name)
        reader, base, is_gzip = _open(path, stdin)
        stats.files += 1
        try:
            yield from _lines(reader, base, is_gzip, path, max_line_bytes, stats, progress)
        except (OSError, EOFError, zlib.error) as exc:
            raise _input_error(path, exc) from None
        finally:
            if path != STDIN:
                reader.close()
                base.close()


def _lines(
    reader: IO[bytes],
    base: IO[bytes],
    is_gzip: bool,
    origin: str,
    max_line_bytes: int,
    stats: SourceStats,
    progress: Callable[[int], object] | None,
) -> Iterator[RawLine]:
    readline = reader.readline
    limit = max_line_bytes + 1
    # Progress is input bytes: for gzip read from a file that is the compressed position, not the line bytes.
    tracker = _Progress(base.tell if is_gzip and base.seekable() else None, stats, progress)
    counted = checked = offset = 0
    while True:
        chunk = readline(limit)
        if not chunk:
            break
        offset += 1
        counted += len(chunk)
        truncated = False
        if chunk[-1:] == b"\n":
            data = chunk[:-2] if chunk[-2:] == b"\r\n" else chunk[:-1]
        elif len(chunk) < limit:
            data = chunk  # the last line, without a newline
        else:
            rest = readline(_SKIP_CHUNK)
            counted += len(rest)
            if rest == b"\n" and chunk[-1:] == b"\r":
                data = chunk[:-1]  # exactly max_line_bytes followed by \r\n: it fits
            else:
                data = chunk[:max_line_bytes]
                truncated = True
                while rest and rest[-1:] != b"\n":
                    rest = readline(_SKIP_CHUNK)
                    counted += len(rest)
        if truncated:
            stats.truncated += 1
        stats.lines += 1
        yield RawLine(data, origin, offset, None, time.time(), truncated)
        if counted - checked >= _PROGRESS_STEP:
            checked = counted
            tracker.update(counted)
    tracker.update(counted)


class _Progress:
    """Turns "bytes consumed so far in this file" into increments for ``SourceStats`` and a callback."""

    def __init__(
        self, position: Callable[[], int] | None, stats: SourceStats, callback: Callable[[int], object] | None
    ) -> None:
        self.position = position
        self.stats = stats
        self.callback = callback
        self.done = 0

    def update(self, counted: int) -> None:
        now = self.position() if self.position is not None else counted
        delta = now - self.done
        if delta > 0:
            self.done = now
            self.stats.bytes_read += delta
            if self.callback is not None:
                self.callback(delta)


def count_bytes(paths: Sequence[str | os.PathLike[str]]) -> int | None:
    """Total size of the inputs in bytes (compressed size for gzip), or None when stdin is among them.

    Also checks that every file can be opened (exists, not a directory, readable, real gzip when named
    ``.gz``), so the CLI can fail on a bad path before doing any work.
    """
    total = 0
    unknown = False
    for name in paths:
        path = os.fspath(name)
        if path == STDIN:
            unknown = True
            continue
        reader, base, _ = _open(path, None)
        try:
            total += os.fstat(base.fileno()).st_size
        finally:
            reader.close()
            base.close()
    return None if unknown else total


def peek_lines(lines: Iterable[_T], n: int) -> tuple[list[_T], Iterator[_T]]:
    """The first ``n`` items, and an iterator that still yields all of them (for format checks)."""
    iterator = iter(lines)
    head = list(islice(iterator, n))
    return head, chain(head, iterator)
