"""The in-process worker benchmark runs the real loop over the fakes on a few records and reports its figures."""

from __future__ import annotations

import json

import pytest

from benchmarks import worker_inprocess as wi


def test_every_part_reports_a_rate_and_the_worker_indexes_what_detect_finds(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert wi.main(["--records", "3000", "--rounds", "1", "--train-records", "3000"]) == 0
    report = json.loads(capsys.readouterr().out)
    us = report["cpu_us_per_record"]
    assert set(us) == set(wi.PARTS) and all(value > 0 for value in us.values())
    assert report["ratio_worker_to_json_loads"] > 1 and report["ratio_worker_to_detect"] > 0.1
    # the same records, the same model: the worker scores the windows detect finds and commits every offset
    assert report["worker"]["windows_scored"] == report["detect"]["windows"] > 0
    assert report["worker"]["documents"] == report["detect"]["anomalies"]
    assert report["worker"]["committed"] == 3000


def test_the_breakdown_and_a_subset_of_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert wi.main(["--records", "2000", "--rounds", "1", "--train-records", "2000", "--breakdown"]) == 0
    stages = json.loads(capsys.readouterr().out)["cpu_us_per_record"]
    assert set(stages) == set(wi.STAGES) and all(value > 0 for value in stages.values())
    assert wi.main(["--records", "1000", "--rounds", "1", "--train-records", "2000", "--parts", "json_loads"]) == 0
    assert set(json.loads(capsys.readouterr().out)["cpu_us_per_record"]) == {"json_loads"}
    with pytest.raises(SystemExit):
        wi.main(["--parts", "nonsense"])
