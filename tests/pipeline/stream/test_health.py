"""The worker's HTTP endpoints: /healthz, /readyz with its reason, /metrics from the worker's registry."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline.stream.health import HealthServer
from pipeline.stream.metrics import WorkerMetrics


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_endpoints() -> None:
    metrics = WorkerMetrics()
    metrics.records.labels("logs").inc(7)
    metrics.set_model("20240101T000000Z-abc123", "2024-01-01T00:00:00+00:00")
    state = {"ready": (False, "no partitions assigned")}
    server = HealthServer(metrics.registry, lambda: state["ready"], 0, host="127.0.0.1")
    try:
        assert get(server.port, "/healthz") == (200, b"ok\n")
        status, body = get(server.port, "/readyz")
        assert status == 503 and json.loads(body) == {"ready": False, "reason": "no partitions assigned"}
        state["ready"] = (True, "4 partitions")
        assert get(server.port, "/readyz")[0] == 200
        status, body = get(server.port, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'logwarden_worker_records_total{topic="logs"} 7.0' in text
        assert 'logwarden_model_info{created="2024-01-01T00:00:00+00:00",version="20240101T000000Z-abc123"} 1.0' in text
        assert "logwarden_worker_bulk_seconds_bucket" in text and "logwarden_worker_partition_lag" in text
    finally:
        server.close()


def test_totals_sum_counters_over_labels() -> None:
    metrics = WorkerMetrics()
    metrics.dead_letters.labels("truncated").inc()
    metrics.dead_letters.labels("not_json").inc(2)
    metrics.records.labels("a").inc(3)
    totals = metrics.totals()
    assert totals["dead_letters"] == 3 and totals["records"] == 3 and totals["anomalies_indexed"] == 0


def test_healthz_follows_the_loop_not_just_the_process() -> None:
    metrics = WorkerMetrics()
    state = {"alive": (True, "ok")}
    server = HealthServer(metrics.registry, lambda: (True, "x"), 0, host="127.0.0.1", alive=lambda: state["alive"])
    try:
        assert get(server.port, "/healthz") == (200, b"ok\n")
        state["alive"] = (False, "no completed poll for 75 s")
        assert get(server.port, "/healthz") == (503, b"no completed poll for 75 s\n")
    finally:
        server.close()
