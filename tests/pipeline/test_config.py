from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import PipelineSettings, load_config, parse_duration
from pipeline.errors import LogwardenError


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200),
                                                ("1d", 86400), ("12", 12), (7, 7.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", "0", "m"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(LogwardenError):
        parse_duration(bad, "--session-gap")


def test_precedence_and_validation(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("entity-regex: 'blk_\\d+'\nsession_gap: 10m\nwindow: tumbling\n")
    model = {"window": "session", "session_gap": 60.0, "log_format": "<Content>"}
    s = PipelineSettings().merged(model).merged(load_config(cfg)).merged({"window": "session", "entity_field": None})
    assert s.window == "session" and s.session_gap == 600 and s.log_format == "<Content>"
    assert s.entity_regex == r"blk_\d+"
    with pytest.raises(LogwardenError, match="--window"):
        PipelineSettings().merged({"window": "sliding"})
    with pytest.raises(LogwardenError, match="contamination"):
        PipelineSettings().merged({"contamination": 0.7})


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(LogwardenError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(LogwardenError, match="cannot read config"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(LogwardenError, match="mapping"):
        load_config(lst)
