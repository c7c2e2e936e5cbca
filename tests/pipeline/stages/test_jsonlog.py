"""JSON log lines: flattening, message and time keys, ECS aliases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.stages.jsonlog import JsonFields, flatten, json_record_parts, loads_bounded, scrub_surrogates
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
