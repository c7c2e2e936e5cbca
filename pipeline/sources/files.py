"""Sources: input files (or stdin) read as numbered raw lines.

Lines stay bytes here: decoding them, and counting the undecodable ones, is the decoder's job. Files are
read in the order given; ``-`` is stdin; a directory or a glob pattern stands for its files in logrotate's
time order (:mod:`pipeline.sources.rotation`). gzip, bzip2, xz and zstd are recognised by their magic bytes,
whatever the name (:mod:`pipeline.sources.compression`), so ``cat app.log.gz | logwarden detect -`` works; a
file named ``.gz`` (``.bz2``, ``.xz``, ``.zst``) that does not start like one is an error rather than a
stream of garbage. Lines are split on ``\\n`` (a ``\\r`` before it is dropped) and numbered from 1 in each
file; a last line without a newline still counts, an empty file has no lines.

Memory stays bounded whatever the input: a line longer than ``max_line_bytes`` keeps its first
``max_line_bytes`` bytes, is marked ``truncated``, and the rest of it is skipped in chunks, never held whole.

Every problem with an input (missing, no permission, corrupt or truncated compressed data, even halfway
through) raises :class:`~pipeline.errors.InputError` with a one-line message naming the file.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, TypeVar, cast

from pipeline.errors import InputError
from pipeline.records import RawLine
from pipeline.sources import compression
from pipeline.sources.compression import MAGIC_BYTES, Codec
from pipeline.sources.rotation import expand

STDIN = "-"
DEFAULT_MAX_LINE_BYTES = 65536
_BLOCK = 1 << 18
_PROGRESS_STEP = 1 << 20
_T = TypeVar("_T")


@dataclass
class SourceStats:
    """What the sources read; ``bytes_read`` is input bytes (compressed bytes for a compressed file)."""

    files: int = 0
    lines: int = 0
    truncated: int = 0
    bytes_read: int = 0


def _input_error(path: str, exc: BaseException, codec: Codec | None = None) -> InputError:
    name = "stdin" if path == STDIN else path
    if isinstance(exc, InputError):
        return exc
    described = compression.describe_error(exc, codec)
    if described is not None:
        return InputError(f"{name}: {described}")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: no such file")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name}: is a directory, not a log file")
    if isinstance(exc, PermissionError):
        return InputError(f"{name}: permission denied")
    if isinstance(exc, OSError):
        return InputError(f"{name}: cannot read: {exc.strerror or exc}")
    return InputError(f"{name}: cannot read: {exc}")


class _BorrowedReader(io.BufferedReader):
    """Buffers a stream we do not own (a stdin without ``peek``); closing or collecting it leaves that open."""

    def close(self) -> None:
        pass


def _open(path: str, stdin: IO[bytes] | None) -> tuple[IO[bytes], IO[bytes], Codec | None]:
    """``(reader, base, codec)``: ``reader`` yields the text bytes, ``base`` is the underlying input."""
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
        head = cast(io.BufferedReader, base).peek(MAGIC_BYTES)[:MAGIC_BYTES]  # every base here is buffered
    except OSError as exc:
        if path != STDIN:
            base.close()
        raise _input_error(path, exc) from None
    codec = compression.sniff(head)
    if codec is not None:
        try:
            return compression.open_codec(codec, base), base, codec
        except BaseException:
            if path != STDIN:
                base.close()
            raise
    promised = compression.named(path) if path != STDIN else None
    if head and promised is not None:
        base.close()
        suffix = promised.suffixes[0]
        raise InputError(f"{path}: not {promised.name} data (the name ends in {suffix} but the file does not "
                         f"start like {promised.name})")
    return base, base, None


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
    for path in expand(paths):
        reader, base, codec = _open(path, stdin)
        stats.files += 1
        try:
            yield from _lines(reader, base, codec is not None, path, max_line_bytes, stats, progress)
        except Exception as exc:
            # Each decompressor has its own errors (lzma.LZMAError, zstandard.ZstdError...): all become one line.
            if not isinstance(exc, OSError | EOFError) and compression.describe_error(exc, codec) is None:
                raise  # not an input problem: a bug keeps its traceback
            raise _input_error(path, exc, codec) from None
        finally:
            if path != STDIN:
                reader.close()
                base.close()


def _lines(
    reader: IO[bytes],
    base: IO[bytes],
    compressed: bool,
    origin: str,
    max_line_bytes: int,
    stats: SourceStats,
    progress: Callable[[int], object] | None,
    block_size: int = _BLOCK,
) -> Iterator[RawLine]:
    """The lines of ``reader``, cut from blocks of up to ``block_size`` bytes.

    One ``split`` per block instead of one ``readline`` (and its bookkeeping) per line: a block without
    ``\r`` whose lines all fit the cap, the common case, becomes lines in one tight loop; any other block goes
    through :func:`_cut` line by line. ``read1`` returns what is there (a pipe's lines are not held back until a
    block fills). Memory stays bounded: the unfinished line carried to the next block never exceeds the cap
    (plus one byte); a longer one is handed on truncated at once and the rest of it dropped as it arrives.
    """
    read = getattr(reader, "read1", None) or reader.read
    limit = max_line_bytes + 1
    # Progress is input bytes: for a compressed file that is the compressed position, not the line bytes.
    tracker = _Progress(base.tell if compressed and base.seekable() else None, stats, progress)
    counted = checked = offset = 0
    tail = b""  # the start of a line whose newline is not read yet: at most ``limit`` bytes
    skipping = False  # inside a line handed on truncated: drop everything up to its newline
    clock = time.time
    while True:
        block = read(block_size)
        if not block:
            break
        counted += len(block)
        if counted - checked >= _PROGRESS_STEP:
            checked = counted
            tracker.update(counted)
        if skipping:
            cut = block.find(b"\n")
            if cut < 0:
                continue
            block = block[cut + 1:]
            skipping = False
        if tail:
            block = tail + block
        parts = block.split(b"\n")
        tail = parts.pop()
        if parts:
            stats.lines += len(parts)
            if b"\r" not in block and max(map(len, parts)) <= max_line_bytes:
                for data in parts:
                    offset += 1
                    yield RawLine(data, origin, offset, None, clock(), False)
            else:
                for line in parts:
                    offset += 1
                    data, truncated = _cut(line, max_line_bytes)
                    stats.truncated += truncated
                    yield RawLine(data, origin, offset, None, clock(), truncated)
        if len(tail) > limit:  # longer than any line kept whole, whatever follows: hand it on truncated now
            offset += 1
            stats.lines += 1
            stats.truncated += 1
            yield RawLine(tail[:max_line_bytes], origin, offset, None, clock(), True)
            tail, skipping = b"", True
    if tail:  # the last line, without a newline: kept as it is (a \r included) unless over the cap
        offset += 1
        stats.lines += 1
        truncated = len(tail) > max_line_bytes
        stats.truncated += truncated
        yield RawLine(tail[:max_line_bytes] if truncated else tail, origin, offset, None, clock(), truncated)
    tracker.update(counted)


def _cut(line: bytes, max_line_bytes: int) -> tuple[bytes, bool]:
    """``(data, truncated)`` of one line read up to its newline: a \r before the newline dropped, then capped."""
    data = line[:-1] if line[-1:] == b"\r" else line
    if len(data) > max_line_bytes:
        return data[:max_line_bytes], True
    return data, False


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
    """Total size of the inputs in bytes (compressed size when compressed), or None when stdin is among them.

    Also checks that every file can be opened (exists, not a directory, readable, really compressed when
    named so, zstandard installed for zstd), so the CLI can fail on a bad path before doing any work.
    """
    total = 0
    unknown = False
    for path in expand(paths):
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
