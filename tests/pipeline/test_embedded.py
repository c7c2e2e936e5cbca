"""The embedded jobs' own rules: untimed input, too few training windows, explained samples, decode counts;
and that the embedded mode (``logwarden detect`` on a laptop) needs neither streaming client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from models.novelty import MIN_TAIL_SCALE, SESSION_TAIL_SCALE
from pipeline import embedded as jobs
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import Window
from pipeline.stages.templates import TemplateMiner

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
         "whiskey", "xray", "yankee"]


def _line(second: int, block: int, message: str) -> str:
    return f"2026-03-01T10:{second // 60 % 60:02d}:{second % 60:02d}Z blk_{block} {message}\n"


def _usual(k: int) -> str:
    # Different token counts: Drain never merges two of these templates.
    return f"{WORDS[k]} stage" + " done" * k


def test_every_explained_template_has_a_sample_line(tmp_path: Path) -> None:
    train_log = tmp_path / "train.log"
    with train_log.open("w") as fh:
        for block in range(80):
            for k in range(len(WORDS)):
                fh.write(_line(block * 40 + k, block, _usual(k)))
    settings = PipelineSettings(entity_regex=r"blk_\d+", window="session", session_gap=10.0)
    bundle = jobs.train([str(train_log)], settings)
    bundle.version = "test"
    odd = "kernel reports checksum failure on the replica"
    test_log = tmp_path / "test.log"
    # More than 20 templates before the one that makes the window abnormal.
    test_log.write_text("".join(_line(k, 7, _usual(k)) for k in range(len(WORDS))) + _line(30, 7, odd))
    docs, _stats = jobs.detect([str(test_log)], settings, bundle)
    (doc,) = list(docs)
    explained = [entry for entry in doc["templates"] if entry["observed"]]
    assert explained and explained[0]["new"]
    assert any(odd in line for line in doc["log"]["samples"])
    for entry in explained:
        words = [w for w in entry["template"].split() if w != "<*>"]
        assert any(all(w in line for w in words) for line in doc["log"]["samples"]), entry


@pytest.mark.parametrize("every", [True, False])
def test_documents_and_stats_do_not_depend_on_the_scoring_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               every: bool) -> None:
    """Windows are scored in batches of ``SCORE_BATCH`` (the scorer keeping results across them): any batch size gives
    the same documents and stats, with every window's document or only the anomalous ones'."""
    log = tmp_path / "app.log"
    with log.open("w") as fh:
        for block in range(300):
            for k in range(3 + block % 4):
                fh.write(_line(block * 7 + k, block, _usual(k) if block % 41 else f"odd event {block % 3}"))
    settings = PipelineSettings(entity_regex=r"blk_\d+", window="session", session_gap=3.0)
    bundle = jobs.train([str(log)], settings, force=True)
    outputs = []
    for size in (jobs.SCORE_BATCH, 1, 7, 100_000):
        monkeypatch.setattr(jobs, "SCORE_BATCH", size)
        docs, stats = jobs.detect([str(log)], settings, bundle, every=every)
        outputs.append((json.dumps(list(docs)), stats.as_dict()))
    assert all(out == outputs[0] for out in outputs) and json.loads(outputs[0][0])


def _windows(n: int, entities: int | None = None) -> list[Window]:
    return [Window("message", f"e{i % (entities or n)}", "session", float(i), float(i + 1)) for i in range(n)]


@pytest.mark.parametrize("n, entities", [(1, 1), (6, 6), (30, 3)])
def test_too_few_training_windows_are_refused(n: int, entities: int) -> None:
    with pytest.raises(LogwardenError, match=f"only {n} training window.*--force"):
        jobs.check_training_windows(_windows(n, entities), PipelineSettings(), force=False)
    warnings = jobs.check_training_windows(_windows(n, entities), PipelineSettings(contamination=0.03), force=True)
    assert "--force" in warnings[0] and "poorly calibrated" in warnings[1]
    assert jobs.check_training_windows(_windows(n, entities), PipelineSettings(), force=True) == warnings[:1]


def test_small_training_sets_warn_about_calibration() -> None:
    settings = PipelineSettings(contamination=0.03)
    (warning,) = jobs.check_training_windows(_windows(100), settings, force=False)
    assert "poorly calibrated" in warning and "3.0 expected abnormal windows" in warning
    assert jobs.check_training_windows(_windows(1000), settings, force=False) == []
    assert jobs.check_training_windows(_windows(100), PipelineSettings(contamination=0.1), force=False) == []
    assert jobs.check_training_windows(_windows(100), PipelineSettings(), force=False) == []  # auto: no share given


def test_small_or_short_training_sets_are_flagged() -> None:
    def sized(n: int, lines: int) -> list[Window]:
        out = _windows(n)
        for w in out:
            w.counts = Counter({"T": lines})
        return out

    flags, warnings = jobs.training_flags(sized(100, 1))
    assert flags == ["few_windows", "short_windows"] and len(warnings) == 2
    assert "only 100 training windows" in warnings[0] and "median training window holds 1 line" in warnings[1]
    assert jobs.training_flags(sized(1000, 20)) == ([], [])
    assert jobs.training_flags(sized(1000, 2))[0] == ["short_windows"]


def test_untimed_input_stops_after_the_first_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "Proxifier.log"
    log.write_text("".join(f"[10.30 16:49:{i % 60:02d}] chrome{i % 90}.exe - proxy.example.org:5070 open through "
                           "proxy proxy.example.org:5070 HTTPS\n" for i in range(5000)))
    settings = PipelineSettings(entity_regex=r"chrome\d+\.exe")
    read: list[int] = []
    real = jobs.read_lines

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        for raw in real(*args, **kwargs):
            read.append(1)
            yield raw

    monkeypatch.setattr(jobs, "read_lines", counted)
    with pytest.raises(LogwardenError, match="1000 of 1000 lines have no timestamp"):
        jobs.train([str(log)], settings)
    assert len(read) <= jobs.UNTIMED_CHECK_LINES + jobs.FORMAT_CHECK_LINES


def test_mostly_untimed_at_the_end_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    timed = "".join(_line(i, i % 60, "GET /index 200") for i in range(300))
    untimed = "".join(f"blk_{i % 60} continuation of the previous request\n" for i in range(400))
    log.write_text(timed + untimed)
    settings = PipelineSettings(entity_regex=r"blk_\d+")
    with pytest.raises(LogwardenError, match="400 of 700 lines have no timestamp"):
        jobs.train([str(log)], settings)
    bundle = jobs.train([str(log)], PipelineSettings(entity_regex=r"blk_\d+", allow_untimed=True))
    assert bundle.stats["untimed"] == 400


def test_json_stream_counts_text_lines_as_not_json(tmp_path: Path) -> None:
    records = [json.dumps({"@timestamp": f"2026-03-01T10:00:{i % 60:02d}Z", "host": {"name": f"web-{i % 60}"},
                           "message": "GET /api 200"}) for i in range(200)]
    log = tmp_path / "app.json"
    log.write_text("banner line\n" + "\n".join(records[:100]) + "\n{not json\nplain text\n"
                   + "\n".join(records[100:]) + "\n")
    docs, stats = jobs.detect([str(log)], PipelineSettings(entity_field="host.name"), None, force=True)
    list(docs)
    assert stats.decode["json"] == 200 and stats.decode["not_json"] == 3


def test_plain_text_has_no_not_json_count(tmp_path: Path) -> None:
    log = tmp_path / "plain.log"
    log.write_text("".join(_line(i, i % 60, "GET /index 200") for i in range(300)))
    docs, stats = jobs.detect([str(log)], PipelineSettings(entity_regex=r"blk_\d+"), None)
    list(docs)
    assert stats.decode["not_json"] == 0


def test_untimed_json_gets_a_json_hint(tmp_path: Path) -> None:
    log = tmp_path / "app.json"
    log.write_text("".join(json.dumps({"host": {"name": f"web-{i % 60}"}, "message": "GET /api 200"}) + "\n"
                           for i in range(300)))
    with pytest.raises(LogwardenError, match="300 of 300 lines .* need an @timestamp"):
        jobs.train([str(log)], PipelineSettings(entity_field="host.name"))


REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "hdfs_sample.log"
BLOCKED_RUN = """
import sys

BLOCKED = ("kafka", "elasticsearch", "elastic_transport")


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the embedded mode must not import it")
        return None


sys.meta_path.insert(0, Block())
from pipeline.cli.app import main

sys.argv = ["logwarden", *sys.argv[1:]]
main()
"""


def test_detect_runs_without_the_streaming_clients(tmp_path: Path) -> None:
    # The whole sample: its first 4,000 lines (293 sessions, 10 of them anomalous, cut short) gave one false
    # positive by count excess and no incident before session windows read their count tails as heavy.
    out = tmp_path / "anomalies.jsonl"
    args = [str(SAMPLE), "--log-format", "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            "--entity-regex", r"blk_-?\d+", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "detect", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert docs and all(doc["anomaly"]["is_anomaly"] for doc in docs)
    assert all(doc["entity"]["id"].startswith("blk_") for doc in docs)


@pytest.mark.parametrize("window", ["session", "tumbling"])
def test_the_model_reads_count_tails_by_how_its_windows_are_cut(window: str) -> None:
    settings = PipelineSettings(window=window).validated()
    counts = [{"T1": 1 + i % 4, "T2": 1} for i in range(200)]
    bundle = jobs.fit_counts(TemplateMiner.for_settings(settings.max_templates), counts, {"T1": "a", "T2": "b"},
                             settings, jobs.JobStats())
    assert bundle.detector.get_params()["window_kind"] == window
    floor = {"session": SESSION_TAIL_SCALE, "tumbling": MIN_TAIL_SCALE}[window]
    assert bundle.detector.stats_.tail_scale is not None and min(bundle.detector.stats_.tail_scale) == floor
