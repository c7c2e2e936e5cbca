"""Worker metrics: the series alert rules and dashboards rely on exist from the start, at 0."""

from __future__ import annotations

from prometheus_client import generate_latest

from pipeline.stream.metrics import DEAD_LETTER_REASONS, RELOAD_REFUSALS, WorkerMetrics


def _samples(metrics: WorkerMetrics) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value
            for family in metrics.registry.collect() for s in family.samples}


def test_labelled_counters_exist_at_zero_before_any_event() -> None:
    metrics = WorkerMetrics()
    metrics.expect_topics(["logs", "audit"])
    samples = _samples(metrics)
    for reason in DEAD_LETTER_REASONS:
        assert samples[f"logwarden_worker_dead_letters_total[('reason', '{reason}')]"] == 0
    for reason in RELOAD_REFUSALS:
        assert samples[f"logwarden_worker_model_reloads_refused_total[('reason', '{reason}')]"] == 0
    assert samples["logwarden_worker_records_total[('topic', 'audit')]"] == 0
    assert samples["logwarden_worker_model_reloads_total[]"] == 0


def test_model_version_is_exported_under_both_names() -> None:
    metrics = WorkerMetrics()
    metrics.set_model("20261201T000000Z-abc", "2026-12-01")
    text = generate_latest(metrics.registry).decode()
    assert 'logwarden_worker_model_info{version="20261201T000000Z-abc"} 1.0' in text
    assert 'logwarden_model_info{created="2026-12-01",version="20261201T000000Z-abc"} 1.0' in text


def test_totals_are_unchanged_by_the_zero_series() -> None:
    metrics = WorkerMetrics()
    metrics.expect_topics(["logs"])
    metrics.records.labels("logs").inc(3)
    metrics.dead_letters.labels("not_json").inc()
    totals = metrics.totals()
    assert totals["records"] == 3 and totals["dead_letters"] == 1
