from __future__ import annotations

import pytest

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
