"""Event-time parsing: a layout's match turned into UTC epoch seconds, fast, with the assumed-year rule.

Why not ``datetime.strptime`` per line: at ~7 µs a call it alone would eat most of a 100k lines/s decoding
budget. A format is compiled once to a regex with named groups (``Y y m b d H M S f z`` ..., see
:mod:`pipeline.stages.time_layouts`, which also holds the auto-detection layouts), and the parts are combined
with a cached day ordinal, which is several times faster. Directives we do not compile (``%p``, ``%I``, ``%U``
...) fall back to ``strptime`` with the same results.

All results are float seconds since the epoch, UTC. A time without a zone is read in ``tz`` (UTC unless
the caller says otherwise). A time without a year (classic syslog, ``Jun 14 15:16:01``) gets
``default_year`` or, when that is None, the current year, or the previous one when the current year would
put the event more than two days in the future (so December lines read in January land in December).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from operator import itemgetter

from pipeline.stages.time_layouts import (
    AUTO_LAYOUTS,
    PREFIX_LAYOUTS,
    epoch_seconds,
    has_year,
    strptime_pattern,
    zone_offset,
)

__all__ = ["AUTO_LAYOUTS", "PREFIX_LAYOUTS", "TimeParser", "auto_parsers", "detect_parser", "epoch_seconds"]

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FUTURE_SLACK = 2 * 86400.0

_LEAP_YEAR = 2000  # a year with Feb 29, for formats that name no year
_POWERS = tuple(10 ** n for n in range(10))  # a fraction group has at most 9 digits
# Auto layouts whose text before the seconds has one fixed width and whose seconds are followed only by a fraction
# and a zone (see ``TimeParser.parse``): their patterns, as AUTO_LAYOUTS holds them.
_FIXED_HEADS = {name: pattern for name, pattern in AUTO_LAYOUTS
                if name in ("iso8601", "ymd-slash", "yymmdd-slash", "yymmdd-compact")}
_LOCAL = 1 << 40  # no zone offset is this large: the offset slot of a memoised second in a local zone


class TimeParser:
    """Parses one layout to UTC epoch seconds; ``parse`` raises ValueError when the text does not fit."""

    def __init__(
        self,
        pattern: str,
        name: str,
        *,
        tz: tzinfo = UTC,
        default_year: int | None = None,
        strptime_format: str | None = None,
    ) -> None:
        self.name = name
        self.tz = tz
        self.default_year = default_year
        self._strptime = strptime_format
        self._full = re.compile(pattern + r"\Z")
        # A leading timestamp must end at a word boundary: "2015-10-18 18:01:47,978 INFO" but not "...47abc".
        self._prefix = re.compile(pattern + r"(?=[\s\]\[|,;:-]|\Z)")
        # Where each part sits in match.groups(), so parsing a time touches only the parts the layout has.
        self._index = {name: number - 1 for name, number in self._full.groupindex.items()}
        parts = set(self._index)
        self._epoch = "E" in parts
        self._yearless = not parts & {"Y", "y", "E"}
        self._frac = self._index.get("f", -1)
        self._zone = self._index.get("z", -1)
        self._hms = itemgetter(*(self._index[n] for n in "HMS")) if set("HMS") <= parts else None
        date_parts = [self._index[name] for name in ("Y", "y", "m", "b", "B", "d", "j") if name in parts]
        self._date_key: Callable[[tuple[str | None, ...]], object] = (
            itemgetter(*date_parts) if date_parts else (lambda values: None)
        )
        self._ordinals: dict[tuple[object, int], int] = {}
        # The whole second's part of an answer, per text of the parts other than the fraction (see
        # ``_from_groups``); only where the answer depends on the text alone (a year in it, or a default year).
        self._seconds: dict[object, tuple[int, float, int]] | None = (
            {} if strptime_format is None and not self._epoch and (not self._yearless or default_year is not None)
            else None)
        # In UTC the memo is per minute rather than per second (a log's lines share their minute far more often than
        # their second): its key leaves out the second too, which is added back as an int (see ``_from_groups``).
        self._minute_key: Callable[[tuple[str | None, ...]], object] | None = None
        self._second = self._index.get("S", -1)
        if self._seconds is not None and self._hms is not None and tz is UTC:
            kept = [i for i in range(self._full.groups) if i not in (self._second, self._frac)]
            self._minute_key = itemgetter(*kept) if len(kept) > 1 else (lambda values: values[kept[0]])
        # The seconds' tail (see ``parse``): for an auto layout whose text before the seconds has one fixed width and
        # whose seconds end it up to a fraction and zone, the regex of that tail, and from the last full parse (in UTC,
        # no zone) the text before its seconds, where they start and the minute memo's entry of that text.
        self._tail: re.Pattern[str] | None = None
        if self._minute_key is not None and _FIXED_HEADS.get(name) == pattern:
            self._tail = re.compile(pattern[pattern.index("(?P<S>"):] + r"\Z")
        tail_index = self._tail.groupindex if self._tail is not None else {}
        # where the tail's seconds, fraction and zone sit in its match's groups (-1: the layout has none)
        self._tail_groups = tuple(tail_index.get(part, 0) - 1 for part in ("S", "f", "z"))
        self._minute_hit: tuple[int, float, int] = (0, 0.0, 0)
        self._tail_head: str | None = None
        self._tail_cut = 0
        self._tail_hit: tuple[int, float, int] = (0, 0.0, 0)
        self._year = 0
        self._year_until = 0.0
        self._last_text: str | None = None
        self._last_value = 0.0

    @classmethod
    def from_strptime(
        cls, fmt: str, *, tz: tzinfo = UTC, default_year: int | None = None
    ) -> TimeParser:
        """Compile a ``strptime`` format; raises FormatError for an unusable one."""
        pattern = strptime_pattern(fmt)
        if pattern is None:
            return cls(r".+", fmt, tz=tz, default_year=default_year, strptime_format=fmt)
        return cls(pattern, fmt, tz=tz, default_year=default_year)

    def parse(self, text: str) -> float:
        """The instant of ``text``; ValueError when it does not fit the layout.

        The lines of a log mostly share their minute with the line before. Where the layout's text before the
        seconds has one fixed width (:data:`_FIXED_HEADS`: no choice in how it splits, so equal heads read as equal
        parts), a text that starts with the last full parse's head reads only its tail (seconds, fraction, zone)
        with the tail's regex: it fits the whole layout exactly when that tail fits, and with no zone its minute is
        the head's, so the instant is the minute memo's entry of the head plus its seconds, by the same float
        operations as :meth:`_from_minute` (a hypothesis test checks it against the uncached path).
        """
        if text == self._last_text:
            return self._last_value
        if self._strptime is not None:
            value = self._from_strptime(text)
        else:
            head = self._tail_head
            if head is not None and text.startswith(head):
                found = self._tail.match(text, self._tail_cut)  # type: ignore[union-attr]  # set with the head
                if found is not None:
                    parts = found.groups()
                    at_s, at_f, at_z = self._tail_groups
                    second_text, frac = parts[at_s], parts[at_f] if at_f >= 0 else None
                    if at_z < 0 or parts[at_z] is None:
                        minute, base, offset = self._tail_hit
                        second = int(second_text)
                        if second > 59:  # a leap second reads as :59, as ``_from_minute`` reads it
                            second = 59
                        seconds: float = minute + second
                        if frac:
                            seconds += int(frac) / _POWERS[len(frac)]
                        value = base + seconds - offset
                        self._last_text, self._last_value = text, value
                        return value
            match = self._full.match(text)
            if match is None:
                raise ValueError(f"{text!r} does not match {self.name}")
            minute_key = self._minute_key
            if minute_key is not None:  # ``_from_groups``'s first branch, without its call
                values = match.groups()
                value = self._from_minute(values, minute_key, self._seconds)  # type: ignore[arg-type]
                if self._tail is not None:
                    if self._zone < 0 or values[self._zone] is None:  # a zone would make the minute the tail's
                        self._tail_cut = cut = match.start(self._second + 1)
                        self._tail_head, self._tail_hit = text[:cut], self._minute_hit
                    else:
                        self._tail_head = None
            elif self._epoch:  # ``_from_groups`` of an epoch (never memoised): ``_from_groups_afresh``'s first step
                value = epoch_seconds(match.groups()[self._index["E"]] or "")
            else:
                value = self._from_groups(match.groups())
        self._last_text, self._last_value = text, value
        return value

    def parse_prefix(self, text: str) -> tuple[float, int] | None:
        """``(epoch, end)`` for a timestamp at the start of ``text``; None when it does not start with one.

        Raises ValueError when the text starts like a timestamp but is not a valid time (month 13).
        """
        if self._strptime is not None:  # strptime cannot say where a time ends inside a longer text
            return None
        match = self._prefix.match(text)
        if match is None:
            return None
        return self._from_groups(match.groups()), match.end()

    def _from_strptime(self, text: str) -> float:
        fmt = self._strptime or ""
        if has_year(fmt):
            parsed = datetime.strptime(text, fmt)
        else:  # strptime's own default year, 1900, has no Feb 29: parse in a leap year, then assume the real one
            return self._with_assumed_year(datetime.strptime(f"{text} {_LEAP_YEAR}", f"{fmt} %Y"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.tz)
        return parsed.timestamp()

    def _with_assumed_year(self, parsed: datetime) -> float:
        year = self.default_year or time.gmtime().tm_year
        tz = parsed.tzinfo or self.tz  # an offset in the text wins over --time-zone
        value = parsed.replace(year=year, tzinfo=tz).timestamp()
        if self.default_year is None and value > time.time() + _FUTURE_SLACK:
            value = parsed.replace(year=year - 1, tzinfo=tz).timestamp()
        return value

    def _part(self, values: tuple[str | None, ...], name: str) -> str | None:
        index = self._index.get(name)
        return None if index is None else values[index]

    def _from_groups(self, values: tuple[str | None, ...]) -> float:
        """The instant of a match's parts: :meth:`_from_groups_afresh`, with the whole second memoised.

        Lines of a log share their second far more often than their text (``17:41:44,747``, ``17:41:44,748``), and
        reading the parts of a second (ints, day ordinal, zone) costs most of a parse. The memo keeps, per text of the
        parts other than the fraction, the whole seconds of the day, the epoch seconds of its day (or, in a local
        zone, of the whole second) and the zone offset; the fraction is added with the same float operations in the
        same order as the uncached path, so the answer is the same float (a hypothesis test checks it).
        """
        memo = self._seconds
        if memo is None:
            return self._from_groups_afresh(values)
        minute_key = self._minute_key
        if minute_key is not None:
            return self._from_minute(values, minute_key, memo)
        index = self._frac
        frac = values[index] if index >= 0 else None
        key = values[:index] + values[index + 1:] if index >= 0 else values
        hit = memo.get(key)
        if hit is None:
            hit = self._whole_second(values)
            if len(memo) >= 4096:
                memo.clear()
            memo[key] = hit
        whole, base, offset = hit
        seconds: float = whole
        if frac:
            seconds += int(frac) / 10 ** len(frac)
        if offset == _LOCAL:
            return base + (seconds - int(seconds))
        return base + seconds - offset

    def _from_minute(self, values: tuple[str | None, ...], minute_key: Callable[[tuple[str | None, ...]], object],
                     memo: dict[object, tuple[int, float, int]]) -> float:
        """:meth:`_from_groups` in UTC, memoised per minute: the memo keeps the whole seconds of the day up to the
        minute (the hit's first part minus its second), and the second is added back as the same int the day's
        seconds hold (a leap second read as :59); then the same float operations as the uncached path."""
        second = int(values[self._second])  # type: ignore[arg-type]  # a group of the layout, as ``_day_seconds`` reads it
        if second > 59:  # ``min(second, 59)``
            second = 59
        key = minute_key(values)
        hit = memo.get(key)
        if hit is None:
            whole, base, offset = self._whole_second(values)
            hit = (whole - second, base, offset)
            if len(memo) >= 4096:
                memo.clear()
            memo[key] = hit
        self._minute_hit = hit
        minute, base, offset = hit
        seconds: float = minute + second
        index = self._frac
        frac = values[index] if index >= 0 else None
        if frac:
            seconds += int(frac) / _POWERS[len(frac)]  # ``10 ** len(frac)``: the same int from a table
        return base + seconds - offset

    def _whole_second(self, values: tuple[str | None, ...]) -> tuple[int, float, int]:
        """``(whole seconds of the day, base, offset)`` for :meth:`_from_groups`: the instant is ``base + seconds -
        offset`` (``base``: the day's epoch seconds), or in a local zone (offset ``_LOCAL``) ``base + fraction``."""
        whole = self._day_seconds(values)
        year = 0 if not self._yearless else self.default_year or 0
        ordinal = self._ordinal(self._date_key(values), values, year)
        zone = values[self._zone] if self._zone >= 0 else None
        if zone is not None:
            return whole, (ordinal - _EPOCH_ORDINAL) * 86400.0, zone_offset(zone)
        if self.tz is UTC:
            return whole, (ordinal - _EPOCH_ORDINAL) * 86400.0, 0
        local = datetime.fromordinal(ordinal).replace(
            hour=whole // 3600, minute=whole // 60 % 60, second=whole % 60, tzinfo=self.tz
        )
        return whole, local.timestamp(), _LOCAL

    def _day_seconds(self, values: tuple[str | None, ...]) -> int:
        if self._hms is not None:
            hour, minute, second = self._hms(values)
            return int(hour) * 3600 + int(minute) * 60 + min(int(second), 59)  # leap second -> :59
        part = self._part
        seconds = int(part(values, "H") or 0) * 3600 + int(part(values, "M") or 0) * 60
        return seconds + min(int(part(values, "S") or 0), 59)

    def _from_groups_afresh(self, values: tuple[str | None, ...]) -> float:
        """:meth:`_from_groups` without the memo: what it must agree with (tests)."""
        if self._epoch:
            return epoch_seconds(values[self._index["E"]] or "")
        if self._hms is not None:
            hour, minute, second = self._hms(values)
            seconds: float = int(hour) * 3600 + int(minute) * 60 + min(int(second), 59)  # leap second -> :59
        else:
            part = self._part
            seconds = int(part(values, "H") or 0) * 3600 + int(part(values, "M") or 0) * 60
            seconds += min(int(part(values, "S") or 0), 59)
        frac = values[self._frac] if self._frac >= 0 else None
        if frac:
            seconds += int(frac) / 10 ** len(frac)
        key = self._date_key(values)
        if not self._yearless:
            ordinal = self._ordinals.get((key, 0))
            if ordinal is None:
                ordinal = self._ordinal(key, values, 0)
            return self._instant(ordinal, seconds, values)
        if self.default_year is not None:
            return self._instant(self._ordinal(key, values, self.default_year), seconds, values)
        now = time.time()
        year = self._current_year(now)
        value = self._instant(self._ordinal(key, values, year), seconds, values)
        if value > now + _FUTURE_SLACK:
            value = self._instant(self._ordinal(key, values, year - 1), seconds, values)
        return value

    def _current_year(self, now: float) -> int:
        """The UTC year of ``now``, recomputed at most once a minute (gmtime costs more than the rest)."""
        if now >= self._year_until:
            self._year = time.gmtime(now).tm_year
            self._year_until = now + 60.0 - now % 60.0  # minute boundaries, so New Year's Eve is never stale
        return self._year

    def _ordinal(self, key: object, values: tuple[str | None, ...], year: int) -> int:
        """Day ordinal of the date parts (``year`` 0: take it from them); cached by their text."""
        ordinal = self._ordinals.get((key, year))
        if ordinal is not None:
            return ordinal
        cache_year = year
        part = self._part
        if not year:
            long_year, short_year = part(values, "Y"), part(values, "y")
            if long_year:
                year = int(long_year)
            else:
                short = int(short_year or 0)
                year = short + (1900 if short >= 69 else 2000)  # the POSIX rule strptime uses
        month_name = part(values, "b") or part(values, "B")
        month = _MONTHS.get(month_name[:3].lower(), 0) if month_name else int(part(values, "m") or 1)
        if not month:
            raise ValueError(f"unknown month name {month_name!r}")
        yday = part(values, "j")
        # date() validates the day of the month (no 31 June, no 29 February 2023).
        start = date(year, 1, 1) if yday else date(year, month, int(part(values, "d") or 1))
        ordinal = start.toordinal() + (int(yday) - 1 if yday else 0)
        if len(self._ordinals) > 4096:
            self._ordinals.clear()
        self._ordinals[(key, cache_year)] = ordinal
        return ordinal

    def _instant(self, ordinal: int, seconds: float, values: tuple[str | None, ...]) -> float:
        zone = values[self._zone] if self._zone >= 0 else None
        if zone is not None:
            return (ordinal - _EPOCH_ORDINAL) * 86400.0 + seconds - zone_offset(zone)
        if self.tz is UTC:
            return (ordinal - _EPOCH_ORDINAL) * 86400.0 + seconds
        whole = int(seconds)
        local = datetime.fromordinal(ordinal).replace(
            hour=whole // 3600, minute=whole // 60 % 60, second=whole % 60, tzinfo=self.tz
        )
        return local.timestamp() + (seconds - whole)


def auto_parsers(
    *, tz: tzinfo = UTC, default_year: int | None = None, names: tuple[str, ...] | None = None
) -> list[TimeParser]:
    """Fresh parsers for the auto-detection layouts (all of them, or those in ``names``, in order)."""
    return [
        TimeParser(pattern, name, tz=tz, default_year=default_year)
        for name, pattern in AUTO_LAYOUTS
        if names is None or name in names
    ]


def detect_parser(text: str, parsers: list[TimeParser]) -> TimeParser | None:
    """The first parser that reads ``text`` whole, or None."""
    for parser in parsers:
        try:
            parser.parse(text)
        except (ValueError, KeyError, OverflowError):
            continue
        return parser
    return None
