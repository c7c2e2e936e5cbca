"""A real Prometheus server (Debian's ``prometheus`` package) scrapes a running worker and loads our rules; every
metric name the rules and the Grafana dashboards use exists in what it scraped."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import unavailable
from tests.integration.worker_support import (
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    expected,
    free_port,
    replay_now,
    wait_for,
    worker_args,
)
from tests.observability import DASHBOARDS, RULES, dashboard_exprs, metric_names, rule_exprs

pytestmark = pytest.mark.integration


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return None
    return body.get("data") if body.get("status") == "success" else None


def _scraped(port: int, query: str) -> bool:
    result = (_api(port, "query", query=query) or {}).get("result") or []
    return bool(result) and result[0]["value"][1] == "1"


def test_prometheus_scrapes_every_metric_the_rules_and_dashboards_use(
    kafka_bootstrap: str, es_url: str, kafka_topic_factory: Callable[..., str], kafka_group_id: str,
    cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("the prometheus binary is missing (apt-get install prometheus)")
    want = expected()
    topic = cleanup.worker_stream(kafka_topic_factory(partitions=2), kafka_group_id)
    head = tmp_path / "head.log"
    head.write_bytes(b"".join(SAMPLE.open("rb").readlines()[:3000]))
    replay_now(head, topic, kafka_bootstrap, partitions=2)
    worker = WorkerProcess(tmp_path, "worker", worker_args(topic, kafka_group_id, topic, kafka_bootstrap, es_url,
                                                          want.model_dir))
    prom_port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "logwarden-worker",
                                  "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (tmp_path / "prometheus.log").open("wb")
    argv = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}"]
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("the worker to read the stream",
                 lambda: worker.metric("logwarden_worker_records_total", topic=topic) >= 3000, 120)
        wait_for("a commit", lambda: worker.metric("logwarden_worker_commits_total") >= 1, 60)
        up = 'up{job="logwarden-worker"}'
        wait_for("Prometheus to scrape the worker", lambda: _scraped(prom_port, up), 60, 0.5)
        time.sleep(2)  # one more scrape after the commit
        names = set(_api(prom_port, "label/__name__/values", match="{job=\"logwarden-worker\"}") or [])
        rules = _api(prom_port, "rules") or {"groups": []}
        assert worker.proc.poll() is None, worker.text()[-3000:]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        worker.close()
    assert "logwarden_worker_records_total" in names, names
    loaded = {rule["name"] for group in rules["groups"] for rule in group["rules"]}
    assert len(loaded) == len(rule_exprs()) and "LogwardenSinkDown" in loaded
    used = metric_names(rule_exprs()) | metric_names(dashboard_exprs())
    if DASHBOARDS:
        assert metric_names(dashboard_exprs()) - {"up"}, "the dashboards query no metric of ours"
    missing = used - names
    assert not missing, f"used but not scraped: {sorted(missing)}"
