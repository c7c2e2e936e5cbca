"""Decoding: a raw line becomes a :class:`LogRecord` (event time, message, fields).

Three shapes of input, chosen per line:

* ``--log-format``: a logparser-style layout (see :class:`LogFormat`); the field ``Content`` is the message.
* JSON lines, detected automatically (a line starting with ``{`` that parses as an object), with ECS names;
  see :mod:`pipeline.stages.jsonlog` for the keys read.
* Plain text: the whole line is the message; a timestamp at its start (ISO 8601, syslog, ...) is detected
  from the first lines of the stream and, once found, read from every line and cut from the message.

Nothing is dropped: a line that fits no format is kept whole with the flag ``unmatched``; undecodable bytes
are replaced (``invalid_utf8``); a line cut by the source's size cap is ``truncated``; a timestamp that does
not parse leaves ``timestamp=None`` with ``bad_timestamp``. Every flag is counted in :class:`DecodeStats`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import TypeAlias

from pipeline.errors import FormatError
from pipeline.records import LogRecord, RawLine
from pipeline.stages.jsonlog import JsonFields, json_record_parts
from pipeline.stages.timestamps import PREFIX_LAYOUTS, TimeParser, auto_parsers, detect_parser

MESSAGE_FIELD = "Content"
# logparser's usual names for the parts of a line that make its timestamp (Loghub formats use all five).
TIME_FIELD_NAMES = ("date", "time", "timestamp", "day", "month")
JSON_MODES = ("auto", "strict", "off")
_FIELD = re.compile(r"<([^<>]+)>")



@dataclass(frozen=True, slots=True)
class _Field:
    name: str


# A parsed layout is a list of items: a field, a literal character, _WS (a run of whitespace) or an optional
# part (a tuple of items). _Rest is what follows a point: the remaining items of each enclosing part.
_WS = " "
_Item: TypeAlias = "str | _Field | tuple[_Item, ...]"
_Rest: TypeAlias = "tuple[Sequence[_Item], ...]"
_END = "end"
_NEXT = "field"


class LogFormat:
    """A logparser-style line layout, e.g. ``'<Date> <Time> <Pid> <Level> <Component>: <Content>'``.

    The rule (one for every layout): ``<Name>`` is a field (names may contain dots, ``<host.name>``); a run
    of whitespace matches one or more whitespace characters; ``( ... )?`` is an optional part; ``\\x`` is
    the character x; every other character is itself, so ``<Time>|<Pid>|<Content>`` needs no escapes while
    Loghub's published layouts (``\\[<Pid>\\]``, ``\\|``, ``(\\[<PID>\\])?``) keep working as written.
    A backslash before a letter or digit (``\\S``, ``\\d``) is regex syntax, which layouts do not take:
    it is rejected with a :class:`FormatError`, as are two fields with nothing between them.

    Matching is linear in the line length, without backtracking: lines are stripped, then each field
    ends at the first place where the layout text that follows it (up to the next field, through an
    optional part or past it) fits; the last field takes the rest of the line up to the layout's trailing
    text; an optional part is taken when its text fits where it stands. A line that cannot be read that
    way does not match (the decoder keeps it whole as ``unmatched``). On well-formed lines this reads the
    same fields as logparser's lazy ``.*?`` regexes (Zhu et al., ICSE-SEIP 2019), which on a line that
    does not fit backtrack in polynomial time (a minute for 60 words against HDFS's layout).
    """

    def __init__(self, fmt: str) -> None:
        if not fmt or not fmt.strip():
            raise FormatError("--log-format is empty")
        self.fmt = fmt
        items = _parse_layout(fmt)
        names = tuple(_field_names(items))
        if MESSAGE_FIELD not in names:
            raise FormatError(f"--log-format {fmt!r} has no <{MESSAGE_FIELD}> field (the message part)")
        if len(set(names)) != len(names):
            raise FormatError(f"--log-format {fmt!r} names a field twice")
        if any(isinstance(item, tuple) and MESSAGE_FIELD in _field_names(item) for item in _walk(items)):
            raise FormatError(f"--log-format {fmt!r}: <{MESSAGE_FIELD}> cannot be inside an optional part")
        self.names = names
        self._optional = any(isinstance(item, tuple) for item in items)
        self.regex = re.compile(_Compiler(fmt, items).pattern(), re.DOTALL)

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        """``(message, fields)`` when the line fits; fields left empty by an optional part are omitted."""
        found = self.regex.fullmatch(line.strip())
        if found is None:
            return None
        fields = dict(zip(self.names, found.groups(), strict=True))
        if self._optional:
            fields = {name: value for name, value in fields.items() if value is not None}
        message = fields.pop(MESSAGE_FIELD)
        return message, fields

    def __repr__(self) -> str:
        return f"LogFormat({self.fmt!r})"


def _parse_layout(fmt: str) -> list[_Item]:
    """The layout as items (see ``_Item``); raises FormatError for regex syntax it does not take."""
    items: list[_Item] = []
    stack: list[list[_Item]] = []
    closes = _optional_spans(fmt)
    i = 0
    while i < len(fmt):
        char = fmt[i]
        field = _FIELD.match(fmt, i)
        if field:
            items.append(_Field(field.group(1)))
            i = field.end()
            continue
        if char == "\\":
            if i + 1 == len(fmt):
                raise FormatError(f"--log-format {fmt!r} ends with a lone backslash (write \\\\ for a backslash)")
            escaped = fmt[i + 1]
            if escaped.isalnum():
                raise FormatError(f"--log-format {fmt!r}: '\\{escaped}' is regex syntax; layouts take text "
                                  "literally (only \\ before punctuation, <Name> fields and ( ... )? are special)")
            items.append(escaped)
            i += 2
            continue
        if char == "(" and i in closes:
            stack.append(items)
            items = []
        elif stack and char == ")" and fmt[i + 1:i + 2] == "?" and i in closes.values():
            part = tuple(items)
            items = stack.pop()
            items.append(part)
            i += 1
        elif char.isspace():
            if not items or items[-1] != _WS:
                items.append(_WS)
        else:
            items.append(char)
        i += 1
    return items


def _optional_spans(fmt: str) -> dict[int, int]:
    """Positions of each ``(`` that opens an optional part ``( ... )?`` -> position of its ``)``."""
    spans: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(fmt):
        field = _FIELD.match(fmt, i)
        if field:
            i = field.end()
            continue
        char = fmt[i]
        if char == "\\":
            i += 2
            continue
        if char == "(":
            opened.append(i)
        elif char == ")" and opened:
            start = opened.pop()
            if fmt[i + 1:i + 2] == "?":
                spans[start] = i
        i += 1
    return spans


def _walk(items: Sequence[_Item]) -> Iterator[_Item]:
    for item in items:
        yield item
        if isinstance(item, tuple):
            yield from _walk(item)


def _field_names(items: Sequence[_Item]) -> list[str]:
    return [item.name for item in _walk(items) if isinstance(item, _Field)]


class _Compiler:
    """Builds the linear-time regex of a parsed layout (see :class:`LogFormat` for the rule)."""

    def __init__(self, fmt: str, items: list[_Item]) -> None:
        self.fmt = fmt
        self.items = items
        self.index = 0

    def pattern(self) -> str:
        return self._seq(self.items, ())

    def _seq(self, items: Sequence[_Item], after: _Rest) -> str:
        out = []
        for position, item in enumerate(items):
            rest: _Rest = (items[position + 1:], *after)
            if isinstance(item, _Field):
                out.append(self._field(item, rest))
            elif isinstance(item, tuple):
                out.append(f"(?:{self._seq(item, rest)})?+" if item else "")
            elif item == _WS:
                out.append(r"\s++")
            else:
                out.append(re.escape(item))
        return "".join(out)

    def _field(self, field: _Field, rest: _Rest) -> str:
        group = f"(?P<lw{self.index}>"
        self.index += 1
        follows = _follows(rest)
        if any(not atoms and end == _NEXT for atoms, end in follows):
            names = [f"<{field.name}>", "the next field"]
            raise FormatError(f"--log-format {self.fmt!r} has nothing between {names[0]} and "
                              f"{'<' + _next_field(rest) + '>' if _next_field(rest) else names[1]}")
        if follows == [((), _END)]:
            return group + ".*)"
        # The field stops before the first text that follows it (the end of the line needs no lookahead).
        # Units: a possessive run of characters that cannot start a stop (the fast path), one stop
        # character where its text does not follow, a whitespace run where no text led by whitespace follows.
        lit = [(atoms, end) for atoms, end in follows if atoms and atoms[0] != _WS]
        ws = [_lookahead(atoms[1:], end) for atoms, end in follows if atoms and atoms[0] == _WS]
        stops = "".join(dict.fromkeys(re.escape(atoms[0]) for atoms, _ in lit))
        units = [f"[^{stops}]++" if not ws else f"[^\\s{stops}]++"]
        if lit:
            units.append(f"(?!{'|'.join(_lookahead(atoms, end) for atoms, end in lit)})[{stops}]")
        if ws and "" not in ws:  # a field followed by whitespace and then a field cannot hold whitespace
            units.append(r"\s++" + f"(?!{'|'.join(ws)})")
        return group + f"(?:{'|'.join(units)})*+)"


def _follows(rest: _Rest) -> list[tuple[tuple[str, ...], str]]:
    """Each literal text that can follow a point, up to the next field or the end: (atoms, _NEXT | _END)."""
    if not rest:
        return [((), _END)]
    head, *tail = rest
    if not head:
        return _follows(tuple(tail))
    item, remaining = head[0], (tuple(head[1:]), *tail)
    if isinstance(item, _Field):
        return [((), _NEXT)]
    if isinstance(item, tuple):
        return _follows((item, *remaining)) + _follows(tuple(remaining))
    found = []
    for atoms, end in _follows(tuple(remaining)):
        if item == _WS and atoms[:1] == (_WS,):
            found.append((atoms, end))
        else:
            found.append(((item, *atoms), end))
    return list(dict.fromkeys(found))


def _next_field(rest: _Rest) -> str:
    for part in rest:
        for item in _walk(part):
            if isinstance(item, _Field):
                return str(item.name)
    return ""


def _lookahead(atoms: Sequence[str], end: str) -> str:
    """The regex that tells a field to stop: the text that follows it (one whitespace is enough before a
    field, since that field may be anything)."""
    out = [r"\s++" if atom == _WS else re.escape(atom) for atom in atoms]
    if end == _NEXT and out and out[-1] == r"\s++":
        out[-1] = r"\s"
    return "".join(out) + (r"\Z" if end == _END else "")


@dataclass
class DecodeStats:
    """Counts of what the decoder saw; every flagged record is also counted here."""

    lines: int = 0
    matched: int = 0
    unmatched: int = 0
    json: int = 0
    not_json: int = 0
    invalid_utf8: int = 0
    truncated: int = 0
    bad_timestamp: int = 0


class Decoder:
    """Turns raw lines into records; one instance per stream (it learns the stream's time layout).

    ``json_mode``: ``auto`` reads JSON objects wherever a line is one; ``strict`` is for a JSON topic, where
    any other line becomes a record flagged ``not_json`` with the reason in ``fields['error.message']`` (the
    worker dead-letters it); ``off`` never reads JSON. ``time_fields`` overrides which format fields make the
    timestamp (default: those named Date, Time, Timestamp, Day or Month, in format order, joined by a space).
    Without ``time_format`` the layout is auto-detected from the first ``detect_lines`` lines that carry a
    time, then kept; the joined fields are tried first, then each time field alone (BGL's epoch
    ``Timestamp``). ``tz`` is the zone of times that carry none; ``default_year`` fills a missing year.
    """

    def __init__(
        self,
        log_format: str | None = None,
        time_format: str | None = None,
        *,
        time_fields: Sequence[str] | None = None,
        json_mode: str = "auto",
        tz: tzinfo = UTC,
        default_year: int | None = None,
        detect_lines: int = 100,
    ) -> None:
        if json_mode not in JSON_MODES:
            raise FormatError(f"json mode must be one of {', '.join(JSON_MODES)}, got {json_mode!r}")
        self.log_format = LogFormat(log_format) if log_format is not None else None
        self.json_mode = json_mode
        self.stats = DecodeStats()
        self._time_parser = (
            TimeParser.from_strptime(time_format, tz=tz, default_year=default_year) if time_format else None
        )
        self._auto = auto_parsers(tz=tz, default_year=default_year)
        self._prefix_parsers = [p for p in self._auto if p.name in PREFIX_LAYOUTS]
        self._json = JsonFields(self._time_parser, self._auto)
        self._time_fields = self._choose_time_fields(time_fields)
        self._detect_left = detect_lines
        self._chosen: tuple[int, TimeParser] | None = None  # (-1 = joined fields | field index, parser)
        self._lead: TimeParser | None = self._time_parser if self.log_format is None else None

    @property
    def time_layout(self) -> str | None:
        """The time layout in use: the given ``time_format``, or the one detected so far (None if none yet)."""
        if self._time_parser is not None:
            return self._time_parser.name
        chosen = self._chosen[1] if self._chosen else self._lead
        return chosen.name if chosen else None

    def decode(self, raw: RawLine) -> LogRecord:
        flags: list[str] = []
        data = raw.data
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            if raw.truncated and exc.reason == "unexpected end of data":
                text = data[: exc.start].decode(errors="replace")  # the size cap cut a character in two
            else:
                text = data.decode(errors="replace")
                flags.append("invalid_utf8")
                self.stats.invalid_utf8 += 1
        if raw.truncated:
            flags.append("truncated")
            self.stats.truncated += 1
        return self._decode(text, raw.origin, raw.offset, raw.arrival, flags)

    def decode_text(self, text: str, origin: str = "", offset: int = 0, arrival: float = 0.0) -> LogRecord:
        """Decode an already decoded string (a Kafka message value, a test line)."""
        return self._decode(text.rstrip("\r\n"), origin, offset, arrival, [])

    def _decode(self, text: str, origin: str, offset: int, arrival: float, flags: list[str]) -> LogRecord:
        stats = self.stats
        stats.lines += 1
        # JSON first: logparser layouts are loose enough ("<A> <B>: <Content>") to match a JSON object's text,
        # while a line that parses as a JSON object is unambiguous.
        error = "not a JSON object"
        if self.json_mode != "off" and text[:1] == "{":
            try:
                obj = json.loads(text)
            except ValueError as exc:
                error = f"invalid JSON: {exc}"
            else:
                if isinstance(obj, dict):
                    stats.json += 1
                    message, timestamp, fields, bad = json_record_parts(obj, text, self._json)
                    if bad:
                        self._flag_bad_time(flags)
                    return LogRecord(message, timestamp, fields, origin, offset, arrival, tuple(flags), text)
        if self.json_mode == "strict":
            stats.not_json += 1
            flags.append("not_json")
            return LogRecord(text, None, {"error.message": error}, origin, offset, arrival, tuple(flags), text)
        if self.log_format is not None:
            hit = self.log_format.match(text)
            if hit is not None:
                stats.matched += 1
                message, fields = hit
                timestamp = self._fields_time(fields, flags)
                return LogRecord(message, timestamp, fields, origin, offset, arrival, tuple(flags), text)
            stats.unmatched += 1
            flags.append("unmatched")
            return LogRecord(text, None, {}, origin, offset, arrival, tuple(flags), text)
        timestamp, message = self._leading_time(text, flags)
        return LogRecord(message, timestamp, {}, origin, offset, arrival, tuple(flags), text)

    def _flag_bad_time(self, flags: list[str]) -> None:
        flags.append("bad_timestamp")
        self.stats.bad_timestamp += 1

    def _choose_time_fields(self, explicit: Sequence[str] | None) -> tuple[str, ...]:
        if self.log_format is None:
            return ()
        names = self.log_format.names
        if explicit:
            missing = [name for name in explicit if name not in names]
            if missing:
                raise FormatError(f"time field {missing[0]!r} is not a field of --log-format {self.log_format.fmt!r}")
            return tuple(explicit)
        return tuple(name for name in names if name.lower() in TIME_FIELD_NAMES)

    def _fields_time(self, fields: dict[str, str], flags: list[str]) -> float | None:
        names = self._time_fields
        if not names:
            return None
        try:
            joined = " ".join([fields[name] for name in names]) if len(names) > 1 else fields[names[0]]
        except KeyError:  # an optional time field is absent from this line
            joined = " ".join([fields[name] for name in names if fields.get(name)])
        try:
            if self._time_parser is not None:
                return self._time_parser.parse(joined)
            if self._chosen is not None:
                index, parser = self._chosen
                return parser.parse(joined if index < 0 else fields.get(names[index], "").strip())
            if joined and self._detect_left > 0:
                self._detect_left -= 1
                candidates = [joined] + ([fields.get(name, "").strip() for name in names] if len(names) > 1 else [])
                for index, text in enumerate(candidates, start=-1):
                    found = detect_parser(text, self._auto) if text else None
                    if found is not None:
                        self._chosen = (index, found)
                        return found.parse(text)
        except ValueError:
            pass
        self._flag_bad_time(flags)
        return None

    def _leading_time(self, text: str, flags: list[str]) -> tuple[float | None, str]:
        """A timestamp at the start of a plain line, and the message after it."""
        bracket = text.startswith("[")
        body = text[1:] if bracket else text
        try:
            parser = self._lead
            if parser is None:
                if self._detect_left <= 0 or not text:
                    return None, text
                self._detect_left -= 1
                parser = next((p for p in self._prefix_parsers if _starts_with_time(p, body)), None)
                if parser is None:
                    return None, text
                self._lead = parser
            hit = parser.parse_prefix(body)
        except ValueError:
            self._flag_bad_time(flags)
            return None, text
        if hit is None:
            return None, text
        timestamp, end = hit
        rest = body[end:]
        if bracket and rest.startswith("]"):
            rest = rest[1:]
        return timestamp, rest.lstrip()


def _starts_with_time(parser: TimeParser, text: str) -> bool:
    try:
        return parser.parse_prefix(text) is not None
    except ValueError:
        return False


def check_format_matches(
    decoder: Decoder, sample_lines: Iterable[RawLine | str | bytes], *, source: str | None = None
) -> int:
    """How many sample lines fit ``--log-format``; raises FormatError when there were lines and none fit.

    The CLI calls this on the first lines of the input (see :func:`pipeline.sources.peek_lines`) so a wrong
    format fails at once with a clear message instead of producing a model made of ``unmatched`` lines.
    Returns 0 without checking when the decoder has no log format. Does not touch ``decoder.stats``.
    """
    log_format = decoder.log_format
    if log_format is None:
        return 0
    total = matched = 0
    first = None
    for item in sample_lines:
        if isinstance(item, RawLine):
            source = source or item.origin
            item = item.data
        text = item.decode(errors="replace") if isinstance(item, bytes) else item
        total += 1
        if first is None and text.strip():
            first = text.strip()
        if log_format.match(text) is not None:
            matched += 1
    if total and not matched:
        shown = first if first is None or len(first) <= 200 else first[:200] + "..."
        raise FormatError(
            f"--log-format matched none of the first {total} lines of {source or 'the input'}; first line was: {shown}"
        )
    return matched
