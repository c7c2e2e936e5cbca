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
    with pytest.raises(LogwardenError, match="contamination must be auto, clean or a number"):
        PipelineSettings().merged({"contamination": "often"})
    assert PipelineSettings().contamination == "auto"
    assert PipelineSettings().merged({"contamination": "0.05"}).contamination == 0.05
    assert PipelineSettings().merged({"contamination": "Clean"}).contamination == "clean"
    with pytest.raises(LogwardenError, match="--target-fpr"):
        PipelineSettings().merged({"target_fpr": 0.0})


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


def test_unknown_config_key_names_the_closest_option() -> None:
    from pipeline.config import config_values

    names = {"window": "window", "session_gap": "session_gap", "topic": "topics"}
    assert config_values({"topic": "logs", "window": "session"}, names, "c.yaml") == {"topics": "logs",
                                                                                      "window": "session"}
    with pytest.raises(LogwardenError, match=r"unknown option 'windw' \(did you mean 'window'\?\)"):
        config_values({"windw": "tumbling"}, names, "c.yaml")
    with pytest.raises(LogwardenError, match=r"unknown option 'colour'$"):
        config_values({"colour": "red"}, names, "c.yaml")


def test_duration_type_and_defaults_written_once() -> None:
    import click

    from pipeline.config import DURATION, WorkerOptions, default_text, format_duration, layered

    assert DURATION.convert("5m", None, None) == 300.0 and DURATION.convert(2.5, None, None) == 2.5
    with pytest.raises(click.BadParameter, match="not a positive duration"):
        DURATION.convert("soon", None, None)
    assert [format_duration(s) for s in (300.0, 3600.0, 0.5, 90.0, 86400.0)] == ["5m", "1h", "0.5s", "90s", "1d"]
    assert default_text(PipelineSettings, "session_gap") == "  [default: 5m]"
    assert default_text(WorkerOptions, "commit_interval") == "  [default: 5s]"
    assert default_text(PipelineSettings, "entity_regex") == ""
    assert layered({"a": 1, "b": 2}, None, {"a": None, "b": 3}) == {"a": 1, "b": 3}


def test_worker_options_from_resolved_values() -> None:
    from pipeline.config import WorkerOptions

    options = WorkerOptions.from_values({"topics": "logs", "commit_interval": "2s", "group_id": None},
                                        PipelineSettings())
    assert options.topics == ("logs",) and options.commit_interval == 2.0 and options.group_id == "logwarden"
    with pytest.raises(LogwardenError, match="no topic"):
        WorkerOptions.from_values({}, PipelineSettings())
