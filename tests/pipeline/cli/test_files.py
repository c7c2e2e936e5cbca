"""The CLI as a new user meets it: train, detect and parse end to end, and every bad input."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.loghub import LOG_FORMATS
from pipeline.cli.app import cli
from tests.conftest import REPO_ROOT

HDFS_FORMAT = LOG_FORMATS["HDFS"]
SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
LABELS = REPO_ROOT / "examples" / "hdfs_sample_labels.csv"
HDFS_FLAGS = ["--log-format", HDFS_FORMAT, "--entity-regex", r"blk_-?\d+", "--window", "session"]


def run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def assert_user_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("logwarden: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("model")
    result = run("train", str(SAMPLE), "--model-dir", str(model_dir), *HDFS_FLAGS)
    assert result.exit_code == 0, result.output
    return model_dir


def test_train_then_detect_with_model(trained: Path, tmp_path: Path) -> None:
    assert (trained / "CURRENT").is_file()
    out = tmp_path / "an.jsonl"
    result = run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(out), "--all-windows")
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    labels = {row["block_id"]: row["label"] == "1" for row in csv.DictReader(LABELS.open())}
    assert {d["entity"]["id"] for d in docs} == set(labels)  # one window per block, none lost
    doc = docs[0]
    assert set(doc) == {"@timestamp", "entity", "window", "anomaly", "model", "templates", "log"}
    assert doc["model"]["version"] == (trained / "CURRENT").read_text().strip()
    assert doc["window"]["kind"] == "session" and doc["entity"]["field"] == "message"
    flagged = {d["entity"]["id"] for d in docs if d["anomaly"]["is_anomaly"]}
    true_pos = sum(labels[b] for b in flagged)
    # Floors well below the benchmark's figures: the model must find mostly anomalous blocks.
    assert flagged and true_pos / len(flagged) >= 0.5
    assert true_pos / sum(labels.values()) >= 0.5
    assert "anomalous windows" in result.stderr


def test_detect_reads_gzip_and_stdin_the_same(trained: Path, tmp_path: Path) -> None:
    head = b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:2000])
    gz = tmp_path / "part.log.gz"
    gz.write_bytes(gzip.compress(head))
    a = run("detect", str(gz), "--model-dir", str(trained), "--all-windows")
    b = run("detect", "-", "--model-dir", str(trained), "--all-windows", input=head)
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout and a.stdout.count("\n") > 10


def test_detect_without_model_trains_on_input_and_writes_report(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    result = run("detect", str(SAMPLE), *HDFS_FLAGS, "--report", str(report))
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert docs and all(d["anomaly"]["is_anomaly"] for d in docs)
    assert all(d["model"]["version"] == "adhoc" for d in docs)
    assert "<table>" in report.read_text()


def test_config_file_supplies_flags(tmp_path: Path, trained: Path) -> None:
    cfg = tmp_path / "lw.yaml"
    cfg.write_text(f"log-format: '{HDFS_FORMAT}'\nentity_regex: 'blk_-?\\d+'\nwindow: session\n")
    model_dir = tmp_path / "m"
    result = run("train", str(SAMPLE), "--config", str(cfg), "--model-dir", str(model_dir))
    assert result.exit_code == 0, result.output
    settings = json.loads(next((model_dir / "versions").iterdir()).joinpath("settings.json").read_text())
    assert settings["entity_regex"] == r"blk_-?\d+" and settings["log_format"] == HDFS_FORMAT


@pytest.mark.parametrize("system", ["Apache", "BGL", "HDFS", "Hadoop", "Linux", "OpenSSH", "Spark", "Zookeeper"])
def test_parse_one_row_per_line(system: str, shared_data: Path, tmp_path: Path) -> None:
    log = shared_data / "loghub-2k" / system / f"{system}_2k.log"
    out = tmp_path / "parsed.csv"
    result = run("parse", str(log), "--log-format", LOG_FORMATS[system], "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == len(log.read_bytes().splitlines()) == 2000
    assert [int(r["line"]) for r in rows] == list(range(1, 2001))
    by_id: dict[str, str] = {}
    for row in rows:
        assert by_id.setdefault(row["template_id"], row["template"]) == row["template"]


# -- bad input: one line, exit 2, no traceback ---------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    assert_user_error(run("detect", str(tmp_path / "nope.log")), "nope.log")


def test_unreadable_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    assert_user_error(run("detect", str(bad), *HDFS_FLAGS), "bad.log.gz")


def test_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert_user_error(run("train", str(empty), "--model-dir", str(tmp_path / "m")), "empty")


def test_format_that_matches_nothing() -> None:
    result = run("detect", str(SAMPLE), "--log-format", "[<Time>] <Level> - <Content>")
    assert_user_error(result, "--log-format matched none")


def test_invalid_regex() -> None:
    assert_user_error(run("detect", str(SAMPLE), "--entity-regex", "blk_("), "--entity-regex")


def test_regex_matching_nothing(tmp_path: Path) -> None:
    assert_user_error(run("detect", str(SAMPLE), "--entity-regex", "req-[0-9]{40}"), "no windows")


def test_model_dir_with_wrong_checksum(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    version = (copy / "CURRENT").read_text().strip()
    settings = copy / "versions" / version / "settings.json"
    settings.write_text(settings.read_text().replace("session", "tumbling"))
    assert_user_error(run("detect", str(SAMPLE), "--model-dir", str(copy)), "checksum mismatch")


def test_model_dir_missing(tmp_path: Path) -> None:
    assert_user_error(run("detect", str(SAMPLE), "--model-dir", str(tmp_path / "none")), "does not exist")


def test_bad_duration_and_config(tmp_path: Path) -> None:
    assert_user_error(run("detect", str(SAMPLE), "--session-gap", "soon"), "--session-gap")
    assert_user_error(run("detect", str(SAMPLE), "--config", str(tmp_path / "x.yaml")), "config file not found")


def test_unwritable_output(tmp_path: Path) -> None:
    result = run("parse", str(SAMPLE), "--out", str(tmp_path / "no" / "dir" / "out.csv"))
    assert_user_error(result, "cannot write")


def test_config_file_supplies_command_options_and_flags_win(tmp_path: Path, trained: Path) -> None:
    cfg = tmp_path / "lw.yaml"
    out = tmp_path / "from-config.jsonl"
    cfg.write_text(f"model_dir: {trained}\nout: {out}\nall-windows: true\ntop: 3\n")
    result = run("detect", str(SAMPLE), "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1000  # all windows, from the config file
    flag_out = tmp_path / "from-flag.jsonl"
    result = run("detect", str(SAMPLE), "--config", str(cfg), "--out", str(flag_out))
    assert result.exit_code == 0 and flag_out.exists()


def test_config_file_bad_option_value_and_missing_model_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "lw.yaml"
    cfg.write_text("top: many\n")
    assert_user_error(run("detect", str(SAMPLE), "--config", str(cfg)), "top")
    assert_user_error(run("train", str(SAMPLE)), "--model-dir is required")


def test_unknown_config_key_is_an_error_naming_the_closest(tmp_path: Path) -> None:
    cfg = tmp_path / "lw.yaml"
    cfg.write_text("windw: tumbling\n")
    assert_user_error(run("detect", str(SAMPLE), "--config", str(cfg)), "unknown option 'windw'",
                      "did you mean 'window'")
    cfg.write_text("paths: [a.log]\n")  # arguments are not options
    assert_user_error(run("parse", str(SAMPLE), "--config", str(cfg)), "unknown option 'paths'")


def test_help_shows_the_defaults_of_the_settings() -> None:
    result = run("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Silence that ends a session window. [default: 5m]" in text
    assert "[default: 0.03]" in text and "DURATION" in text
