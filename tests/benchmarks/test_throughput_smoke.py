"""The throughput benchmark runs end to end on tiny inputs and reports what its README table needs."""

from __future__ import annotations

import json

import pytest

from benchmarks import throughput
from benchmarks.loghub import DataMissing, raw_log_path

TINY = {"hdfs_lines": 1500, "train_lines": 4000, "loghub_lines": 150, "process_lines": 3000, "rss_lines": 3000,
        "rounds": 1}


def test_every_section_reports_rates_and_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raw_log_path("HDFS").stat()
    except (DataMissing, FileNotFoundError) as exc:  # CI copies shared/data beside the clone; a bare checkout has none
        pytest.skip(str(exc))
    args = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]
    assert throughput.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(throughput.SECTIONS) <= set(report)
    for case in ("hdfs", "loghub_2k_mixed"):
        section = report["inprocess"][case]
        assert section["windows"] > 0
        for kind in ("pipeline", "drain3", "drain3_our_masking"):
            assert section["lines_per_s"][kind]["cpu"] > 0
        assert section["ratio_vs_drain3"]["cpu"] > 0
    assert report["inprocess"]["hdfs"]["lines"] == TINY["hdfs_lines"]
    mixed = report["inprocess"]["loghub_2k_mixed"]
    assert mixed["lines"] == TINY["loghub_lines"] * len(mixed["systems"])
    process = report["detect_process"]
    assert process["drain3_process"]["lines"] == process["lines"] == TINY["process_lines"]
    assert process["ratio_vs_drain3"]["wall"] > 0 and process["logwarden_detect"]["cpu_s"] > 0
    assert report["train_rss"]["lines"] == TINY["rss_lines"] and report["train_rss"]["peak_rss_under_1_gib"]


def test_help_and_unknown_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        throughput.main(["--help"])
    assert done.value.code == 0 and "--quick" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        throughput.main(["--sections", "nonsense"])


def test_each_pipeline_run_starts_with_cold_masking_memos(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``detect`` starts with empty memos: a benchmark run must not inherit those of training or of the
    runs before it (the module-level shape and token memos outlive a miner)."""
    from pipeline.stages import masking

    seen: list[int] = []
    case = throughput.Case("tiny", throughput._raw_lines([b"blk_1 served 10 bytes", b"blk_2 served 12 bytes"]),
                           throughput.HDFS_SETTINGS, None)
    masking.mask_message("warm 123 memo")
    assert len(masking._SHAPE_MEMO) > 0

    def fake_detect(*args: object, **kwargs: object) -> tuple[list[object], object]:
        seen.append(len(masking._SHAPE_MEMO))
        return [], type("Stats", (), {"anomalies": 0, "windows": 0})()

    monkeypatch.setattr("pipeline.embedded.detect", fake_detect)
    case.pipeline()
    assert seen == [0]
