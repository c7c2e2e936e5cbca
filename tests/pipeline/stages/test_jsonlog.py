"""JSON log lines: flattening, message and time keys, ECS aliases."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.stages.jsonlog import (
    MAX_JSON_DEPTH,
    TOO_DEEP,
    JsonFields,
    _loads_json,
    flatten,
    flatten_decoded,
    json_record_parts,
    loads_bounded,
    loads_record,
    scrub_surrogates,
)
from pipeline.stages.timestamps import TimeParser, auto_parsers
from tests.fakes import utc


def state(explicit: str | None = None) -> JsonFields:
    return JsonFields(TimeParser.from_strptime(explicit) if explicit else None, auto_parsers())


def test_flatten_nested_dotted_lists_and_empties() -> None:
    obj = {"a": {"b": {"c": 1}, "d": [1, {"x": 2}]}, "a.e": "dotted", "empty": {}, "n": None}
    assert flatten(obj) == {"a.b.c": 1, "a.d": [1, {"x": 2}], "a.e": "dotted", "empty": {}, "n": None}


def test_flatten_later_spelling_wins() -> None:
    assert flatten({"host": {"name": "a"}, "host.name": "b"}) == {"host.name": "b"}


@pytest.mark.parametrize(("value", "expected"), [
    (1704164645, utc(2024, 1, 2, 3, 4, 5)),
    (1704164645.25, utc(2024, 1, 2, 3, 4, 5) + 0.25),
    (1704164645250, utc(2024, 1, 2, 3, 4, 5) + 0.25),
    ("1704164645250", utc(2024, 1, 2, 3, 4, 5) + 0.25),
    ("2024-01-02T03:04:05.25Z", utc(2024, 1, 2, 3, 4, 5) + 0.25),
    ("2024-01-02T05:04:05+02:00", utc(2024, 1, 2, 3, 4, 5)),
    ("2024-01-02", utc(2024, 1, 2)),
    ("2024-01-02T03:04Z", utc(2024, 1, 2, 3, 4)),
])
def test_time_values(value: Any, expected: float) -> None:
    assert state().time(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", [True, None, "soon", {"a": 1}, [1], ""])
def test_non_times_rejected(value: Any) -> None:
    with pytest.raises(ValueError):
        state().time(value)


def test_explicit_format_first_then_auto() -> None:
    fields = state("%d.%m.%Y %H:%M")
    assert fields.time("02.01.2024 03:04") == utc(2024, 1, 2, 3, 4)
    assert fields.time("2024-01-02T03:04:05Z") == utc(2024, 1, 2, 3, 4, 5)


def test_record_parts_remove_message_and_time_keys() -> None:
    obj = {"@timestamp": "2024-01-02T03:04:05Z", "message": "m", "time": "other", "levelname": "INFO",
           "service": "api"}
    message, timestamp, fields, bad = json_record_parts(obj, "{...}", state())
    assert (message, timestamp, bad) == ("m", utc(2024, 1, 2, 3, 4, 5), False)
    # only the first time key is the event time; later ones stay fields
    assert fields == {"time": "other", "levelname": "INFO", "service": "api", "log.level": "INFO",
                      "service.name": "api"}


def test_record_parts_whole_line_when_no_message() -> None:
    message, timestamp, fields, bad = json_record_parts({"a": 1, "message": None}, '{"a": 1}', state())
    assert message == '{"a": 1}' and timestamp is None and not bad and fields == {"a": 1, "message": None}


def test_record_parts_bad_time() -> None:
    _, timestamp, fields, bad = json_record_parts({"ts": "never", "msg": "x"}, "", state())
    assert timestamp is None and bad and "ts" not in fields


# ------------------------------------------------------------------------- the fast paths are exact
def reference_flatten(obj: dict[Any, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plain recursion ``flatten`` replaced (kept here as its specification)."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            reference_flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_keys = st.sampled_from(["a", "b", "a.b", "host", "name", "host.name", "", "."]) | st.text(max_size=3)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
                     max_leaves=12)


@given(st.dictionaries(_keys, _json, max_size=6))
@example({"@timestamp": "2008-11-09T20:35:18.000Z", "message": "m", "log": {"level": "INFO", "offset": 1, "file": {
    "path": "/x"}}, "host": {"name": "dn-07"}, "log.level": "WARN", "ecs": {}, "agent": {"a": {"b": {"c": [1]}}}})
def test_flatten_equals_the_plain_recursion_with_its_order(obj: dict[str, Any]) -> None:
    assert list(flatten(obj).items()) == list(reference_flatten(obj).items())


def test_flatten_non_string_keys_and_a_prefix() -> None:
    obj: dict[Any, Any] = {1: {"x": 2}, 2: 3, "s": {4: {}}}
    assert list(flatten(obj).items()) == list(reference_flatten(obj).items()) == [("1.x", 2), ("2", 3), ("s.4", {})]
    assert flatten({"a": {"b": 1}}, "p.") == {"p.a.b": 1}


_times = st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.25Z", "02.01.2024 03:04", "1704164645",
                          " 1704164645 ", "soon", "", "2024-01-02", "13.13.2024 03:04"])


@given(st.lists(_times | st.integers(0, 2_000_000_000) | st.none() | st.booleans(), max_size=12),
       st.booleans())
def test_time_memo_answers_what_a_fresh_parse_does(values: list[Any], explicit: bool) -> None:
    """The same sequence through one JsonFields (memo and parser choice carried along) and, value by value,
    through the unmemoised path of a twin that saw the same values before: same numbers, same errors."""
    memo, plain = (state("%d.%m.%Y %H:%M" if explicit else None) for _ in range(2))
    for value in values:
        try:
            expected: Any = plain._time(value)
        except (ValueError, OverflowError) as exc:
            expected = type(exc)
        try:
            got: Any = memo.time(value)
        except (ValueError, OverflowError) as exc:
            got = type(exc)
        assert got == expected, value


def test_time_memo_is_cleared_by_a_failure_and_by_another_value() -> None:
    fields = state()
    assert fields.time("2024-01-02T03:04:05Z") == utc(2024, 1, 2, 3, 4, 5)
    assert fields._memo == ("2024-01-02T03:04:05Z", utc(2024, 1, 2, 3, 4, 5))
    with pytest.raises(ValueError):
        fields.time("soon")
    assert fields._memo is None
    assert fields.time(1704164645) == utc(2024, 1, 2, 3, 4, 5)
    assert fields._memo is None  # only text is remembered
    assert fields.time("2024-01-02T03:04:05Z") == utc(2024, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("line", ['{"m": "a\\\\ud800"}', '{"m": "\\\\u0041"}', '{"m": "plain"}'])
def test_surrogate_scrub_prefilter_changes_nothing(line: str) -> None:
    obj = json.loads(line)
    assert scrub_surrogates(obj, line) == (obj, False)


def test_lone_surrogate_still_replaced() -> None:
    line = '{"m": "a\\ud800b"}'
    assert scrub_surrogates(json.loads(line), line) == ({"m": "a\ufffdb"}, True)


def _outcome(load: Any, text: str) -> Any:
    try:
        return ("value", load(text))
    except Exception as exc:  # noqa: BLE001 - the error, its type and message, is the outcome compared
        return ("error", type(exc), str(exc))


_json_texts = st.one_of(
    _json.map(json.dumps),
    st.dictionaries(_keys, _json, max_size=4).map(json.dumps),
    st.text(alphabet='{}[]":,0123456789.eE+-tfnrulsa \\\t\n\ufeffu', max_size=30),
)


@given(st.sampled_from(["", "{", " ", "\ufeff"]), _json_texts, st.sampled_from(["", " ", "\n", "x", "}", " {}"]))
def test_loads_fast_path_equals_json_loads(head: str, body: str, tail: str) -> None:
    text = head + body + tail
    assert _outcome(loads_bounded, text) == _outcome(json.loads, text)


# ------------------------------------------------------------------------- orjson answers what json.loads does
def _strict(load: Any, text: str) -> Any:
    """The outcome with the value's repr: key order, int vs float, -0.0 and every float's digits count."""
    outcome = _outcome(load, text)
    return (outcome[0], repr(outcome[1])) if outcome[0] == "value" else outcome


def _json_only(text: str) -> Any:
    return _loads_json(text)


def _record_text(text: str) -> Any:
    return loads_record(text)[0]


def _record_bytes(text: str) -> Any:
    return loads_record(text, text.encode("utf-8", "surrogatepass"))[0]


def _digits(draw_digits: str, minus: bool) -> str:
    return ("-" if minus else "") + (draw_digits.lstrip("0") or "0")


_number_literals = st.one_of(
    st.builds(_digits, st.text("0123456789", min_size=1, max_size=26), st.booleans()),
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.integers(-2**80, 2**80).map(str),
    st.sampled_from([str(n) for base in (2**63, 2**64, 10**18, 10**19) for n in (base - 1, base, base + 1, -base - 1,
                                                                                  -base, -base + 1)]),
    st.floats().map(lambda f: json.dumps(f)),  # NaN, Infinity, -Infinity and every double's shortest repr
    st.sampled_from(["1e400", "-1e400", "1e-400", "-1e-400", "-0", "-0.0", "0e0", "1.7976931348623159e308",
                     "2.2250738585072011e-308", "4.9e-324", "2e-324"]),
)
_space = st.sampled_from(["", " ", "\t", "\n", "\r\n  "])
_strings = st.text(max_size=8) | st.sampled_from([
    "\ud800", "a\udfffb", "\ud83d\ude00", "\x00", "blk_-3040239967008202676", ": 12345678901234567890",
    "[-1234567890123456789"])


@st.composite
def _record_texts(draw: st.DrawFn) -> str:
    """JSON objects as written by hand: numbers of every width after ':', ',' and '[', spacing, duplicate keys,
    escaped and raw lone surrogates, NaN and Infinity; as json.dumps writes them, ASCII-escaped or not."""
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(["a", "b", "a", "host", "message"]) | st.text(max_size=3))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            value = draw(_number_literals)
        elif kind == 1:
            value = "[" + f",{draw(_space)}".join(draw(st.lists(_number_literals, max_size=4))) + "]"
        elif kind == 2:
            value = json.dumps(draw(_strings), ensure_ascii=draw(st.booleans()))
        else:
            inner = draw(st.dictionaries(_keys, _json | _strings, max_size=3))
            value = json.dumps(inner, ensure_ascii=draw(st.booleans()))
        parts.append(f"{json.dumps(key)}{draw(_space)}:{draw(_space)}{value}")
    return "{" + f",{draw(_space)}".join(parts) + "}"


@settings(max_examples=1500, deadline=None)
@given(_record_texts(), st.sampled_from(["", " ", "\n", "x", "}"]))
@example('{"a": NaN, "b": Infinity, "c": -Infinity}', "")
@example('{"a": "\\ud800", "b": "\\udc00\\ud800"}', "")
@example('{"a": 1180591620717411303424, "b": -9223372036854775809, "c": [18446744073709551616]}', "")
@example('{"a":-9223372036854775808,"b":18446744073709551615, "c": [ -9223372036854775809]}', "")
@example('{"a": 1, "b": 2, "a": {"x": 3}}', "")
@example('{"a": "' + "v" * 65536 + '"}', "")
@example('{"a": 1e400, "b": "\\u0000"}', "")
@example("{\"a\": \"\ud800\"}", "")
def test_loads_record_equals_json_loads(body: str, tail: str) -> None:
    text = body + tail
    expected = _strict(_json_only, text)
    assert expected == _strict(json.loads, text)
    assert _strict(_record_text, text) == expected
    assert _strict(_record_bytes, text) == expected
    assert _strict(loads_bounded, text) == expected


@given(_json_texts)
def test_loads_record_equals_json_loads_on_any_text(text: str) -> None:
    assert _strict(_record_text, text) == _strict(_json_only, text)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 2000])
@pytest.mark.parametrize(("opening", "closing"), [('{"a": ', "}"), ("[", "]")])
def test_loads_record_depth_bound_unchanged(depth: int, opening: str, closing: str) -> None:
    text = '{"x": ' + opening * depth + "1" + closing * depth + "}"
    expected = _strict(_json_only, text)
    assert _strict(_record_text, text) == _strict(_record_bytes, text) == expected
    assert (expected == ("error", ValueError, TOO_DEEP)) == (depth + 1 > MAX_JSON_DEPTH)


@settings(max_examples=500, deadline=None)
@given(_record_texts())
def test_loads_record_clean_means_nothing_to_scrub(text: str) -> None:
    try:
        obj, clean = loads_record(text, text.encode("utf-8", "surrogatepass"))
    except ValueError:
        return
    if clean:
        assert scrub_surrogates(obj, "\\ud800") == (obj, False)  # a line that passes its filter: the walk itself


def test_loads_record_falls_back_where_orjson_reads_differently() -> None:
    """The cases orjson reads otherwise or refuses: the same values as json.loads, never orjson's."""
    for text, value in [('{"a": 1180591620717411303424}', {"a": 2**70}),
                        ('{"a": -9223372036854775809}', {"a": -2**63 - 1}),
                        ('{"a": [1, 18446744073709551616]}', {"a": [1, 2**64]}), ('{"a": 1e400}', {"a": math.inf})]:
        assert loads_record(text) == (value, False)
    obj, clean = loads_record('{"a": NaN}')
    assert math.isnan(obj["a"]) and not clean
    assert loads_record('{"a": "\\ud800"}') == ({"a": "\ud800"}, False)
    # a block id's 19 digits inside a string do not look like a number; 18 digits are never too wide
    assert loads_record('{"blk": "blk_-3040239967008202676", "n": [-999999999999999999]}') == (
        {"blk": "blk_-3040239967008202676", "n": [-999999999999999999]}, True)


_deep_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4), max_leaves=30)


@given(st.dictionaries(_keys, _deep_json, max_size=6))
@example({"@timestamp": "t", "message": "m", "log": {"level": "INFO", "offset": 1, "file": {"path": "/x"}},
          "host": {"name": "dn-07"}, "log.level": "WARN", "ecs": {}, "a": {"b": {"c": {"d": {"e": 1}}, "c.d": 2}}})
def test_flatten_decoded_equals_the_plain_recursion_on_decoded_json(obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    for decoded in (json.loads(text), loads_record(text)[0], orjson.loads(text.replace("Infinity", "0"))):
        assert list(flatten_decoded(decoded).items()) == list(reference_flatten(decoded).items())


def reference_record_parts(obj: dict[str, Any], line: str, fields_state: JsonFields) -> Any:
    """The loops ``json_record_parts`` replaced (kept here as its specification)."""
    from pipeline.stages.jsonlog import _ALIAS_TYPES, ALIASES, MESSAGE_KEYS, TIME_KEYS  # noqa: PLC0415

    fields = reference_flatten(obj)
    message = line
    for key in MESSAGE_KEYS:
        value = fields.get(key)
        if value is not None:
            del fields[key]
            message = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            break
    timestamp = None
    bad = False
    for key in TIME_KEYS:
        if key in fields:
            value = fields.pop(key)
            try:
                timestamp = fields_state.time(value)
            except (ValueError, OverflowError):
                bad = True
            break
    for ecs, aliases in ALIASES:
        if ecs not in fields:
            for alias in aliases:
                value = fields.get(alias)
                if isinstance(value, _ALIAS_TYPES) and not isinstance(value, bool):
                    fields[ecs] = value
                    break
    return message, timestamp, list(fields.items()), bad


_part_keys = st.sampled_from(["message", "msg", "log", "event", "event.original", "@timestamp", "timestamp", "time",
                              "ts", "level", "severity", "levelname", "log.level", "host", "hostname", "host.name",
                              "service", "service.name", "original", "name", "x"])
_part_values = st.recursive(
    _scalars | _times | st.integers(0, 2_000_000_000),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_part_keys, inner, max_size=3), max_leaves=8)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.dictionaries(_part_keys, _part_values, max_size=6), min_size=1, max_size=4))
@example([{"@timestamp": "2024-01-02T03:04:05Z", "message": "m", "log": {"level": "INFO"}, "host": {"name": "a"}}])
@example([{"message": None, "msg": {"a": 1}, "level": True, "severity": 3, "host": "h", "service": {}}])
@example([{"event": {"original": "o"}, "event.original": None, "ts": None, "time": "soon", "hostname": 4}])
def test_record_parts_equal_the_loops(objs: list[dict[str, Any]]) -> None:
    fast, slow = state(), state()
    for obj in objs:
        decoded = json.loads(json.dumps(obj))
        line = json.dumps(obj)
        message, timestamp, fields, bad = json_record_parts(json.loads(line), line, fast)
        assert (message, timestamp, list(fields.items()), bad) == reference_record_parts(decoded, line, slow)
