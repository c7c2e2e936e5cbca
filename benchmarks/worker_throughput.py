"""End-to-end throughput of one streaming worker: Kafka in, detection, anomalies into Elasticsearch.

Needs the servers of ``scripts/services up``. Steps (all through the CLI a user runs)::

    logwarden train examples/hdfs_sample.log --model-dir D --log-format '...' --entity-regex 'blk_-?\\d+'
    logwarden replay BENCH.log --topic T --partitions P --key-regex 'blk_-?\\d+'
    logwarden worker --topic T --model-dir D --exit-when-idle 3s --metrics-port ...

``BENCH.log`` is ``examples/hdfs_sample.log`` (19,473 HDFS lines, 1,000 blocks) repeated ``--copies`` times,
each copy one day later with its own block ids, so every copy is new data. The worker is timed from process
start to exit minus the idle wait (model load, group join, decoding, templates, windows, scoring, bulk
indexing and commits included), and separately from its first record to its last (``/metrics``).
Prints one JSON document. Usage::

    python -m benchmarks.worker_throughput                 # 5 copies: 97,365 lines, 4 partitions
    python -m benchmarks.worker_throughput --copies 1 --partitions 1

Data: HDFS_v1 block sessions from Loghub (https://github.com/logpai/loghub; Zhu et al., ISSRE 2023),
rendered by :mod:`benchmarks.hdfs_render`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
HDFS_FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
ENTITY_REGEX = r"blk_-?\d+"
IDLE_SECONDS = 3.0
_BLOCK = re.compile(r"blk_(-?\d+)")


def write_copies(path: Path, copies: int) -> int:
    """The sample ``copies`` times, copy k shifted by k days with block ids suffixed by k; returns lines."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for k in range(copies):
            for line in lines:
                day = (datetime.strptime(line[:6], "%y%m%d") + timedelta(days=k)).strftime("%y%m%d")
                body = _BLOCK.sub(lambda m, k=k: f"blk_{m.group(1)}{k}", line[6:]) if k else line[6:]
                out.write(day + body + "\n")
                count += 1
    return count


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"logwarden {args[0]} failed:\n{done.stderr[-2000:]}")
    return done


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(copies: int, partitions: int, bootstrap: str, es_url: str) -> dict[str, Any]:
    name = f"lw-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        work = Path(tmp)
        bench = work / "bench.log"
        lines = write_copies(bench, copies)
        model = work / "model"
        cli("train", str(SAMPLE), "--model-dir", str(model), "--log-format", HDFS_FORMAT, "--entity-regex",
            ENTITY_REGEX)
        started = time.monotonic()
        cli("replay", str(bench), "--topic", name, "--partitions", str(partitions), "--key-regex", ENTITY_REGEX,
            "--bootstrap-servers", bootstrap)
        replay_seconds = time.monotonic() - started
        port = free_port()
        log_path = work / "worker.log"
        try:
            with log_path.open("wb") as log:
                started = time.monotonic()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pipeline.cli", "worker", "--topic", name, "--group-id", name,
                     "--model-dir", str(model), "--index-prefix", name, "--bootstrap-servers", bootstrap,
                     "--es-url", es_url, "--exit-when-idle", f"{IDLE_SECONDS}s", "--metrics-port", str(port),
                     "--json-logs"],
                    cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
                first = last = None
                while proc.poll() is None:
                    seen = scrape(port).get("logwarden_worker_records_total", 0.0)
                    now = time.monotonic()
                    if seen > 0 and first is None:
                        first = now
                    if seen >= lines and last is None:
                        last = now
                    time.sleep(0.05)
                end = time.monotonic()
                total = end - started
            if proc.returncode != 0:
                raise SystemExit(f"worker failed ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            summary = next(json.loads(e["message"]) for e in map(json.loads, log_path.read_text().splitlines()[::-1])
                           if e.get("message", "").startswith("{") and "worker stopped" in e["message"])
            es = Elasticsearch(es_url, request_timeout=30)
            es.indices.refresh(index=f"{name}-anomalies*")
            indexed = es.count(index=f"{name}-anomalies*")["count"]
        finally:
            _cleanup(bootstrap, es_url, name)
    busy = total - IDLE_SECONDS
    return {
        "benchmark": "worker_throughput",
        "lines": lines,
        "copies": copies,
        "partitions": partitions,
        "lines_per_second": round(lines / busy, 1),
        "worker_seconds": round(busy, 2),
        "startup_seconds": round(first - started, 2) if first else None,
        "processing_seconds": round(last - first, 2) if first and last else None,
        "finish_seconds": round(end - last - IDLE_SECONDS, 2) if last else None,
        "processing_lines_per_second": round(lines / (last - first), 1) if first and last and last > first else None,
        "replay_seconds": round(replay_seconds, 2),
        "anomalies_indexed": summary.get("anomalies_indexed"),
        "documents_in_elasticsearch": indexed,
        "commits": summary.get("commits"),
        "python": sys.version.split()[0],
    }


def _cleanup(bootstrap: str, es_url: str, name: str) -> None:
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        existing = set(admin.list_topics())
        doomed = [t for t in (name, f"{name}.dlq", f"{name}.logwarden-state") if t in existing]
        if doomed:
            admin.delete_topics(doomed)
        with contextlib.suppress(Exception):
            admin.delete_groups([name])
        admin.close()
    with contextlib.suppress(Exception):
        es = Elasticsearch(es_url, request_timeout=30).options(ignore_status=404)
        found = es.indices.get(index=f"{name}-anomalies-*", allow_no_indices=True)
        if found.meta.status == 200 and found.body:
            es.indices.delete(index=",".join(found.body))
        es.indices.delete_index_template(name=f"{name}-anomalies")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=5, help="copies of the 19,473-line sample (default 5)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.copies, args.partitions, args.bootstrap_servers, args.es_url), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
