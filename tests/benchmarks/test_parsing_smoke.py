"""Smoke test of the parsing benchmark on a small slice (300 lines) of every Loghub-2k system.

The real figures live in ``python -m benchmarks.parsing``; this only checks that the benchmark runs end
to end and prints JSON, and that our default miner is far from broken: the floor (mean GA >= 0.75) sits
well below the goal (0.95 on the full samples).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.loghub import SYSTEMS
from benchmarks.parsing import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_small_slice_of_every_system(
    loghub_2k: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGWARDEN_DATA", str(loghub_2k.parent))
    result = run_json(capsys, "--limit", "300")
    assert set(result["systems"]) == set(SYSTEMS)
    for row in result["systems"].values():
        assert row["lines"] == 300
        assert 0.0 <= row["drain3"]["ga"] <= 1.0 and 0.0 <= row["ours"]["ga"] <= 1.0
        assert row["ours"]["learn_lines_per_s"] > 0 and row["ours"]["match_lines_per_s"] > 0
        assert 0.0 <= row["baseline"]["ga"] <= 1.0
        assert set(row["ablation"]) == {"no_few_words", "no_fixed_digits", "no_first_word_merge"}
    assert result["baseline_config"]["split_frequent"] is False and result["config"]["split_frequent"] is True
    assert result["summary"]["learn_speed_ratio"] > 0 and result["summary"]["match_speed_ratio"] > 0
    assert result["summary"]["ours_mean_ga"] >= 0.75
    assert result["summary"]["ours_min_ga"] >= 0.5


def test_table_then_json(loghub_2k: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOGWARDEN_DATA", str(loghub_2k.parent))
    assert main(["--systems", "Apache", "--limit", "50"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("system") and any(line.startswith("Apache") for line in lines)
    assert json.loads(lines[-1])["systems"]["Apache"]["lines"] == 50


def test_missing_data_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGWARDEN_DATA", str(tmp_path))
    assert main(["--limit", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loghub-2k data not found") and len(err.strip().splitlines()) == 1


def test_bad_limit_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--limit", "0"])
    assert exc.value.code == 2
    assert "--limit must be a positive number" in capsys.readouterr().err


def test_baseline_and_ours_side_by_side_on_full_linux(
    loghub_2k: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Linux's user= field is the case the few-words rule exists for: the run must show it, in one table."""
    monkeypatch.setenv("LOGWARDEN_DATA", str(loghub_2k.parent))
    row = run_json(capsys, "--systems", "Linux")["systems"]["Linux"]
    assert row["ours"]["ga"] > row["baseline"]["ga"]
    assert row["ablation"]["no_few_words"] == row["baseline"]["ga"]
    assert row["ours"]["digit_words_kept"] > row["baseline"]["digit_words_kept"]
