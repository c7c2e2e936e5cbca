from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import LogwardenError
from pipeline.records import LogRecord
from pipeline.stages.entities import GLOBAL_ENTITY, EntityExtractor


def rec(message: str, **fields: str) -> LogRecord:
    return LogRecord(message=message, timestamp=None, fields=dict(fields))


def test_regex_every_distinct_match() -> None:
    ex = EntityExtractor(regex=r"blk_-?\d+")
    assert ex.entities(rec("copy blk_1 to blk_-2 then blk_1")) == [("message", "blk_1"), ("message", "blk_-2")]
    assert ex.entities(rec("no block here")) == []


def test_named_group_sets_field() -> None:
    ex = EntityExtractor(regex=r"req=(?P<request>[0-9a-f]+)")
    assert ex.entities(rec("GET / req=ab12")) == [("request", "ab12")]


def test_field_and_fallback() -> None:
    ex = EntityExtractor(regex=r"blk_\d+", field="host.name")
    assert ex.entities(rec("blk_7 written", **{"host.name": "h1"})) == [("message", "blk_7")]
    assert ex.entities(rec("heartbeat", **{"host.name": "h1"})) == [("host.name", "h1")]
    assert ex.entities(rec("heartbeat")) == []


def test_global_entity_when_nothing_configured() -> None:
    assert EntityExtractor().entities(rec("x")) == [GLOBAL_ENTITY]


def test_invalid_regex_is_user_error() -> None:
    with pytest.raises(LogwardenError, match="not a valid regex"):
        EntityExtractor(regex="blk_(")


def _entities_by_loop(ex: EntityExtractor, message: str) -> list[tuple[str, str]]:
    """What ``entities`` read before its findall fast path: every match object, in order."""
    assert ex._pattern is not None
    found: dict[str, None] = {}
    for match in ex._pattern.finditer(message):
        value = match.group(ex._group) if ex._group else match.group(0)
        if value:
            found[value] = None
    return [(ex._regex_field, value) for value in found]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([r"blk_-?\d+", r"req=(?P<request>[0-9a-f]*)", r"(a)(b)?", r"x(?P<n>\d)?", r"b*", r"(?:ab)+",
                        r"(?P<one>a)|(?P<two>b)", r"(\d+)-(?P<id>\w)"]),
       st.lists(st.sampled_from(list("ab1-_x") + ["blk_", "req=", "req=ab", " "]), max_size=20).map("".join))
def test_regex_entities_are_those_of_every_match(regex: str, message: str) -> None:
    ex = EntityExtractor(regex=regex)
    assert ex.entities(rec(message)) == (_entities_by_loop(ex, message) or [])
