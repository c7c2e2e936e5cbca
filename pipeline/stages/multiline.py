"""Multi-line records: a stack trace is one record, not one record per frame.

A Java or Python service prints an exception as 20 to 200 lines; read line by line, every frame
(``at com.acme.Foo.bar(Foo.java:42)``) would be a record with a template of its own, drowning the one line that
matters. The :class:`Joiner` joins **continuation lines** to the record before them, before decoding, in
``detect`` (files) and in the worker (per partition and Kafka key) alike.

**Which lines continue a record.** With ``--multiline-start REGEX`` (Filebeat's ``multiline.pattern`` with
``negate: true``, Vector's ``start_pattern``): every line that does not match REGEX. By default, a line that does
*not start a record of the stream* (it does not fit ``--log-format`` or the preset's layout; without a layout,
it does not start with a timestamp or ``{``) **and** looks like a continuation:

* it starts with whitespace (Java's ``\\tat ...`` frames, Python's ``  File ...`` lines), ``at ``, ``...``
  (``... 12 more``), ``Caused by:``, ``Suppressed:``, ``Exception in thread``;
* it is a package-qualified Java exception class (``java.lang.IllegalStateException: boom``), the line a
  logger prints right after its own message;
* it is part of a Python traceback: ``Traceback (most recent call last):``, every line after it up to and
  including the exception line (``ValueError: bad``), and between chained tracebacks the blank lines and
  ``During handling of the above exception...`` / ``The above exception was the direct cause...``.

A JSON object takes no continuation lines (structured logs carry a trace in a field; a text line among
JSON records is counted as not JSON). A continuation with no record before it (the first line of a file, or of
a key) is a record of its own: nothing is lost.

**Bounds.** A record holds at most ``max_lines`` lines and ``max_bytes`` bytes (``--multiline-max-lines``,
``--max-line-bytes``); the line that would pass a bound starts a new record (counted as ``cut``). In the worker
a record is also complete when its key sent nothing for ``timeout`` seconds of processing time
(``--multiline-timeout``, :meth:`Joiner.expire`), so a record is never held forever.

**Order.** Records come out in the order of their first lines: a complete record waits behind an earlier one
that is still open (for at most the timeout). So the records of a partition reach the chain in offset order,
as the worker's offset bookkeeping requires, and :meth:`Joiner.held_offset` is the smallest offset not yet
handed on: the worker never commits past it (``pipeline.stream.ledger``).

A joined record is one :class:`~pipeline.records.RawLine`: its lines joined by ``\\n``, the origin, offset, key
and arrival time of its first line, ``lines`` and ``end`` (the offset of its last line). The chain takes the
template, time and fields from the first line and keeps the whole record as the sample.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import RawLine

# Bytes, so that the common case (a line that starts a record) costs no decoding.
_TRACEBACK = b"Traceback (most recent call last):"
_CHAIN = (b"During handling of the above exception", b"The above exception was the direct cause")
_PREFIXES = (b"at ", b"...", b"Caused by:", b"Suppressed:", b"Exception in thread ", _TRACEBACK, *_CHAIN)
_JAVA_EXCEPTION = re.compile(rb"(?:[a-zA-Z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|$)")
_INDENT = (b" ", b"\t")


@dataclass
class JoinStats:
    records: int = 0  # records made of more than one line
    lines: int = 0  # lines in those records
    cut: int = 0  # records ended by a bound (max lines or bytes)
    expired: int = 0  # records ended by the timeout


@dataclass(slots=True)
class _Record:
    first: RawLine
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    end: int = 0
    seen: float = 0.0
    truncated: bool = False
    complete: bool = False
    in_traceback: bool = False
    after_exception: bool = False
    json: bool = False


class Joiner:
    """Joins continuation lines to their record, per key (see the module docstring).

    ``starts(text)``: whether a line starts a record of this stream (the decoder's layout or timestamp rule,
    :meth:`pipeline.stages.decoding.Decoder.starts_record`); ignored with ``start``.
    """

    def __init__(self, starts: Callable[[str], bool], *, start: str | None = None, max_lines: int = 500,
                 max_bytes: int = 65536) -> None:
        if max_lines < 1:
            raise LogwardenError("--multiline-max-lines must be at least 1")
        try:
            self.start = re.compile(start) if start else None
        except re.error as exc:
            raise LogwardenError(f"--multiline-start {start!r} is not a valid regex: {exc}") from None
        self.starts = starts
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.stats = JoinStats()
        self._queue: deque[_Record] = deque()
        self._open: dict[bytes, _Record] = {}
        # The common state, kept without a _Record: one unkeyed one-line record that a plain next line will
        # complete (see :meth:`_plain_start`). Set only while the queue is empty; anything else turns it into
        # the _Record that ``push`` would have made (:meth:`_settle`) before going the general way.
        self._plain: RawLine | None = None
        self._plain_seen = 0.0

    # ----------------------------------------------------------------------------------- rules
    def _continues(self, record: _Record, data: bytes) -> bool:
        if record.json:
            return False  # a JSON object is a whole record: structured logs carry their traces in a field
        if self.start is not None:
            return self.start.search(data.decode("utf-8", "replace")) is None
        if not data or data.isspace():  # a blank line (what ``not data.strip()`` says, without a copy)
            return record.in_traceback or record.after_exception
        looks = (data[:1] in _INDENT or data.startswith(_PREFIXES) or record.in_traceback
                 or _JAVA_EXCEPTION.match(data) is not None)
        return looks and not self.starts(data.decode("utf-8", "replace"))

    @staticmethod
    def _track(record: _Record, data: bytes) -> None:
        """Python traceback state: inside one, the exception line ends it; chained ones follow."""
        if data.startswith(_TRACEBACK):
            record.in_traceback, record.after_exception = True, False
        elif record.in_traceback and data[:1] not in _INDENT and data.strip():
            record.in_traceback, record.after_exception = False, True
        elif record.after_exception and data.strip() and not data.startswith(_CHAIN):
            record.after_exception = False

    # ----------------------------------------------------------------------------------- stream
    def _plain_start(self, data: bytes) -> bool:
        """Whether ``data`` surely starts a record that takes no special state: after a record outside a
        traceback it continues nothing (not indented, no continuation prefix, no Java exception), and it is
        neither JSON nor a traceback's first line. A blank line is one too (it continues only a traceback)."""
        return (self.start is None and data[:1] not in _INDENT and data[:1] != b"{"
                and not data.startswith(_PREFIXES) and _JAVA_EXCEPTION.match(data) is None)

    def _settle(self) -> None:
        """Turn the plain held line into the _Record ``push`` makes for a new record (the queue is empty)."""
        raw = self._plain
        if raw is not None:
            self._plain = None
            new = _Record(raw, [raw.data], len(raw.data), raw.last_offset, self._plain_seen, raw.truncated)
            self._open[b""] = new
            self._queue.append(new)

    def push(self, raw: RawLine, now: float = 0.0) -> list[RawLine]:
        """Add one line; returns the records this completed, in the order of their first lines."""
        if not raw.key and self._plain_start(raw.data):
            # What the general way below does in the common case, without a _Record for the new line: the
            # record held (plain, or the one open record if it is outside a traceback) is complete.
            held = self._plain
            if held is not None:
                self._plain, self._plain_seen = raw, now
                return [held]
            queue = self._queue
            if not queue:
                self._plain, self._plain_seen = raw, now
                return []
            if len(queue) == 1:
                only = queue[0]
                if self._open.get(b"") is only and not (only.in_traceback or only.after_exception):
                    queue.clear()
                    del self._open[b""]
                    self._plain, self._plain_seen = raw, now
                    return [self._render(only)]
        self._settle()
        key = raw.key or b""
        record = self._open.get(key)
        data = raw.data
        if record is not None and self._continues(record, data):
            if len(record.parts) < self.max_lines and record.size + 1 + len(raw.data) <= self.max_bytes:
                record.parts.append(raw.data)
                record.size += 1 + len(raw.data)
                record.end = raw.last_offset
                record.seen = now
                record.truncated = record.truncated or raw.truncated
                self._track(record, data)
                return self._release()
            self.stats.cut += 1
        if record is not None:
            record.complete = True
        # what ``_track`` makes of a new record's first line: only a traceback's first line changes its state
        new = _Record(raw, [data], len(data), raw.last_offset, now, raw.truncated,
                      in_traceback=data.startswith(_TRACEBACK), json=data[:1] == b"{" and self.start is None)
        queue = self._queue
        if new.json:
            new.complete = True  # takes no continuation: never held for one
            queue.append(new)
            return self._release()
        self._open[key] = new
        if record is not None and len(queue) == 1 and queue[0] is record:
            # the common case (one key, a line that starts a record): the one record held is complete and is
            # all that ``_release`` would hand on; the new one takes its place in the queue
            queue[0] = new
            return [self._render(record)]
        queue.append(new)
        return self._release()

    def expire(self, now: float, timeout: float) -> list[RawLine]:
        """Complete every record whose key sent nothing for ``timeout`` seconds; returns what that released."""
        self._settle()
        for key, record in list(self._open.items()):
            if now - record.seen >= timeout:
                record.complete = True
                del self._open[key]
                self.stats.expired += len(record.parts) > 1
        return self._release()

    def flush(self) -> list[RawLine]:
        """Every record, complete or not (end of a file or of the input)."""
        self._settle()
        for record in self._queue:
            record.complete = True
        self._open.clear()
        return self._release()

    def held_offset(self) -> int | None:
        """The smallest offset of a line read but not yet handed on (None when nothing is held)."""
        if self._plain is not None:  # held plain, the queue is empty: the _Record it would be starts with it
            return self._plain.offset
        return self._queue[0].first.offset if self._queue else None

    @property
    def holding(self) -> int:
        return len(self._queue) + (self._plain is not None)

    def _release(self) -> list[RawLine]:
        out: list[RawLine] = []
        queue = self._queue
        while queue and queue[0].complete:
            record = queue.popleft()
            key = record.first.key or b""
            if self._open.get(key) is record:
                del self._open[key]
            out.append(self._render(record))
        return out

    def _render(self, record: _Record) -> RawLine:
        first = record.first
        if len(record.parts) == 1:
            return first
        self.stats.records += 1
        self.stats.lines += len(record.parts)
        return RawLine(b"\n".join(record.parts), first.origin, first.offset, first.key, first.arrival,
                       record.truncated, len(record.parts), record.end)


def joined(lines: Iterable[RawLine], joiner: Joiner | None) -> Iterator[RawLine]:
    """``lines`` with continuation lines joined (files): a record never spans two files."""
    if joiner is None:
        yield from lines
        return
    origin: str | None = None
    push = joiner.push
    # ``push``'s first case inline (see :meth:`Joiner.push`): a plain line while a plain line is held hands the held
    # one on and is held in its place. ``Joiner._plain_start`` is the test, written out unless a subclass changed it.
    inline = type(joiner)._plain_start is Joiner._plain_start and joiner.start is None
    java = _JAVA_EXCEPTION.match
    for raw in lines:
        if raw.origin != origin:
            yield from joiner.flush()
            origin = raw.origin
        if inline and not raw.key and (held := joiner._plain) is not None:
            data = raw.data
            if (data[:1] not in _INDENT and data[:1] != b"{" and not data.startswith(_PREFIXES)
                    and java(data) is None):
                joiner._plain, joiner._plain_seen = raw, 0.0
                yield held
                continue
        out = push(raw)
        if len(out) == 1:  # the common case: one record out for one line in (no iterator over a list of one)
            yield out[0]
        elif out:
            yield from out
    yield from joiner.flush()


def joiner_for(settings: PipelineSettings, starts: Callable[[str], bool]) -> Joiner | None:
    """The stream's joiner from its settings (None with ``--no-multiline``)."""
    if not settings.multiline:
        return None
    return Joiner(starts, start=settings.multiline_start, max_lines=int(settings.multiline_max_lines),
                  max_bytes=int(settings.max_line_bytes))
