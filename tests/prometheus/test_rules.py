"""``promtool check rules`` and ``promtool test rules`` on prometheus/, and the rules' metrics exist in the worker.

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it). Without it the promtool tests skip
on a developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from pipeline.stream.metrics import WorkerMetrics
from tests.observability import RULE_TESTS, RULES, metric_names, rule_exprs


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is missing (CI=true never skips; apt-get install prometheus)", pytrace=False)
        pytest.skip("promtool is missing: apt-get install prometheus")
    return path


def test_promtool_check_rules(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    done = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    # The same tests against rules that fire later than they should: promtool must report failures.
    rules = RULES.read_text(encoding="utf-8").replace("for: 2m", "for: 4m")
    (tmp_path / "logwarden-rules.yml").write_text(rules)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yml").write_text(RULE_TESTS.read_text(encoding="utf-8"))
    done = subprocess.run([promtool, "test", "rules", str(tmp_path / "tests" / "t.yml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "LogwardenWorkerDown" in done.stdout + done.stderr


def test_every_alert_has_a_unit_test_and_a_severity() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
              for case in test.get("alert_rule_test", [])}
    assert set(alerts) == tested
    assert all(rule["labels"]["severity"] in ("critical", "warning") for rule in alerts.values())
    for needed in ("LogwardenWorkerDown", "LogwardenConsumerLagGrowing", "LogwardenNoRecords",
                   "LogwardenDeadLettersRising", "LogwardenElasticsearchFailures", "LogwardenSinkDown",
                   "LogwardenPartitionsPaused", "LogwardenModelReloadRefused"):
        assert needed in alerts


def test_every_metric_the_rules_use_is_exported_by_the_worker() -> None:
    metrics = WorkerMetrics()
    metrics.expect_topics(["logs"])
    metrics.lag.labels("logs", "0").set(0)
    exported = {line.split("{")[0].split(" ")[0] for line in generate_latest(metrics.registry).decode().splitlines()
                if line and not line.startswith("#")}
    used = metric_names(rule_exprs()) - {"up"}
    assert used and used <= exported, used - exported
