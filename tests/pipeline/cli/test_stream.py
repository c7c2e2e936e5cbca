"""`logwarden worker` / `replay` argument handling: user mistakes give one error line and status 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli.app import cli
from pipeline.cli.stream import JsonFormatter, replay, worker


def run(command, args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(command, args, catch_exceptions=False)


def test_commands_are_registered_on_the_main_group() -> None:
    assert cli.get_command(None, "worker") is worker  # type: ignore[arg-type]
    assert cli.get_command(None, "replay") is replay  # type: ignore[arg-type]


def test_worker_without_a_model_dir_is_a_user_error() -> None:
    result = run(worker, ["--topic", "logs"])
    assert result.exit_code == 2
    assert "--model-dir is required" in result.output


def test_worker_with_a_missing_model_is_a_user_error(tmp_path: Path) -> None:
    result = run(worker, ["--topic", "logs", "--model-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_worker_config_file_errors_are_user_errors(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("topic: [a, b\n")
    result = run(worker, ["--config", str(config)])
    assert result.exit_code == 2 and "cannot read config file" in result.output


def test_replay_bad_regex_is_a_user_error(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    result = run(replay, [str(log), "--topic", "t", "--key-regex", "blk_("])
    assert result.exit_code == 2 and "--key-regex" in result.output


def test_replay_missing_file_is_a_user_error(tmp_path: Path) -> None:
    result = run(replay, [str(tmp_path / "missing.log"), "--topic", "t"])
    assert result.exit_code == 2 and "missing.log" in result.output


def test_json_log_lines() -> None:
    record = logging.LogRecord("pipeline.stream.worker", logging.WARNING, __file__, 1, "paused %d partitions", (4,),
                               None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["message"] == "paused 4 partitions"
    assert entry["logger"] == "pipeline.stream.worker" and entry["time"].endswith("+00:00")


def test_worker_config_file_unknown_key_and_topic_alias(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("topic: logs\ngroup_idd: g\n")
    result = run(worker, ["--config", str(config)])
    assert result.exit_code == 2 and "unknown option 'group_idd' (did you mean 'group_id'?)" in result.output
    config.write_text("topic: logs\nformat: json\ncommit_interval: 2s\n")  # long flag names are keys too
    result = run(worker, ["--config", str(config)])
    assert result.exit_code == 2 and "--model-dir is required" in result.output
