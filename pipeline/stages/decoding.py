"""Decoding: a raw line becomes a :class:`LogRecord` (event time, message, fields).

Three shapes of input, chosen per line:

* ``--log-format``: a logparser-style layout (see :class:`pipeline.stages.layouts.LogFormat`); the field
  ``Content`` is the message.
* JSON lines, detected automatically (a line starting with ``{`` that parses as an object), with ECS names;
  see :mod:`pipeline.stages.jsonlog` for the keys read.
* Plain text: the whole line is the message; a timestamp at its start (ISO 8601, syslog, ...) is detected
  from the first lines of the stream and, once found, read from every line and cut from the message.

Nothing is dropped: a line that fits no format is kept whole with the flag ``unmatched``; undecodable bytes
are replaced (``invalid_utf8``); a line cut by the source's size cap is ``truncated``; a timestamp that does
not parse leaves ``timestamp=None`` with ``bad_timestamp``. Every flag is counted in :class:`DecodeStats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from operator import itemgetter

from pipeline.errors import FormatError
from pipeline.records import LogRecord, RawLine
from pipeline.stages.jsonlog import TOO_DEEP, JsonFields, json_record_parts, loads_record, scrub_surrogates
from pipeline.stages.layouts import MESSAGE_FIELD, check_layout_matches
from pipeline.stages.layouts import LogFormat as LogFormat  # re-exported: the decoder's layout
from pipeline.stages.presets import Layout
from pipeline.stages.timestamps import PREFIX_LAYOUTS, TimeParser, auto_parsers, detect_parser

# logparser's usual names for the parts of a line that make its timestamp (Loghub formats use all five).
TIME_FIELD_NAMES = ("date", "time", "timestamp", "day", "month")
JSON_MODES = ("auto", "strict", "off")
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
    stage_error: int = 0


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
        layout: Layout | None = None,
    ) -> None:
        """``layout`` (a preset's parser or layout, :mod:`pipeline.stages.presets`) replaces ``log_format``."""
        if json_mode not in JSON_MODES:
            raise FormatError(f"json mode must be one of {', '.join(JSON_MODES)}, got {json_mode!r}")
        self.log_format: Layout | None = layout if layout is not None else (
            LogFormat(log_format) if log_format is not None else None)
        self.json_mode = json_mode
        self.stats = DecodeStats()
        self._text_lines = 0  # lines of an ``auto`` stream that were not JSON objects (for ``not_json``)
        self._time_parser = (
            TimeParser.from_strptime(time_format, tz=tz, default_year=default_year) if time_format else None
        )
        self._auto = auto_parsers(tz=tz, default_year=default_year)
        self._prefix_parsers = [p for p in self._auto if p.name in PREFIX_LAYOUTS]
        self._json = JsonFields(self._time_parser, self._auto)
        self._time_fields = self._choose_time_fields(time_fields)
        # the time fields' values in one C call (``fields[name]`` for each name, the same KeyError when one is absent)
        self._time_values = itemgetter(*self._time_fields) if len(self._time_fields) > 1 else None
        self._detect_left = detect_lines
        self._chosen: tuple[int, TimeParser] | None = None  # (-1 = joined fields | field index, parser)
        self._lead: TimeParser | None = self._time_parser if self.log_format is None else None
        # The common line (one line, valid UTF-8, not JSON, a layout) skips the general path's checks: see
        # ``_decode_layout``. ``_joined_parser`` reads the joined time fields once a parser for them is known.
        self._layout_fast = self.log_format is not None and json_mode != "strict"
        # A LogFormat with named groups: its ``match`` is done inline on that path (the regex and the flag it reads)
        layout_format = self.log_format if type(self.log_format) is LogFormat else None
        self._fullmatch = layout_format.regex.fullmatch if layout_format is not None and layout_format.named else None
        self._optional = layout_format is not None and layout_format.optional
        self._joined_parser: TimeParser | None = self._time_parser if self._time_fields else None
        # Or, once detection chose one time field alone (BGL's epoch ``Timestamp``): its name and parser.
        self._field_parser: tuple[str, TimeParser] | None = None

    @property
    def time_layout(self) -> str | None:
        """The time layout in use: the given ``time_format``, or the one detected so far (None if none yet)."""
        if self._time_parser is not None:
            return self._time_parser.name
        chosen = self._chosen[1] if self._chosen else self._lead
        return chosen.name if chosen else None

    def starts_record(self, text: str) -> bool:
        """Whether ``text`` starts a record of this stream: it fits the layout and its time fields (if the layout
        has any) hold a readable time, or (without a layout) it is a JSON object or starts with a timestamp.
        The multi-line joiner's test (a loose layout fits ``ValueError: bad value: x``, its time does not);
        does not touch ``stats`` or what the decoder learned."""
        if self.log_format is not None:
            hit = self.log_format.match(text)
            if hit is None:
                return False
            names = self._time_fields
            if not names:
                return True
            fields = hit[1]
            joined = " ".join(fields[name] for name in names if fields.get(name))
            try:
                if self._time_parser is not None:
                    self._time_parser.parse(joined)
                    return True
                if self._chosen is not None:
                    index, parser = self._chosen
                    parser.parse(joined if index < 0 else fields.get(names[index], "").strip())
                    return True
            except ValueError:
                return False
            candidates = [joined] + [fields.get(name, "").strip() for name in names]
            return any(c and detect_parser(c, self._auto) is not None for c in candidates)
        if text[:1] == "{" and self.json_mode != "off":
            return True
        body = text[1:] if text.startswith("[") else text
        lead = self._lead
        if lead is not None:
            return _starts_with_time(lead, body)
        return any(_starts_with_time(p, body) for p in self._prefix_parsers)

    def decode(self, raw: RawLine) -> LogRecord:
        data = raw.data
        if raw.lines == 1 and not raw.truncated:
            # the common lines skip the general path's checks: a JSON object, or a line of the layout
            if data[:1] != b"{":  # (the text's first character is "{" exactly when its first byte is)
                if self._layout_fast:
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        pass  # the general path below flags it
                    else:
                        return self._decode_layout(text, raw.origin, raw.offset, raw.arrival)
            elif self.json_mode != "off":
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    pass
                else:
                    record = self._decode_json(text, data, raw.origin, raw.offset, raw.arrival)
                    if record is not None:
                        return record
        flags: list[str] = []
        exact: bytes | None = data  # ``text`` as UTF-8 (the JSON parser reads those bytes)
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            exact = None
            if raw.truncated and exc.reason == "unexpected end of data":
                text = data[: exc.start].decode(errors="replace")  # the size cap cut a character in two
            else:
                text = data.decode(errors="replace")
                flags.append("invalid_utf8")
                self.stats.invalid_utf8 += 1
        if raw.truncated:
            flags.append("truncated")
            self.stats.truncated += 1
        if raw.lines > 1:  # a multi-line record: time, fields and message from its first line, all of it kept
            first, _, _ = text.partition("\n")
            record = self._decode(first, raw.origin, raw.offset, raw.arrival, flags)
            record.raw = text
            return record
        return self._decode(text, raw.origin, raw.offset, raw.arrival, flags, exact)

    def decode_text(self, text: str, origin: str = "", offset: int = 0, arrival: float = 0.0) -> LogRecord:
        """Decode an already decoded string (a Kafka message value, a test line)."""
        return self._decode(text.rstrip("\r\n"), origin, offset, arrival, [])

    def _decode(self, text: str, origin: str, offset: int, arrival: float, flags: list[str],
                data: bytes | None = None) -> LogRecord:
        """``data``: ``text`` encoded as UTF-8, when the caller has it (read by the JSON parser)."""
        stats = self.stats
        stats.lines += 1
        # JSON first: logparser layouts are loose enough ("<A> <B>: <Content>") to match a JSON object's text,
        # while a line that parses as a JSON object is unambiguous.
        error = "not a JSON object"
        if self.json_mode != "off" and text[:1] == "{":
            try:
                obj, clean = loads_record(text, data)
            except ValueError as exc:
                error = TOO_DEEP if str(exc) == TOO_DEEP else f"invalid JSON: {exc}"
            else:
                if isinstance(obj, dict):
                    if not stats.json:  # the stream turns out to be JSON: count the text lines before
                        stats.not_json += self._text_lines
                    stats.json += 1
                    if not clean:
                        obj, replaced = scrub_surrogates(obj, text)
                        if replaced and "invalid_utf8" not in flags:
                            flags.append("invalid_utf8")
                            stats.invalid_utf8 += 1
                    message, timestamp, fields, bad = json_record_parts(obj, text, self._json)
                    if bad:
                        self._flag_bad_time(flags)
                    return LogRecord(message, timestamp, fields, origin, offset, arrival, tuple(flags), text)
        if self.json_mode == "auto":
            # Counting only: in auto mode a line that is not a JSON object is decoded as text below, and in
            # a stream that holds JSON objects it is also counted as ``not_json``.
            self._text_lines += 1
            stats.not_json += bool(stats.json)
        elif self.json_mode == "strict":
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

    def _decode_json(self, text: str, data: bytes, origin: str, offset: int, arrival: float) -> LogRecord | None:
        """:meth:`_decode` of a line that starts with ``{``, valid UTF-8 (``data``), no flags yet, when it is a JSON
        object: the same record and counts. None, having counted nothing, when it is not one (the general path
        then decodes it, with the error it gives)."""
        try:
            obj, clean = loads_record(text, data)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        stats = self.stats
        stats.lines += 1
        if not stats.json:
            stats.not_json += self._text_lines
        stats.json += 1
        flags: list[str] = []
        if not clean:
            obj, replaced = scrub_surrogates(obj, text)
            if replaced:
                flags.append("invalid_utf8")
                stats.invalid_utf8 += 1
        message, timestamp, fields, bad = json_record_parts(obj, text, self._json)
        if bad:
            self._flag_bad_time(flags)
        return LogRecord(message, timestamp, fields, origin, offset, arrival, tuple(flags) if flags else (), text)

    def _decode_layout(self, text: str, origin: str, offset: int, arrival: float) -> LogRecord:
        """:meth:`_decode` of a line with a layout, not JSON-like, no flags yet: the same record and counts.

        The decoder's hottest path (every line of a text stream), so the general path's tests that cannot
        apply are skipped and the time of the joined fields is read inline; anything unusual (a missing time
        field, a bad time, no parser yet) goes through :meth:`_fields_time` as before.
        """
        stats = self.stats
        stats.lines += 1
        if self.json_mode == "auto":
            self._text_lines += 1
            if stats.json:
                stats.not_json += 1
        fullmatch = self._fullmatch
        if fullmatch is not None:  # ``LogFormat.match`` of a layout with named groups, inline
            found = fullmatch(text.strip())
            if found is None:
                stats.unmatched += 1
                return LogRecord(text, None, {}, origin, offset, arrival, ("unmatched",), text)
            fields = found.groupdict()
            if self._optional and None in fields.values():
                fields = {name: value for name, value in fields.items() if value is not None}
            message = fields.pop(MESSAGE_FIELD)
        else:
            hit = self.log_format.match(text)  # type: ignore[union-attr]  # _layout_fast: there is one
            if hit is None:
                stats.unmatched += 1
                return LogRecord(text, None, {}, origin, offset, arrival, ("unmatched",), text)
            message, fields = hit
        stats.matched += 1
        parser = self._joined_parser
        if parser is not None:
            values = self._time_values
            try:
                read = parser.parse(" ".join(values(fields)) if values is not None else fields[self._time_fields[0]])
            except (KeyError, ValueError):
                pass
            else:
                return LogRecord(message, read, fields, origin, offset, arrival, (), text)
        elif (single := self._field_parser) is not None:
            # the one chosen time field: what ``_fields_time`` parses then (its joined text is not used)
            try:
                read = single[1].parse(fields[single[0]].strip())
            except (KeyError, ValueError):
                pass
            else:
                return LogRecord(message, read, fields, origin, offset, arrival, (), text)
        flags: list[str] = []
        timestamp = self._fields_time(fields, flags)
        return LogRecord(message, timestamp, fields, origin, offset, arrival, tuple(flags), text)

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
            values = self._time_values
            joined = " ".join(values(fields)) if values is not None else fields[names[0]]
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
                        if index < 0:
                            self._joined_parser = found
                        else:
                            self._field_parser = (names[index], found)
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
    """:func:`pipeline.stages.layouts.check_layout_matches` for the decoder's layout (0 when it has none)."""
    return 0 if decoder.log_format is None else check_layout_matches(decoder.log_format, sample_lines, source=source)
