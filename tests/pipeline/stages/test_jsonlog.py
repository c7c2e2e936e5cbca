"""JSON log lines: flattening, message and time keys, ECS aliases."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.stages.jsonlog import JsonFields, flatten, json_record_parts
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
