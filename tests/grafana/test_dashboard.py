"""The Grafana dashboard (grafana/*.json): well-formed, panels laid out on the grid, every query valid PromQL (checked
by promtool) over metrics the worker exports, and the views SREs asked for are there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from pipeline.stream.metrics import WorkerMetrics
from tests.observability import DASHBOARDS, dashboard_exprs, metric_names

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".+", "$instance": ".+"}


def _dashboard() -> dict:
    assert DASHBOARDS, "no dashboard in grafana/"
    return dict(json.loads(DASHBOARDS[0].read_text(encoding="utf-8")))


def promql() -> list[str]:
    return [e for e in dashboard_exprs() if not e.startswith("label_values(")]


def test_panels_are_well_formed_and_do_not_overlap() -> None:
    board = _dashboard()
    assert board["uid"] == "logwarden-worker" and board["schemaVersion"] >= 36
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        x0, y0, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert x0 >= 0 and x0 + w <= 24, panel["title"]
        area = {(x, y) for x in range(x0, x0 + w) for y in range(y0, y0 + h)}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names


def test_the_asked_for_views_are_there() -> None:
    used = metric_names(promql())
    for metric in ("logwarden_worker_records_total", "logwarden_worker_partition_lag", "logwarden_worker_open_windows",
                   "logwarden_worker_bulk_seconds_bucket", "logwarden_worker_dead_letters_total",
                   "logwarden_worker_anomalies_indexed_total", "logwarden_worker_model_info"):
        assert metric in used, metric


def test_every_metric_is_exported_by_the_worker() -> None:
    metrics = WorkerMetrics()
    metrics.expect_topics(["logs"])
    metrics.lag.labels("logs", "0").set(0)
    metrics.set_model("v1")
    exported = {line.split("{")[0].split(" ")[0] for line in generate_latest(metrics.registry).decode().splitlines()
                if line and not line.startswith("#")}
    used = metric_names(dashboard_exprs()) - {"up"}
    assert used <= exported, used - exported


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is missing (CI=true never skips; apt-get install prometheus)", pytrace=False)
        pytest.skip("promtool is missing: apt-get install prometheus")
    rules = []
    for n, expr in enumerate(promql()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
