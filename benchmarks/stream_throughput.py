"""Stream figures of one run, side by side: worker vs plain client, two workers vs one, latency, memory.

Against the real Kafka and Elasticsearch of ``scripts/services up`` (unique topic, group and index names, deleted
afterwards). Records are Filebeat-style ECS JSON of real HDFS lines (:mod:`benchmarks.stream_support`), keyed by
block id, on a 4-partition topic; the model is trained with ``logwarden train`` on one copy of the sample.

1. **throughput**: ``logwarden worker --format json`` on the pre-filled topic, lines/s from its first record to its
   last (``/metrics``), next to a plain consumer of the same client and settings
   (:func:`pipeline.stream.context.consumer_config`) that only reads the topic and ``json.loads`` every value
   (and, when ``confluent-kafka`` is installed, the same plain read with that client): the ratio is the figure.
2. **scaling**: two workers in one group against one: lines/s, and CPU seconds per million lines (utime+stime
   from ``/proc`` of the worker processes between the first and the last record). On 2 cores shared with Kafka
   and Elasticsearch the two workers compete with the servers for CPU, so **CPU per line is the honest scaling
   figure**; lines/s shows what the cores allowed.
3. **latency**: the sample produced at a steady rate with ``@timestamp`` = produce time, the model's 60 s session
   gap and 5 s lateness scaled by the same factor as the sample's time (so the windows are the sample's); every
   anomaly document is polled for in Elasticsearch (no forced refresh). ``produce_to_searchable``: from the
   produce time of the window's last record; ``after_close``: from the moment the window could close (its last
   event + gap + allowed lateness). Goal: ``after_close`` p99 <= 2 s.
4. **memory**: peak RSS (``VmHWM``) of a worker holding N open entity windows (N different blocks within 10 s).

Prints one JSON document. Usage::

    python -m benchmarks.stream_throughput             # 100,000 records, 100,000 open windows (a few minutes)
    python -m benchmarks.stream_throughput --quick     # small sizes (about a minute)

Data: HDFS_v1 block sessions from Loghub (https://github.com/logpai/loghub; Zhu et al., ISSRE 2023).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import stream_support as ss

IDLE_EXIT = 3.0
# Several workers: the first may read a small topic alone before the others joined (start-up takes seconds on a
# loaded machine), so it waits longer before leaving, or the group would never hold them all at once.
GROUP_IDLE_EXIT = 20.0
SESSION_GAP, LATENESS = 60.0, 5.0  # the model's (as the worker integration tests train it)
MAX_SESSION = 3600.0  # the default --max-session
FULL: dict[str, float] = {"records": 100_000, "latency_lines": 19_473, "latency_rate": 1000.0, "open_windows": 100_000}
QUICK: dict[str, float] = {"records": 6_000, "latency_lines": 3_000, "latency_rate": 600.0, "open_windows": 5_000}
CPU_NOTE = ("2 cores are shared by the workers, Kafka and Elasticsearch (and whatever else runs): lines/s of two "
            "workers shows what the cores allowed; CPU seconds per million lines is the honest scaling figure")


def _cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ss.REPO_ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"logwarden {args[0]} failed:\n{done.stderr[-2000:]}")


def _worker_args(topic: str, group: str, prefix: str, model: Path, bootstrap: str, es_url: str,
                 *extra: str) -> list[str]:
    return ["--topic", topic, "--group-id", group, "--index-prefix", prefix, "--model-dir", str(model),
            "--bootstrap-servers", bootstrap, "--es-url", es_url, "--format", "json", *extra]


def _watch(workers: list[ss.Worker], lines: int, timeout: float, idle_exit: float = IDLE_EXIT) -> dict[str, Any]:
    """Poll the workers until they exit; the figures cover the span in which every worker owned partitions.

    From the first moment all workers hold partitions (the group has settled; a worker that started sooner
    may have read alone before) to the last increase of the records read: the records read in that span
    (re-reads after the rebalance included: they are work done) and the CPU the workers used in it.
    """
    settled = last = None
    at_settled: tuple[float, list[float], list[float]] = (0.0, [], [])
    at_last: tuple[float, list[float], list[float]] = (0.0, [], [])
    counts = [0.0] * len(workers)
    deadline = time.monotonic() + timeout
    while any(w.proc.poll() is None for w in workers):
        if time.monotonic() > deadline:
            for w in workers:
                w.close()
            raise SystemExit(f"workers did not finish within {timeout} s:\n{workers[0].text()[-3000:]}")
        cpus = [ss.cpu_seconds(w.pid) or 0.0 for w in workers]
        waits = [(ss.sched_seconds(w.pid) or (0.0, 0.0))[1] for w in workers]
        scraped = [w.metrics() for w in workers]
        now = time.monotonic()
        before = sum(counts)
        counts = [max(c, m.get("logwarden_worker_records_total", 0.0)) for c, m in zip(counts, scraped, strict=True)]
        owned = [m.get("logwarden_worker_assigned_partitions", 0.0) for m in scraped]
        if settled is None and all(owned) and sum(owned) >= 4:
            settled, at_settled = now, (before, cpus, waits)
        if settled is not None and sum(counts) > before:
            last, at_last = now, (sum(counts), cpus, waits)
        time.sleep(0.05)
    end = time.monotonic()
    codes = [w.proc.returncode for w in workers]
    if any(codes) or settled is None or last is None or sum(counts) < lines:
        raise SystemExit(f"worker failed ({codes}, read {counts} of {lines}):\n{workers[0].text()[-3000:]}")
    span = max(last - settled, 1e-3)
    measured = at_last[0] - at_settled[0]
    cpu = sum(b - a for a, b in zip(at_settled[1], at_last[1], strict=True))
    waited = sum(b - a for a, b in zip(at_settled[2], at_last[2], strict=True))
    return {"lines": lines, "measured_lines": int(measured), "lines_per_second": round(measured / span, 1),
            "seconds": round(span, 2), "cpu_seconds": round(cpu, 2),
            "cpu_seconds_per_million_lines": round(cpu / max(measured, 1) * 1e6, 1),
            "waited_for_a_core_seconds": round(waited, 2),
            "read_before_group_settled": int(at_settled[0]),
            "whole_process_seconds": round(end - min(w.started for w in workers) - idle_exit, 2),
            "records_per_worker": [int(n) for n in counts],
            "anomalies_indexed": sum(int(w.summary().get("anomalies_indexed", 0)) for w in workers)}


def _plain_read(client: str, topic: str, group: str, lines: int, bootstrap: str) -> dict[str, Any]:
    """A plain consumer in its own process (like the worker): read and decode every record of ``topic``."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.stream_throughput", "read", "--client", client,
                           "--topic", topic, "--group", group, "--expect", str(lines), "--bootstrap-servers",
                           bootstrap], cwd=ss.REPO_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"plain read ({client}) failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def read_topic(client: str, topic: str, group: str, expect: int, bootstrap: str) -> dict[str, Any]:
    """Read ``expect`` records and ``json.loads`` each value; lines/s and CPU from the first record to the last."""
    from pipeline.config import WorkerOptions  # noqa: PLC0415

    opts = WorkerOptions(topics=(topic,), group_id=group, bootstrap_servers=bootstrap)
    if client == "kafka-python":
        from kafka import KafkaConsumer  # noqa: PLC0415

        from pipeline.stream.context import consumer_config  # noqa: PLC0415

        consumer = KafkaConsumer(**consumer_config(opts))
        consumer.subscribe([topic])

        def batch() -> list[bytes]:
            got = consumer.poll(timeout_ms=500, max_records=opts.max_poll_records)
            return [record.value for records in got.values() for record in records]
    else:
        from confluent_kafka import Consumer  # noqa: PLC0415

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe([topic])

        def batch() -> list[bytes]:
            got = consumer.consume(num_messages=opts.max_poll_records, timeout=0.5)
            return [m.value() for m in got if m.error() is None]
    started = time.monotonic()
    count, first, cpu_first, decoded = 0, 0.0, 0.0, 0
    while count < expect and time.monotonic() - started < 300:
        values = batch()
        if values and not count:
            first, cpu_first = time.monotonic(), time.process_time()
        for value in values:
            decoded += isinstance(json.loads(value), dict)
        count += len(values)
    span, cpu = max(time.monotonic() - first, 1e-3), time.process_time() - cpu_first
    consumer.close()
    return {"client": client, "records": count, "decoded": decoded, "lines_per_second": round(count / span, 1),
            "seconds": round(span, 2), "cpu_seconds_per_million_lines": round(cpu / max(count, 1) * 1e6, 1)}


def _has_confluent() -> bool:
    try:
        import confluent_kafka  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _throughput(work: Path, name: str, model: Path, records: int, bootstrap: str, es_url: str,
                created: dict[str, list[str]]) -> dict[str, Any]:
    topic = f"{name}-in"
    created["topics"].append(topic)
    started = time.monotonic()
    lines = ss.fill_topic(bootstrap, topic, 4, ss.copies(ss.sample_lines(), records, seed=14))
    fill = time.monotonic() - started
    out: dict[str, Any] = {"records": lines, "partitions": 4, "fill_seconds": round(fill, 2)}
    reads = {"kafka-python": f"{name}-read"}
    if _has_confluent():
        reads["confluent-kafka"] = f"{name}-read-ck"
    for client, group in reads.items():
        created["groups"].append(group)
        out[f"plain_read_{client}"] = _plain_read(client, topic, group, lines, bootstrap)
    runs = {"one_worker": [f"{name}-w1"], "two_workers": [f"{name}-w2", f"{name}-w2"]}
    for label, groups in runs.items():
        group = groups[0]
        created["groups"].append(group)
        created["prefixes"].append(group)
        idle = IDLE_EXIT if len(groups) == 1 else GROUP_IDLE_EXIT
        workers = [ss.Worker(work, f"{label}-{i}", _worker_args(topic, group, group, model, bootstrap, es_url,
                                                                 "--exit-when-idle", f"{idle}s"))
                   for i in range(len(groups))]
        try:
            out[label] = _watch(workers, lines, timeout=900, idle_exit=idle)
        finally:
            for w in workers:
                w.close()
    plain = out["plain_read_kafka-python"]["lines_per_second"]
    one, two = out["one_worker"], out["two_workers"]
    out["ratio_one_worker_to_plain_read"] = round(one["lines_per_second"] / plain, 3)
    # CPU per line does not depend on what else the 2 cores run at the time: the load-independent ratio.
    out["cpu_ratio_plain_read_to_one_worker"] = round(
        out["plain_read_kafka-python"]["cpu_seconds_per_million_lines"] / one["cpu_seconds_per_million_lines"], 3)
    out["ratio_two_workers_to_one"] = round(two["lines_per_second"] / one["lines_per_second"], 3)
    out["cpu_per_line_two_vs_one"] = round(two["cpu_seconds_per_million_lines"] /
                                           one["cpu_seconds_per_million_lines"], 3)
    out["note"] = CPU_NOTE
    return out


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _latency(work: Path, name: str, model: Path, count: int, rate: float, bootstrap: str, es_url: str,
             created: dict[str, list[str]]) -> dict[str, Any]:
    from elasticsearch import Elasticsearch  # noqa: PLC0415

    from pipeline.sources.kafka import ensure_topics, make_producer  # noqa: PLC0415

    lines = ss.sample_lines()[:count]
    span = (ss.line_time(lines[-1]) - ss.line_time(lines[0])).total_seconds() or 1.0
    factor = rate / (len(lines) / span)  # log seconds per wall second
    gap, lateness = SESSION_GAP / factor, LATENESS / factor
    topic = group = f"{name}-lat"
    created["topics"].append(topic)
    created["groups"].append(group)
    created["prefixes"].append(group)
    ensure_topics(bootstrap, {topic: (4, {})})
    worker = ss.Worker(work, "latency", _worker_args(
        topic, group, group, model, bootstrap, es_url, "--session-gap", f"{gap * 1000:.0f}ms",
        "--allowed-lateness", f"{lateness * 1000:.0f}ms",
        "--max-session", f"{MAX_SESSION / factor:.1f}s", "--exit-when-idle", f"{2 * (gap + lateness) + 3:.1f}s"))
    seen: dict[str, tuple[float, dict[str, Any]]] = {}
    stop = threading.Event()
    es = Elasticsearch(es_url, request_timeout=10).options(ignore_status=404)

    def poll() -> None:
        while not stop.is_set():
            try:
                found = es.search(index=f"{group}-anomalies*", size=10_000, source=["window"])
                now = time.time()
                for hit in found.body.get("hits", {}).get("hits", []):
                    seen.setdefault(hit["_id"], (now, hit["_source"]["window"]))
            except Exception:  # noqa: BLE001 - the index does not exist yet, or a slow answer: poll again
                pass
            stop.wait(0.1)

    try:
        deadline = time.monotonic() + 120
        while worker.metrics().get("logwarden_worker_assigned_partitions", 0) < 4:
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"latency worker did not get its partitions:\n{worker.text()[-3000:]}")
            time.sleep(0.1)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        producer = make_producer(bootstrap, linger_ms=5)
        rng = ss.random.Random(14)
        start = time.monotonic()
        backlog = 0.0  # records produced but not yet read by the worker, sampled twice a second
        for i, line in enumerate(lines):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            producer.send(topic, value=ss.ecs_record(line, time.time(), i * 160, rng), key=ss.key_of(line))
            if i % max(1, int(rate / 2)) == 0:
                backlog = max(backlog, i - worker.records())
        producer.flush()
        achieved = len(lines) / (time.monotonic() - start)
        producer.close()
        worker.wait(timeout=300)
        time.sleep(3.0)  # documents of the final flush become searchable
    finally:
        stop.set()
        worker.close()
    after, since_produce, early = [], [], 0
    for found_at, window in seen.values():
        start_t, end_t = _iso(window["start"]), _iso(window["end"])
        closable = min(end_t + gap, start_t + MAX_SESSION / factor) + lateness
        after.append(found_at - closable)
        since_produce.append(found_at - end_t)
        early += found_at < closable
    return {"lines": len(lines), "rate_lines_per_second": rate, "achieved_rate": round(achieved, 1),
            "time_factor": round(factor, 2), "session_gap_seconds": round(gap, 3),
            "allowed_lateness_seconds": round(lateness, 3), "anomaly_documents": len(seen),
            "max_backlog_seconds": round(backlog / rate, 2),
            "after_close_seconds": _quantiles(after), "produce_to_searchable_seconds": _quantiles(since_produce),
            "goal": "after_close p99 <= 2 s", "met": bool(after) and _quantiles(after)["p99"] <= 2.0}


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"p50": round(cuts[49], 3), "p99": round(cuts[98], 3), "max": round(max(values), 3)}


def _memory(work: Path, name: str, model: Path, count: int, bootstrap: str, es_url: str,
            created: dict[str, list[str]]) -> dict[str, Any]:
    topic = group = f"{name}-mem"
    created["topics"].append(topic)
    created["groups"].append(group)
    created["prefixes"].append(group)
    ss.fill_topic(bootstrap, topic, 4, ss.distinct_entities(ss.sample_lines(), count, seed=14))
    # No idle close while the topic is read: windows opened first must still be open when the last one opens.
    worker = ss.Worker(work, "memory", _worker_args(topic, group, group, model, bootstrap, es_url,
                                                    "--idle-close", "1h"))
    baseline: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 600
        while True:
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"memory worker stopped early:\n{worker.text()[-3000:]}")
            totals = worker.metrics()
            if totals and not baseline:
                baseline = ss.memory_mb(worker.pid)
            if totals.get("logwarden_worker_records_total", 0) >= count:
                time.sleep(1.0)  # the last batch's windows are counted after it is processed
                break
            time.sleep(0.1)
        held = ss.memory_mb(worker.pid)
        open_windows = int(worker.metrics().get("logwarden_worker_open_windows", 0))
        worker.terminate()
        worker.wait(timeout=120)
    finally:
        worker.close()
    peak = held.get("VmHWM", 0.0)
    per_window = (peak - baseline.get("VmHWM", 0.0)) * 1024 * 1024 / max(open_windows, 1)
    return {"open_windows": open_windows, "peak_rss_mb": peak, "rss_at_start_mb": baseline.get("VmHWM"),
            "bytes_per_open_window": round(per_window), "goal": "<= 500 MB", "met": peak <= 500}


def run(quick: bool = False, bootstrap: str = "127.0.0.1:9092", es_url: str = "http://127.0.0.1:9200",
        parts: tuple[str, ...] = ("throughput", "latency", "memory"), records: int | None = None,
        open_windows: int | None = None, sizes: dict[str, float] | None = None) -> dict[str, Any]:
    """Every stream figure of one run as a dict (what ``benchmarks/throughput.py`` embeds).

    ``sizes`` overrides entries of :data:`FULL` / :data:`QUICK` (``records``, ``latency_lines``,
    ``latency_rate``, ``open_windows``); the smoke test runs smaller still.
    """
    chosen = {**(QUICK if quick else FULL), **(sizes or {})}
    if records:
        chosen["records"] = records
    if open_windows:
        chosen["open_windows"] = open_windows
    sizes = chosen
    name = f"lw-bench-stream-{uuid.uuid4().hex[:8]}"
    created: dict[str, list[str]] = {"topics": [], "groups": [], "prefixes": []}
    result: dict[str, Any] = {"benchmark": "stream_throughput", "run": name, "quick": quick,
                              "python": sys.version.split()[0],
                              "confluent_kafka": _has_confluent()}
    with tempfile.TemporaryDirectory(prefix="lw-bench-stream-") as tmp:
        work = Path(tmp)
        train_file = work / "train.jsonl"
        ss.write_file(train_file, ss.copies(ss.sample_lines(), len(ss.sample_lines()), seed=14))
        model = work / "model"
        _cli("train", str(train_file), "--model-dir", str(model), "--entity-regex", ss.ENTITY_REGEX,
             "--session-gap", f"{SESSION_GAP:.0f}s", "--allowed-lateness", f"{LATENESS:.0f}s")
        steps = {
            "throughput": lambda: _throughput(work, name, model, int(sizes["records"]), bootstrap, es_url, created),
            "latency": lambda: _latency(work, name, model, int(sizes["latency_lines"]), float(sizes["latency_rate"]),
                                        bootstrap, es_url, created),
            "memory": lambda: _memory(work, name, model, int(sizes["open_windows"]), bootstrap, es_url, created),
        }
        try:
            for part, measure in steps.items():
                if part in parts:
                    try:
                        result[part] = measure()
                    except SystemExit as exc:  # one part failing keeps the figures of the others
                        result[part] = {"error": str(exc)[-3000:]}
        finally:
            ss.cleanup(bootstrap, es_url, **created)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_throughput",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    reader = sub.add_parser("read", help="(internal) the plain consumer of part 1, in its own process")
    reader.add_argument("--client", choices=("kafka-python", "confluent-kafka"), default="kafka-python")
    reader.add_argument("--topic", required=True)
    reader.add_argument("--group", required=True)
    reader.add_argument("--expect", type=int, required=True)
    reader.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--parts", default="throughput,latency,memory", help="comma-separated subset")
    parser.add_argument("--records", type=int, help="records on the throughput topic (default 100,000)")
    parser.add_argument("--open-windows", type=int, help="open windows for the memory figure (default 100,000)")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    args = parser.parse_args(argv)
    if args.command == "read":
        found = read_topic(args.client, args.topic, args.group, args.expect, args.bootstrap_servers)
    else:
        found = run(args.quick, args.bootstrap_servers, args.es_url, tuple(args.parts.split(",")), args.records,
                    args.open_windows)
    print(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
