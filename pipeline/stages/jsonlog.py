"""JSON log lines: which keys give the message, the event time and the ECS fields.

Keys are flattened to dotted names, so ``{"host": {"name": "a"}}`` and ``{"host.name": "a"}`` both give
``fields["host.name"] == "a"`` (when both spellings occur, the later one in the line wins).

* Message: ``message`` (ECS), else ``msg`` (zap, pino, bunyan, logrus), ``log`` (Docker's json-file
  driver, Fluent Bit), ``event.original``; a non-string value is re-serialised as JSON. A line with none of
  them keeps the whole line as its message, so template mining still sees something stable.
* Event time: ``@timestamp`` (ECS), else ``timestamp``, ``time``, ``ts``. Numbers (and digit strings) are
  epoch seconds, millis, micros or nanos by magnitude; strings go through ``--time-format`` when one is
  given, else ISO 8601 and the other auto-detected layouts. A present but unreadable time gives
  ``timestamp=None`` and the flag ``bad_timestamp``; an absent one just None.
* ECS aliases, added only when the ECS name is absent: ``level``/``severity``/``levelname`` ->
  ``log.level``; a string ``host``/``hostname`` -> ``host.name``; a string ``service`` -> ``service.name``.

The message and time keys are removed from ``fields``; everything else stays, values as JSON gave them.

**Nesting** is bounded: an object nested deeper than :data:`MAX_JSON_DEPTH` levels is not read as JSON
(:func:`nested_too_deep`; the decoder treats it as any other line that is not a JSON object). Log objects are a
few levels deep (ECS: 3-4); a line thousands deep is hostile, and Python's parser, the flattening here and every
JSON encoder after it recurse once per level, so without the bound it ends in a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from json.scanner import make_scanner
from typing import Any

import orjson

from pipeline.stages.timestamps import TimeParser, detect_parser, epoch_seconds

MESSAGE_KEYS = ("message", "msg", "log", "event.original")
TIME_KEYS = ("@timestamp", "timestamp", "time", "ts")
ALIASES = (
    ("log.level", ("level", "severity", "levelname")),
    ("host.name", ("host", "hostname")),
    ("service.name", ("service",)),
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?\Z")
_NUMBERS = (int, float)  # a tuple: ``isinstance`` with ``int | float`` builds the union on every call
_ALIAS_TYPES = (str, int)
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
# typeshed types make_scanner's context as the scanner class itself; it is the decoder (as in JSONDecoder.__init__)
_SCAN = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the scanner json.loads ends in


def loads_bounded(text: str) -> Any:
    """``json.loads(text)``; ValueError(:data:`TOO_DEEP`) when it nests deeper than :data:`MAX_JSON_DEPTH`.

    Lines with fewer brackets than the limit (nearly all) are parsed without any extra walk.
    """
    return loads_record(text)[0]


def loads_record(text: str, data: bytes | None = None) -> tuple[Any, bool]:
    """:func:`loads_bounded` of a record's text, and whether the value surely holds no lone surrogate (then
    :func:`scrub_surrogates` has nothing to do). ``data``: ``text`` as UTF-8, when the caller has those bytes.

    Most records go through orjson, about twice as fast as ``json.loads``, when its answer is surely the one
    ``json.loads`` gives (see :data:`_WIDE_AFTER_COLON`); anything it refuses (``NaN``, ``Infinity``, a lone surrogate
    escape, a number beyond a double, invalid JSON) goes to ``json.loads`` as before, so values, errors and their
    messages are exactly ``json.loads``' own.
    """
    if data is None:
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a str holding a lone surrogate itself (not an escape): json.loads reads it
            return _loads_json(text), False
    marks = data.translate(_MARKS, _MARKS_DROP)
    if marks.count(b"{") > MAX_JSON_DEPTH:  # the brackets, "{" and "[" alike, as text.count would give them
        return _loads_json(text), False
    # an object or an array (its numbers follow a mark), without a number that may be too wide for orjson
    if marks[:1] == b"{" and _WIDE_AFTER_COLON not in marks and _WIDE_AFTER_BRACKET not in marks:
        try:
            return _orjson_loads(data), True
        except orjson.JSONDecodeError:
            pass
    return _loads(text), False


def _loads_json(text: str) -> Any:
    """:func:`loads_bounded` without orjson (the path it had before)."""
    if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
        return _loads(text)
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if nested_too_deep(obj):
        raise ValueError(TOO_DEEP)
    return obj


def _marks_table() -> bytes:
    """What :func:`loads_record` looks for in a line, in one ``bytes.translate``: each digit becomes ``0``, each
    bracket (``{`` or ``[``) ``{``, each ``:`` or ``,`` ``:``, any other byte ``x``; whitespace and ``-`` are dropped
    (:data:`_MARKS_DROP`), so a JSON number's digits follow the ``:``, ``,`` or ``[`` before it directly."""
    table = bytearray(b"x" * 256)
    for byte in b"0123456789":
        table[byte] = ord("0")
    for byte in b"{[":
        table[byte] = ord("{")
    for byte in b":,":
        table[byte] = ord(":")
    return bytes(table)


_MARKS = _marks_table()
_MARKS_DROP = b" \t\n\r-"
# orjson reads an integer outside the 64-bit range (below -2**63, above 2**64 - 1) as a float, where json.loads
# gives the exact int; such an integer has at least 19 digits. Any run of 19 digits right after a ":", "," or "["
# (whitespace and a minus sign aside) sends the line to json.loads: a number that may be one, and, harmlessly, the
# odd string that looks the same. Every other JSON number orjson reads as json.loads does (tests).
_WIDE_AFTER_COLON = b":" + b"0" * 19
_WIDE_AFTER_BRACKET = b"{" + b"0" * 19
_orjson_loads = orjson.loads


def _loads(text: str) -> Any:
    """``json.loads(text)``, through the C scanner it ends in when ``text`` is one value from its first character
    to its last (a record's JSON object): about a seventh of the cost is ``loads``' own Python around the scanner.
    Anything else (leading or trailing whitespace, a BOM, extra data, invalid JSON) goes to ``json.loads``
    itself, so results and errors, with their messages, are exactly its own."""
    try:
        obj, end = _SCAN(text, 0)
    except Exception:  # noqa: BLE001 - json.loads raises (or answers) for itself
        return json.loads(text)
    return obj if end == len(text) else json.loads(text)


def nested_too_deep(obj: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``obj`` holds objects or arrays more than ``limit`` levels deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)] if isinstance(obj, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def flatten(obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested objects become dotted keys; lists and scalars are kept as values.

    Once per JSON record in the worker, so written for speed (a tenth of the decoding time on ECS records): a
    top-level ``str`` key is used as it is (``f"{key}"`` of a ``str`` is the same text), the second level is
    walked inline, deeper ones get their prefix by concatenation; the order and the later-spelling-wins rule
    are those of the plain recursion.
    """
    out = {} if out is None else out
    if prefix:
        for key, value in obj.items():
            if isinstance(value, dict) and value:
                flatten(value, f"{prefix}{key}.", out)
            else:
                out[f"{prefix}{key}"] = value
        return out
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            # the second level inline (ECS objects are mostly ``{"host": {"name": ...}}``): one call fewer each
            name = key if key.__class__ is str else f"{key}"
            for inner, item in value.items():
                if isinstance(item, dict) and item:
                    flatten(item, f"{name}.{inner}.", out)
                else:
                    out[f"{name}.{inner}"] = item
        else:
            out[key if key.__class__ is str else f"{key}"] = value
    return out


def flatten_decoded(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`flatten` of a value ``json.loads`` or orjson made: its objects are ``dict`` itself and its keys ``str``
    (so the type tests are class identities, the keys used as they are). Three levels inline (ECS's deepest common
    name, ``log.file.path``), deeper ones through :func:`flatten`; the same items in the same order."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value.__class__ is _DICT and value:
            for inner, item in value.items():
                if item.__class__ is _DICT and item:
                    head = f"{key}.{inner}"
                    for deep, leaf in item.items():
                        if leaf.__class__ is _DICT and leaf:
                            flatten(leaf, f"{head}.{deep}.", out)
                        else:
                            out[f"{head}.{deep}"] = leaf
                else:
                    out[f"{key}.{inner}"] = item
        else:
            out[key] = value
    return out


_DICT = dict


class JsonFields:
    """Time parsing state for JSON lines: the user's layout first, then the last auto layout that worked."""

    def __init__(self, explicit: TimeParser | None, auto: list[TimeParser]) -> None:
        self.explicit = explicit
        self.auto = auto
        self.tz = auto[0].tz if auto else UTC
        self._last: TimeParser | None = None
        # The text of the previous call when it succeeded, and its value: consecutive records of a stream share
        # their time text most of the time (94% of HDFS records per partition). Any other call clears it, so a
        # hit answers exactly what the full path would (the parsers it would try have not changed since).
        self._memo: tuple[str, float] | None = None

    def time(self, value: Any) -> float:
        """Epoch seconds from a JSON time value; raises ValueError when it is not a time."""
        memo = self._memo
        if memo is not None and value.__class__ is str and value == memo[0]:
            return memo[1]
        self._memo = None
        seconds = self._time(value)
        if value.__class__ is str:
            self._memo = (value, seconds)
        return seconds

    def _time(self, value: Any) -> float:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"not a time: {value!r}")
        if isinstance(value, _NUMBERS):
            return epoch_seconds(value)
        if not isinstance(value, str):
            raise ValueError(f"not a time: {value!r}")
        text = value.strip()
        if _NUMBER.match(text):
            return epoch_seconds(text)
        for parser in (self.explicit, self._last):
            if parser is not None:
                try:
                    return parser.parse(text)
                except ValueError:
                    pass
        parser = detect_parser(text, self.auto)
        if parser is not None:
            self._last = parser
            return parser.parse(text)
        parsed = datetime.fromisoformat(text)  # other ISO 8601 forms ("2024-01-02", "2024-01-02T03:04Z")
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)).timestamp()


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def scrub_surrogates(obj: Any, line: str) -> tuple[Any, bool]:
    """``obj`` with every lone surrogate replaced by U+FFFD, and whether there was one.

    JSON may escape UTF-16 halves (``"\\ud800"``); a half without its partner decodes to a ``str`` that no
    encoder accepts, so template ids (hashes of UTF-8) and every sink would fail on it. Such text is replaced
    and the record flagged ``invalid_utf8``, like undecodable bytes. Only lines holding such an escape are
    walked (a cheap check on the raw text first).
    """
    if "\\u" not in line or _SURROGATE_ESCAPE.search(line) is None:  # the substring test is the cheap one
        return obj, False
    replaced = False

    def clean(value: Any) -> Any:
        nonlocal replaced
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                replaced = True
                return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return value
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(obj), replaced


def json_record_parts(
    obj: dict[str, Any], line: str, state: JsonFields
) -> tuple[str, float | None, dict[str, Any], bool]:
    """``(message, timestamp, fields, bad_timestamp)`` for one decoded JSON object (as ``json.loads`` makes them:
    see :func:`flatten_decoded`).

    Once per JSON record: the first message and time keys (ECS's) and the aliases are tried before the loops over
    the others (the loops give the same answers, tests).
    """
    fields = flatten_decoded(obj)
    value = fields.get("message")
    if value is None:
        message = line
        for key in MESSAGE_KEYS:
            value = fields.get(key)
            if value is not None:
                del fields[key]
                message = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                break
    else:
        del fields["message"]
        message = value if value.__class__ is str else json.dumps(value, ensure_ascii=False)
    timestamp = None
    bad = False
    time_key = "@timestamp" if "@timestamp" in fields else _first_time_key(fields)
    if time_key is not None:
        value = fields.pop(time_key)
        try:
            timestamp = state.time(value)
        except (ValueError, OverflowError):
            bad = True
    if "log.level" not in fields:
        _alias(fields, "log.level", ("level", "severity", "levelname"))
    if "host.name" not in fields:
        _alias(fields, "host.name", ("host", "hostname"))
    if "service.name" not in fields:
        _alias(fields, "service.name", ("service",))
    return message, timestamp, fields, bad


def _first_time_key(fields: dict[str, Any]) -> str | None:
    for key in TIME_KEYS:
        if key in fields:
            return key
    return None


def _alias(fields: dict[str, Any], ecs: str, aliases: tuple[str, ...]) -> None:
    for alias in aliases:
        value = fields.get(alias)
        if isinstance(value, _ALIAS_TYPES) and not isinstance(value, bool):
            fields[ecs] = value
            return
