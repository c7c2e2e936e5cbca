"""The text shapes of event times: strptime directives as regexes, the auto-detection layouts, epoch scales, zones.

Kept apart from :mod:`pipeline.stages.timestamps` (which turns a match into an instant, with its memos and the
assumed-year rule) because this is the part one edits to teach the pipeline a new way of writing a time, and
it holds no state: a layout here is only a regex over the named groups ``Y y m b B d j H M S f z E``.
"""

from __future__ import annotations

import re
from datetime import datetime

from pipeline.errors import FormatError

_DIRECTIVES = {
    "Y": r"(?P<Y>\d{4})",
    "y": r"(?P<y>\d{2})",
    "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])",
    "d": r"(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])",
    "j": r"(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
    "H": r"(?P<H>2[0-3]|[01]\d|\d)",
    "M": r"(?P<M>[0-5]\d|\d)",
    "S": r"(?P<S>6[01]|[0-5]\d|\d)",
    "f": r"(?P<f>\d{1,9})",
    "b": r"(?P<b>[A-Za-z]{3})",
    "B": r"(?P<B>[A-Za-z]{3,9})",
    "h": r"(?P<b>[A-Za-z]{3})",
    "a": r"(?:[A-Za-z]{3})",
    "A": r"(?:[A-Za-z]{6,9})",
    "z": r"(?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?)",
    "s": r"(?P<E>\d+(?:\.\d+)?)",
    "T": r"(?P<H>2[0-3]|[01]\d|\d):(?P<M>[0-5]\d):(?P<S>6[01]|[0-5]\d)",
    "%": "%",
}

# Layouts tried by auto-detection, most specific first. Each is a regex over the directive groups above.
_HMS = r"(?P<H>[01]\d|2[0-3]):(?P<M>[0-5]\d):(?P<S>[0-5]\d|60)(?:[.,](?P<f>\d{1,9}))?"
AUTO_LAYOUTS: tuple[tuple[str, str], ...] = (
    # ISO 8601 / RFC 3339, also Python logging and log4j's ISO8601 ("2015-10-18 18:01:47,978").
    ("iso8601", r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})[T ]" + _HMS + r"(?: ?(?P<z>[Zz]|[+-]\d{2}(?::?\d{2})?))?"),
    # Go's log package and nginx error logs: "2009/11/10 23:00:00".
    ("ymd-slash", r"(?P<Y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})[ T]" + _HMS),
    # Common/combined log format (Apache and nginx access logs): "10/Oct/2000:13:55:36 -0700".
    ("clf", r"(?P<d>\d{2})/(?P<b>[A-Z][a-z]{2})/(?P<Y>\d{4}):" + _HMS + r"(?: (?P<z>[+-]\d{4}))?"),
    # ctime, as in Apache's error log: "Sun Dec 04 04:47:44 2005" (2.4 adds microseconds).
    ("ctime", r"(?:[A-Z][a-z]{2}) (?P<b>[A-Z][a-z]{2}) +(?P<d>\d{1,2}) " + _HMS + r" (?P<Y>\d{4})"),
    # BSD syslog (RFC 3164): "Jun 14 15:16:01", "Jun  4 15:16:01"; no year.
    ("syslog", r"(?P<b>[A-Z][a-z]{2}) +(?P<d>\d{1,2}) " + _HMS),
    # log4j "yy/MM/dd HH:mm:ss" (Spark's default layout): "17/06/09 20:10:40".
    ("yymmdd-slash", r"(?P<y>\d{2})/(?P<m>\d{2})/(?P<d>\d{2}) " + _HMS),
    # Compact "yyMMdd HHmmss" (Hadoop HDFS): "081109 203615".
    ("yymmdd-compact", r"(?P<y>\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d) (?P<H>[01]\d|2[0-3])(?P<M>[0-5]\d)(?P<S>[0-5]\d)"),
    # Epoch seconds (9-11 digits), millis, micros or nanos; not used for leading timestamps (see below).
    ("epoch", r"(?P<E>\d{9,19}(?:\.\d{1,9})?)"),
)
# Layouts unlikely to be a message's first word; epoch is not among them (a line may start with any number).
PREFIX_LAYOUTS = tuple(name for name, _ in AUTO_LAYOUTS if name != "epoch")


def has_year(fmt: str) -> bool:
    """Whether a strptime format names the year (else one is assumed, see ``timestamps``)."""
    return "%Y" in fmt or "%y" in fmt


def strptime_pattern(fmt: str) -> str | None:
    """The regex for a ``strptime`` format, or None when only ``strptime`` itself can read it (``%p``, ``%I``,
    a directive used twice ...); raises FormatError for a format strptime would refuse too."""
    if "%" not in fmt:
        raise FormatError(f"--time-format {fmt!r} has no %-directives (example: '%Y-%m-%d %H:%M:%S')")
    parts: list[str] = []
    fallback = False
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            directive = fmt[i + 1 : i + 2]
            if directive not in _DIRECTIVES:
                fallback = True
                break
            parts.append(_DIRECTIVES[directive])
            i += 2
        elif char.isspace():
            parts.append(r"\s+")
            while i < len(fmt) and fmt[i].isspace():
                i += 1
        else:
            parts.append(re.escape(char))
            i += 1
    pattern = "".join(parts)
    if not fallback:
        try:
            re.compile(pattern)
        except re.error:  # a directive used twice: let strptime decide what it means
            fallback = True
    if not fallback:
        return pattern
    try:
        datetime.strptime("", fmt if has_year(fmt) else f"{fmt} %Y")
    except ValueError as exc:
        if "directive" in str(exc) or "stray %" in str(exc):
            raise FormatError(f"--time-format {fmt!r} is invalid: {exc}") from None
    return None


def epoch_seconds(value: float | int | str) -> float:
    """Epoch seconds from a number in seconds, millis, micros or nanos (chosen by magnitude)."""
    number = float(value)
    magnitude = abs(number)
    if magnitude >= 1e17:
        return number / 1e9
    if magnitude >= 1e14:
        return number / 1e6
    if magnitude >= 1e11:
        return number / 1e3
    return number


def zone_offset(text: str) -> int:
    """Seconds east of UTC of a ``%z`` match (``Z``, ``+05``, ``+0530``, ``-07:00``)."""
    if text in ("Z", "z"):
        return 0
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    return sign * (int(digits[:2]) * 3600 + minutes * 60)
