"""The CLI as a new user meets it: train, detect and parse end to end, and every bad input."""

from __future__ import annotations

import csv
import gzip
import json
import re
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


def test_detect_writes_the_anomalous_documents_of_all_windows(trained: Path, tmp_path: Path) -> None:
    """Without --all-windows (only anomalies' documents are built) the output is the anomalous lines of
    --all-windows, in order, with the same summary."""
    every, some = tmp_path / "all.jsonl", tmp_path / "some.jsonl"
    result_all = run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(every), "--all-windows")
    result = run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(some))
    assert result.exit_code == result_all.exit_code == 0, result.output
    lines = every.read_text().splitlines()
    want = [line for line in lines if json.loads(line)["anomaly"]["is_anomaly"]]
    assert want and len(want) < len(lines) and some.read_text().splitlines() == want
    assert result.stderr == result_all.stderr


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
    page = report.read_text()
    assert 'id="plot-score-time"' in page and 'id="entities"' in page
    # Every anomalous entity of the run is in the report's table, and the header names the input.
    assert {d["entity"]["id"] for d in docs} <= set(re.findall(r'<tr><td data-sort="([^"]+)">', page))
    assert str(SAMPLE) in page and f'"anomalies": {len(docs)}' in page
    assert "decided by " in page  # the component that made each window anomalous


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
    assert_user_error(run("detect", str(SAMPLE), "--out", str(tmp_path)), "cannot write", "is a directory")


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
    assert "[default: auto]" in text and "[default: 0.01]" in text and "DURATION" in text


# -- outputs are replaced only when the run completes (issue 9, item 10) ------------------------------------
def _only_file(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_truncated_gzip_leaves_an_existing_out_file_as_it_was(trained: Path, tmp_path: Path) -> None:
    gz = tmp_path / "today.log.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes())[:40_000])  # cut mid-stream: fails after some lines
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, report, parsed = out_dir / "anomalies.jsonl", out_dir / "report.html", out_dir / "parsed.csv"
    for path in (out, report, parsed):
        path.write_text("yesterday's results\n")
    result = run("detect", str(gz), "--model-dir", str(trained), "--out", str(out), "--report", str(report))
    assert_user_error(result, "today.log.gz")
    assert_user_error(run("parse", str(gz), "--log-format", HDFS_FORMAT, "--out", str(parsed)), "today.log.gz")
    for path in (out, report, parsed):
        assert path.read_text() == "yesterday's results\n"
    assert _only_file(out_dir) == ["anomalies.jsonl", "parsed.csv", "report.html"]  # no temporary file left


def test_ctrl_c_prints_one_line_exits_130_and_keeps_existing_outputs(
        trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.cli.files as files

    out, report = tmp_path / "anomalies.jsonl", tmp_path / "report.html"
    out.write_text("old\n")
    report.write_text("old\n")
    written: list[int] = []

    def interrupted_write(handle, doc) -> None:  # type: ignore[no-untyped-def]
        written.append(1)
        if len(written) == 3:
            raise KeyboardInterrupt
        handle.write("{}\n")

    monkeypatch.setattr(files, "write_jsonl", interrupted_write)
    result = run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(out), "--report", str(report))
    assert result.exit_code == 130
    assert result.stderr.strip() == "logwarden: interrupted"
    assert out.read_text() == report.read_text() == "old\n"
    assert _only_file(tmp_path) == ["anomalies.jsonl", "report.html"]

    def interrupt(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    import pipeline.cli.train as train_cli

    monkeypatch.setattr(train_cli.training, "train_files", interrupt)
    monkeypatch.setattr(files.jobs, "parse", interrupt)
    for args in (("train", str(SAMPLE), "--model-dir", str(tmp_path / "m")), ("parse", str(SAMPLE))):
        result = run(*args)
        assert result.exit_code == 130 and result.stderr.strip() == "logwarden: interrupted", result.output


def test_new_out_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    import os

    out = tmp_path / "parsed.csv"
    assert run("parse", str(SAMPLE), "--log-format", HDFS_FORMAT, "--out", str(out)).exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


# -- an unwritable --model-dir fails first, with one line ----------------------------------------------------
def test_train_into_an_unwritable_model_dir_fails_before_the_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.cli.train as train_cli

    blocker = tmp_path / "a-file"
    blocker.write_text("")

    def must_not_run(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        pytest.fail("trained before checking --model-dir")

    with monkeypatch.context() as patch:
        patch.setattr(train_cli.training, "train_files", must_not_run)
        assert_user_error(run("train", str(SAMPLE), "--model-dir", str(blocker / "models"), *HDFS_FLAGS),
                          "cannot write to --model-dir")

    def fail_publish(self, bundle, make_current=True):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(train_cli.ModelRegistry, "publish", fail_publish)
    assert_user_error(run("train", str(SAMPLE), "--model-dir", str(tmp_path / "m"), *HDFS_FLAGS),
                      "cannot write the model", "Permission denied")


# -- untimed input is refused with a hint ----------------------------------------------------------------------
def _health_app(path: Path, n: int = 1200) -> Path:
    """HealthApp-style lines: a timestamp layout (``20171223-22:15:29:606``) that is not auto-detected."""
    steps = ["onStandStepChanged 3579", "onExtend:1514038530000 14 0 4", "REPORT : 7007 5002 150089 240",
             "setTodayTotalDetailSteps=1514038440000##7007##548365##8661##12361##27173954"]
    lines = []
    for i in range(n):
        second = i * 7
        stamp = f"20171223-{22 + second // 3600 % 2:02d}:{second // 60 % 60:02d}:{second % 60:02d}:{i % 1000:03d}"
        lines.append(f"{stamp}|Step_LSC{i % 90}|30002312|{steps[i % len(steps)]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _proxifier(path: Path, n: int = 1200) -> Path:
    lines = [f"[10.30 16:{i // 60 % 60:02d}:{i % 60:02d}] chrome{i % 80}.exe - proxy.cse.cuhk.edu.hk:5070 "
             f"open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_untimed_input_is_refused_with_a_hint_unless_allowed(tmp_path: Path) -> None:
    health = _health_app(tmp_path / "HealthApp.log")
    proxifier = _proxifier(tmp_path / "Proxifier.log")
    model_dir = tmp_path / "m"
    result = run("train", str(health), "--model-dir", str(model_dir), "--entity-regex", r"Step_LSC\d+")
    assert_user_error(result, "1000 of 1000 lines have no timestamp", "--time-format", "--allow-untimed")
    assert not (model_dir / "CURRENT").exists()
    assert_user_error(run("detect", str(proxifier), "--entity-regex", r"chrome\d+\.exe"), "no timestamp")
    # The hint works: with the layout's time format the same file trains.
    result = run("train", str(health), "--model-dir", str(model_dir), "--entity-regex", r"Step_LSC\d+",
                 "--time-format", "%Y%m%d-%H:%M:%S:%f")
    assert result.exit_code == 0, result.output
    # The opt-in is explicit, and stored with the model.
    result = run("train", str(proxifier), "--model-dir", str(model_dir), "--entity-regex", r"chrome\d+\.exe",
                 "--allow-untimed")
    assert result.exit_code == 0, result.output
    version = (model_dir / "CURRENT").read_text().strip()
    assert json.loads((model_dir / "versions" / version / "settings.json").read_text())["allow_untimed"] is True
    assert run("detect", str(proxifier), "--model-dir", str(model_dir)).exit_code == 0


# -- degenerate models are refused unless forced --------------------------------------------------------------
def test_too_few_training_windows_are_refused_unless_forced(tmp_path: Path) -> None:
    head = tmp_path / "head.log"
    head.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:300]))
    model_dir = tmp_path / "m"
    # No entity option: one global entity, one session window.
    result = run("train", str(head), "--model-dir", str(model_dir), "--log-format", HDFS_FORMAT)
    assert_user_error(result, "only 1 training window", "--force")
    assert not (model_dir / "CURRENT").exists()
    assert_user_error(run("detect", str(head), "--log-format", HDFS_FORMAT), "only 1 training window")
    result = run("train", str(head), "--model-dir", str(model_dir), "--log-format", HDFS_FORMAT, "--force")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("logwarden: warning: ")]
    assert len(warnings) == 2 and "fewer than 300" in warnings[1]
    assert (model_dir / "CURRENT").exists()
    version = (model_dir / "CURRENT").read_text().strip()
    manifest = json.loads((model_dir / "versions" / version / "manifest.json").read_text())
    assert manifest["stats"]["flags"] == ["few_windows"]  # one window of 300 lines: small, not short


def test_enough_windows_train_without_warnings(tmp_path: Path) -> None:
    result = run("train", str(SAMPLE), "--model-dir", str(tmp_path / "m"), *HDFS_FLAGS)
    assert result.exit_code == 0 and "warning" not in result.stderr


# -- year-less timestamps: --year, --timezone; late records get a hint ----------------------------------------
SYSLOG = ["Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=218.188.2.4",
          "Jun 14 15:16:02 combo sshd(pam_unix)[19937]: check pass; user unknown"]


def test_year_and_timezone_place_syslog_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("\n".join(SYSLOG) + "\n")
    model_dir = tmp_path / "m"
    result = run("train", str(log), "--model-dir", str(model_dir), "--year", "2005", "--timezone",
                 "America/New_York", "--entity-regex", r"\[\d+\]", "--force")
    assert result.exit_code == 0, result.output
    version = (model_dir / "CURRENT").read_text().strip()
    stored = json.loads((model_dir / "versions" / version / "settings.json").read_text())
    assert stored["year"] == 2005 and stored["timezone"] == "America/New_York"
    result = run("detect", str(log), "--model-dir", str(model_dir), "--all-windows")
    assert result.exit_code == 0, result.output
    starts = sorted(json.loads(line)["window"]["start"] for line in result.stdout.splitlines())
    assert starts == ["2005-06-14T19:16:01.000Z", "2005-06-14T19:16:02.000Z"]  # EDT is UTC-4


def test_unknown_timezone_is_one_line(tmp_path: Path) -> None:
    assert_user_error(run("detect", str(SAMPLE), "--timezone", "Mars/Olympus_Mons"),
                      "unknown time zone 'Mars/Olympus_Mons'")
    assert_user_error(run("detect", str(SAMPLE), "--year", "0"), "--year")


def test_summary_names_allowed_lateness_when_most_records_come_late(tmp_path: Path) -> None:
    def lines(hour: int, n: int) -> str:
        return "".join(f"2015-10-18 {hour:02d}:{i // 60 % 60:02d}:{i % 60:02d},978 INFO [main] task_{i % 70} "
                       f"{'started' if i % 2 else 'finished'} in container_{i}\n" for i in range(n))

    newer, older = tmp_path / "a-newer.log", tmp_path / "b-older.log"
    newer.write_text(lines(12, 300))  # read first, but its times are the latest
    older.write_text(lines(9, 700))
    result = run("detect", str(newer), str(older), "--entity-regex", r"task_\d+", "--window", "tumbling")
    assert result.exit_code == 0, result.output
    assert "late records (most records came late: raise --allowed-lateness" in result.stderr


# -- a model whose files pass their checksums but do not load --------------------------------------------------
def _forged_copy(trained: Path, tmp_path: Path, name: str, content: str) -> Path:
    """A copy of the model with ``content`` in place of ``name`` and the manifest's checksum rewritten to match."""
    import hashlib
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    version_dir = copy / "versions" / (copy / "CURRENT").read_text().strip()
    (version_dir / name).write_text(content)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["derived" if name == "forest_paths.npz" else "files"][name] = hashlib.sha256(content.encode()).hexdigest()
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("name, content", [("features.json", "{}"), ("detector.json", '{"params": {}}'),
                                           ("settings.json", "[1, 2]"), ("forest_paths.npz", "not a zip")])
def test_model_with_valid_checksums_but_malformed_content(trained: Path, tmp_path: Path, name: str,
                                                           content: str) -> None:
    copy = _forged_copy(trained, tmp_path, name, content)
    assert_user_error(run("detect", str(SAMPLE), "--model-dir", str(copy)), "is malformed", name)


def test_a_malformed_forest_stops_what_loads_it_and_not_detect(trained: Path, tmp_path: Path) -> None:
    """``detect`` scores with the saved flattened trees and never parses ``forest.skops`` (that import is
    most of its start-up); a command that loads the forest refuses it in one line."""
    copy = _forged_copy(trained, tmp_path, "forest.skops", "not a zip")
    forged, clean = tmp_path / "forged.jsonl", tmp_path / "clean.jsonl"
    assert run("detect", str(SAMPLE), "--model-dir", str(copy), "--out", str(forged)).exit_code == 0
    assert run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(clean)).exit_code == 0
    assert forged.read_bytes() == clean.read_bytes() and clean.stat().st_size > 0
    assert_user_error(run("evaluate", str(SAMPLE), "--model-dir", str(copy), "--labels", str(LABELS)),
                      "is malformed", "forest.skops")


# -- a JSON stream counts its non-JSON lines -------------------------------------------------------------------
def test_json_stream_counts_lines_that_are_not_json(tmp_path: Path) -> None:
    records = [json.dumps({"@timestamp": f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z", "host.name": f"web-{i % 60}",
                           "message": f"GET /api/items/{i} 200"}) for i in range(600)]
    records.insert(0, "starting shipper v1.2")  # before the first JSON object
    records.insert(300, "Traceback (most recent call last):")
    log = tmp_path / "app.json"
    log.write_text("\n".join(records) + "\n")
    result = run("detect", str(log), "--entity-field", "host.name")
    assert result.exit_code == 0, result.output
    assert "2 not JSON" in result.stderr
