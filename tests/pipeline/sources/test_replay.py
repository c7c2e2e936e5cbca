"""Replay keys: one entity, one key (so one partition)."""

from __future__ import annotations

import pytest

from pipeline.errors import LogwardenError
from pipeline.sources.replay import key_function, replay


def test_key_is_the_first_match_or_the_named_group() -> None:
    key = key_function(r"blk_-?\d+")
    assert key("Deleting blk_-12 and blk_7") == b"blk_-12"
    assert key("no block here") is None
    named = key_function(r"host=(?P<host>[\w.-]+)")
    assert named("level=info host=web-1.example msg=ok") == b"web-1.example"
    assert key_function(None)("anything") is None


def test_bad_regex_and_rate_are_user_errors() -> None:
    with pytest.raises(LogwardenError, match="--key-regex"):
        key_function("blk_(")
    with pytest.raises(LogwardenError, match="--rate"):
        replay(["x.log"], "t", "127.0.0.1:1", rate=0)
    with pytest.raises(LogwardenError, match="--partitions"):
        replay(["x.log"], "t", "127.0.0.1:1", partitions=0)
