"""The small data contracts passed between pipeline stages.

Stages talk only through these types: a source yields :class:`RawLine`, a decoder turns it into a
:class:`LogRecord`, the template miner tags it with a template id, a windower groups tagged records into
:class:`Window` objects and the scorer turns a closed window into a scored document.

A scored window leaves the pipeline as a :class:`Document`: sinks get its ``_id`` with it and never need to
know how ids are made (:func:`pipeline.scoring.document_id`).

Times are float seconds since the Unix epoch, UTC, everywhere inside the pipeline; they are rendered as
ISO 8601 only at the output boundary (see :func:`iso_utc`).
"""

from __future__ import annotations

import hashlib
import math
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def template_id(template_text: str) -> str:
    """The stable id of a template text: ``T`` + 10 hex digits of its BLAKE2b hash (the same in every process,
    worker and model version, which is what makes template ids meaningful across them)."""
    return "T" + hashlib.blake2b(template_text.encode("utf-8"), digest_size=5).hexdigest()


# A window keeps at most this many distinct templates the model does not know (see pipeline.stages.windows);
# the lines of any further one count under this one id.
MAX_UNSEEN_TEMPLATES = 256
OTHER_UNSEEN_TEMPLATE = f"<other: unseen templates beyond the {MAX_UNSEEN_TEMPLATES} a window keeps>"
OTHER_UNSEEN_ID = template_id(OTHER_UNSEEN_TEMPLATE)


@dataclass(slots=True)
class RawLine:
    """One line as a source read it: bytes plus where it came from.

    ``origin`` names the source (a file path, ``-`` for stdin, ``topic/partition`` for Kafka) and
    ``offset`` is the 1-based line number in a file or the Kafka offset. ``truncated`` is True when the
    line was longer than the source's size cap and ``data`` holds only its first bytes.

    A multi-line record (:mod:`pipeline.stages.multiline`) is one RawLine too: its ``lines`` joined by
    ``\n``, the offset of its first line in ``offset`` and of its last in ``end``.
    """

    data: bytes
    origin: str
    offset: int
    key: bytes | None = None
    arrival: float = 0.0
    truncated: bool = False
    lines: int = 1
    end: int = -1

    @property
    def last_offset(self) -> int:
        return self.end if self.end >= 0 else self.offset


@dataclass(slots=True)
class LogRecord:
    """A decoded log line.

    ``timestamp`` is the event time (None when the line carried none; windowers then fall back to the
    last event time seen from that origin). ``fields`` holds decoded header fields with dotted ECS names
    (``host.name``, ``log.level``) or the logparser field names (``Component``, ``Pid``).
    ``flags`` lists what went wrong while decoding (``unmatched``, ``invalid_utf8``, ``truncated``,
    ``bad_timestamp``): such records are kept and counted, never dropped silently.
    """

    message: str
    timestamp: float | None
    fields: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    offset: int = 0
    arrival: float = 0.0
    flags: tuple[str, ...] = ()
    raw: str = ""


@dataclass(slots=True)
class TemplateMatch:
    """The template miner's answer for one message.

    ``template_id`` is stable across processes (a hash of the template text, see
    :mod:`pipeline.stages.templates`); ``known`` is False for a template the trained model never saw.
    """

    template_id: str
    template: str
    known: bool = True


def new_counts() -> Counter[str]:
    """An empty :class:`~collections.Counter`, made without ``Counter.__init__`` (whose only work, a Python-level
    ``update`` of nothing, costs more than the rest of a window's fields: the windowers make a window per record
    of one-line sessions and buckets). ``Counter()`` is the same empty counter."""
    counts: Counter[str] = Counter.__new__(Counter)
    return counts


@dataclass(slots=True)
class Window:
    """Records of one entity grouped by event time; what the scorer scores.

    ``counts`` maps template id to the number of records; ``templates`` maps template id to its text;
    ``samples`` keeps the first line seen of each template (bounded), so explanations can quote lines.
    ``late`` marks a window made only of records that arrived after their window had closed.
    ``positions`` maps an origin (file or topic/partition) to the smallest offset in the window, which
    the streaming worker uses to decide which Kafka offsets are safe to commit; ``offsets`` holds every
    record's offset (8 bytes each) when the windower was asked to track them (the worker's replay state).
    ``stream`` names the stream the window was built from when that is part of its identity (a Kafka
    ``topic/partition``; empty for files).
    """

    entity_field: str
    entity_id: str
    kind: str
    start: float
    end: float
    counts: Counter[str] = field(default_factory=new_counts)
    templates: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    samples: dict[str, str] = field(default_factory=dict)
    first_lines: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    late: bool = False
    offsets: array[int] | None = None
    stream: str = ""

    @property
    def count(self) -> int:
        return sum(self.counts.values())


Source = tuple[str, int, int]
"""Where a document's window was read: topic, partition, smallest offset of its records there."""


@dataclass(slots=True)
class Document:
    """A scored window on its way to a sink: deterministic ``_id``, the JSON body, where it was read.

    ``source`` travels with the document so a sink that hands a document back (rejected by Elasticsearch)
    hands back everything the dead-letter topic needs; nothing is matched up again by id.
    """

    id: str
    body: dict[str, Any]
    source: Source | None = None


def iso_utc(ts: float) -> str:
    """Render epoch seconds as ISO 8601 UTC with millisecond precision and a ``Z`` suffix."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_FAST_ISO_LIMIT = 253402300798.0  # a second below 9999-12-31T23:59:59: a time rounded up a second stays in year 9999
_ISO_DAYS: dict[int, str] = {}  # "YYYY-MM-DDT" per day since the epoch (a stream spans few days)
_HOURS_MINUTES = [f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(1440)]  # per minute of the day
_SECONDS = [f"{second:02d}" for second in range(60)]
_MILLIS = [f".{milli:03d}Z" for milli in range(1000)]


def iso_utc_fast(ts: float) -> str:
    """:func:`iso_utc`, about four times cheaper (a window's bounds are rendered per window, and most windows have
    times of their own). The same rounding as ``datetime.fromtimestamp``: the fraction to microseconds half to even
    (a fraction that rounds to a whole second carries into the second), then truncated to milliseconds; the date
    from ``time.gmtime`` once per day (POSIX days are 86,400 seconds), the time of day from tables (minute of the
    day, second, millisecond). Times before 1970 or after 9999 (and nan, inf) take :func:`iso_utc` itself."""
    if not 0.0 <= ts < _FAST_ISO_LIMIT:
        return iso_utc(ts)
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    seconds = int(whole)
    if micros >= 1_000_000:
        micros -= 1_000_000
        seconds += 1
    day, second = divmod(seconds, 86_400)
    date = _ISO_DAYS.get(day)
    if date is None:
        t = time.gmtime(day * 86_400)
        date = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        if len(_ISO_DAYS) >= 4096:
            _ISO_DAYS.clear()
        _ISO_DAYS[day] = date
    minute, second = divmod(second, 60)
    return date + _HOURS_MINUTES[minute] + _SECONDS[second] + _MILLIS[micros // 1000]
