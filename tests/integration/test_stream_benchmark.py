"""Smoke test of ``benchmarks/stream_throughput.py`` against the real servers, at small sizes (about 1-2 min).

It checks that every figure is measured from what really happened (all records read, anomalies indexed and
found by polling Elasticsearch, the windows held open) and that the run leaves no topic, group or index
behind, not the figures themselves (timings on a shared 2-core machine are the benchmark's business).
"""

from __future__ import annotations

import math

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from benchmarks import stream_throughput

pytestmark = pytest.mark.integration

SIZES = {"records": 2_000, "latency_lines": 1_200, "latency_rate": 400.0, "open_windows": 1_500}


def test_the_stream_benchmark_measures_every_figure_and_cleans_up(
        kafka_bootstrap: str, es_url: str, kafka_admin: KafkaAdminClient, es_client: Elasticsearch) -> None:
    found = stream_throughput.run(bootstrap=kafka_bootstrap, es_url=es_url, sizes=SIZES)
    for part in ("throughput", "latency", "memory"):
        assert "error" not in found[part], found[part]
    through = found["throughput"]
    plain = through["plain_read_kafka-python"]
    assert plain["records"] == plain["decoded"] == through["records"] == SIZES["records"]
    for label, workers in (("one_worker", 1), ("two_workers", 2)):
        run = through[label]
        assert len(run["records_per_worker"]) == workers and sum(run["records_per_worker"]) >= SIZES["records"]
        assert run["anomalies_indexed"] > 0 and run["lines_per_second"] > 0 and run["cpu_seconds"] >= 0
        assert 0 <= run["waited_for_a_core_seconds"] <= run["seconds"] * workers * 8  # a few threads each
    assert through["ratio_one_worker_to_plain_read"] > 0 and "CPU" in through["note"]

    latency = found["latency"]
    assert latency["anomaly_documents"] > 0
    after, since = latency["after_close_seconds"], latency["produce_to_searchable_seconds"]
    assert not math.isnan(after["p99"])
    # produced at the window's last record, closable gap + lateness later: the two differ by exactly that
    gap = latency["session_gap_seconds"] + latency["allowed_lateness_seconds"]
    assert since["p50"] - after["p50"] == pytest.approx(gap, abs=0.05)

    memory = found["memory"]
    assert memory["open_windows"] >= SIZES["open_windows"]
    assert memory["peak_rss_mb"] >= memory["rss_at_start_mb"] > 0

    run_id = found["run"]
    assert not [t for t in kafka_admin.list_topics() if t.startswith(run_id)]
    left = es_client.options(ignore_status=404).indices.get(index=f"{run_id}*", allow_no_indices=True)
    assert not left.body
