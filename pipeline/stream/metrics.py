"""Prometheus metrics of one worker (``--metrics-port``), in their own registry.

==================================================  ==========================================================
``logwarden_worker_records_total{topic}``            Kafka records read (replays after a restart count again)
``logwarden_worker_decode_errors_total{reason}``     decoder flags: invalid_utf8, truncated, not_json,
                                                     bad_timestamp, unmatched
``logwarden_worker_records_without_entity_total``    records no entity rule matched (not windowed)
``logwarden_worker_replay_skipped_total``            record parts skipped on replay: already in a flushed window
``logwarden_worker_replay_state_dropped_total``    replay-state entries left out to keep a state within its bound
``logwarden_worker_dead_letters_total{reason}``      dead letters sent, by reason
``logwarden_worker_open_windows``                    windows open across assigned partitions
``logwarden_worker_windows_scored_total``            windows closed and scored
``logwarden_worker_windows_closed_idle_total``       windows closed because their entity was quiet (processing time)
``logwarden_worker_unseen_template_lines_total``     lines of scored windows whose template the model does not know
``logwarden_worker_unseen_templates_folded_total``   of those, lines counted under a window's one "other" id
                                                     (past the distinct unseen templates a window keeps)
``logwarden_worker_template_catalog_dropped_total``  lines of unknown templates the template catalog left out
                                                     (its pending set was full: high-cardinality junk)
``logwarden_worker_anomalies_indexed_total``         anomaly documents Elasticsearch acknowledged
``logwarden_worker_bulk_seconds``                    histogram of sink flush latency (failed attempts too)
``logwarden_worker_bulk_failures_total``             flushes that failed (Elasticsearch down or refusing)
``logwarden_worker_partition_lag{topic,partition}``  high watermark minus next offset to read
``logwarden_worker_committed_offset{topic,partition}``  last offset this worker committed
``logwarden_worker_commits_total``                   successful offset commits
``logwarden_worker_sink_up``                         1 while the last flush worked, 0 during an outage
``logwarden_worker_paused``                          1 while partitions are paused for back-pressure
``logwarden_worker_assigned_partitions``             partitions this worker owns
``logwarden_model_info{version,created}``            the model version in use
``logwarden_worker_model_info{version}``             the model version serving (set on start and on each reload)
``logwarden_worker_model_reloads_total``             model reloads that took effect
``logwarden_worker_model_reloads_refused_total{reason}``  reloads refused (the old model keeps serving)
==================================================  ==========================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Label values created at start, so that every series exists at 0 and ``increase()`` in an alert rule sees the
# first event (a counter series that appears at 1 has no earlier sample to increase from).
DEAD_LETTER_REASONS = ("invalid_utf8", "truncated", "not_json", "stage_error", "es_rejected")
DECODE_FLAGS = ("invalid_utf8", "truncated", "not_json", "bad_timestamp", "unmatched", "stage_error")
RELOAD_REFUSALS = ("checksum", "untrusted_type", "incompatible_settings", "load_error")
BULK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter("logwarden_worker_records", "Kafka records read.", ["topic"], registry=r)
        self.decode_errors = Counter("logwarden_worker_decode_errors", "Records the decoder flagged, by flag.",
                                     ["reason"], registry=r)
        self.no_entity = Counter("logwarden_worker_records_without_entity", "Records with no entity (not windowed).",
                                 registry=r)
        self.replay_skipped = Counter("logwarden_worker_replay_skipped",
                                      "Record parts skipped on replay (already in a flushed window).", registry=r)
        self.replay_state_dropped = Counter(
            "logwarden_worker_replay_state_dropped",
            "Replay-state entries left out (oldest first) to keep a saved state within its byte bound.", registry=r)
        self.multiline_records = Counter(
            "logwarden_worker_multiline_records", "Records joined from several lines (stack traces).", registry=r)
        self.multiline_lines = Counter("logwarden_worker_multiline_lines", "Lines joined into multi-line records.",
                                       registry=r)
        self.dead_letters = Counter("logwarden_worker_dead_letters", "Dead letters sent, by reason.", ["reason"],
                                    registry=r)
        self.open_windows = Gauge("logwarden_worker_open_windows", "Windows open across assigned partitions.",
                                  registry=r)
        self.windows_scored = Counter("logwarden_worker_windows_scored", "Windows closed and scored.", registry=r)
        self.windows_closed_idle = Counter("logwarden_worker_windows_closed_idle",
                                           "Windows closed because their entity was quiet (processing time).",
                                           registry=r)
        self.unseen_template_lines = Counter(
            "logwarden_worker_unseen_template_lines",
            "Lines of scored windows whose template the model does not know (new code, or junk).", registry=r)
        self.unseen_templates_folded = Counter(
            "logwarden_worker_unseen_templates_folded",
            "Unseen-template lines counted under a window's one 'other' id (past the distinct unseen templates "
            "a window keeps).", registry=r)
        self.template_catalog_dropped = Counter(
            "logwarden_worker_template_catalog_dropped",
            "Lines of unknown templates the template catalog left out (its pending set was full).", registry=r)
        self.anomalies_indexed = Counter("logwarden_worker_anomalies_indexed",
                                         "Anomaly documents Elasticsearch acknowledged.", registry=r)
        self.bulk_seconds = Histogram("logwarden_worker_bulk_seconds", "Sink flush latency (failed attempts too).",
                                      buckets=BULK_BUCKETS, registry=r)
        self.bulk_failures = Counter("logwarden_worker_bulk_failures", "Sink flushes that failed.", registry=r)
        self.lag = Gauge("logwarden_worker_partition_lag", "High watermark minus next offset to read.",
                         ["topic", "partition"], registry=r)
        self.committed = Gauge("logwarden_worker_committed_offset", "Last offset committed by this worker.",
                               ["topic", "partition"], registry=r)
        self.commits = Counter("logwarden_worker_commits", "Successful offset commits.", registry=r)
        self.state_topic_writes = Counter(
            "logwarden_worker_state_topic_writes",
            "Replay states too large for commit metadata, written to the compacted state topic.", registry=r)
        self.partitions_lost = Counter(
            "logwarden_worker_partitions_lost",
            "Partitions taken away without a revocation (session or max.poll.interval.ms expired).", registry=r)
        self.sink_up = Gauge("logwarden_worker_sink_up", "1 while Elasticsearch takes documents.", registry=r)
        self.paused = Gauge("logwarden_worker_paused", "1 while partitions are paused for back-pressure.",
                            registry=r)
        self.assigned = Gauge("logwarden_worker_assigned_partitions", "Partitions owned by this worker.", registry=r)
        self.model = Info("logwarden_model", "Model version in use.", registry=r)
        self.model_info = Info("logwarden_worker_model", "Model version serving.", registry=r)
        self.model_reloads = Counter("logwarden_worker_model_reloads", "Model reloads that took effect.", registry=r)
        self.model_reloads_refused = Counter("logwarden_worker_model_reloads_refused",
                                             "Model reloads refused (the old model keeps serving), by reason.",
                                             ["reason"], registry=r)
        self.sink_up.set(1)
        for counter, values in ((self.dead_letters, DEAD_LETTER_REASONS), (self.decode_errors, DECODE_FLAGS),
                                (self.model_reloads_refused, RELOAD_REFUSALS)):
            for value in values:
                counter.labels(value)

    def set_model(self, version: str, created: str = "") -> None:
        self.model.info({"version": version, "created": created})
        self.model_info.info({"version": version})

    def expect_topics(self, topics: Iterable[str]) -> None:
        """Create the per-topic record counters at 0: "no records" alerts need a series that stays flat."""
        for topic in topics:
            self.records.labels(topic)

    def totals(self) -> dict[str, float]:
        """Counter totals (summed over labels) for the worker's exit summary."""
        names = {"records": self.records, "replay_skipped": self.replay_skipped, "no_entity": self.no_entity,
                 "windows_scored": self.windows_scored, "anomalies_indexed": self.anomalies_indexed,
                 "dead_letters": self.dead_letters, "decode_errors": self.decode_errors, "commits": self.commits,
                 "multiline_records": self.multiline_records, "state_topic_writes": self.state_topic_writes,
                 "partitions_lost": self.partitions_lost, "unseen_template_lines": self.unseen_template_lines,
                 "unseen_templates_folded": self.unseen_templates_folded,
                 "template_catalog_dropped": self.template_catalog_dropped}
        totals: dict[str, float] = {}
        for name, metric in names.items():
            totals[name] = sum(s.value for family in metric.collect() for s in family.samples
                               if s.name.endswith("_total"))
        return totals

    def forget_partition(self, topic: str, partition: int) -> None:
        for gauge in (self.lag, self.committed):
            with contextlib.suppress(KeyError):
                gauge.remove(topic, str(partition))
