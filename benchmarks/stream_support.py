"""Pieces of :mod:`benchmarks.stream_throughput`: Filebeat-style records, topics, worker processes, /proc readings.

Records are what Filebeat ships from an HDFS datanode log without parsing (``message`` is the raw line), with the
event time in ``@timestamp`` (as an ingest timestamp processor would set it) and the usual ECS metadata::

    {"@timestamp": "2008-11-09T20:35:18.000Z", "message": "081109 203518 143 INFO dfs...: Receiving block blk_...",
     "log": {"level": "INFO", "logger": "dfs.DataNode$DataXceiver", "file": {"path": "..."}, "offset": 123},
     "host": {"name": "dn-07"}, "agent": {"type": "filebeat", "version": "8.15.3"}, "ecs": {"version": "8.11.0"},
     "input": {"type": "filestream"}}

The lines are ``examples/hdfs_sample.log`` (HDFS_v1 block sessions from Loghub, https://github.com/logpai/loghub;
Zhu et al., ISSRE 2023, rendered by :mod:`benchmarks.hdfs_render`); copy ``k`` is shifted by ``k`` days and its
block ids get the suffix ``k``, so every copy is new data. The Kafka key is the block id.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
ENTITY_REGEX = r"blk_-?\d+"
_BLOCK = re.compile(r"blk_(-?\d+)")
_LEVEL = re.compile(r"^\d{6} \d{6} \d+ (\w+) ([^:]+):")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


def line_time(line: str) -> datetime:
    return datetime.strptime(line[:13], "%y%m%d %H%M%S").replace(tzinfo=UTC)


def ecs_record(line: str, when: datetime | float, offset: int, rng: random.Random) -> bytes:
    """One Filebeat-style ECS JSON record of ``line`` at event time ``when`` (a datetime or epoch seconds)."""
    stamp = when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)
    found = _LEVEL.match(line)
    level, logger = (found.group(1), found.group(2)) if found else ("INFO", "unknown")
    host = f"dn-{rng.randrange(1, 40):02d}"
    body = {"@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "message": line,
            "log": {"level": level, "logger": logger, "offset": offset,
                    "file": {"path": f"/var/log/hadoop/hdfs/hadoop-hdfs-datanode-{host}.log"}},
            "host": {"name": host}, "agent": {"type": "filebeat", "version": "8.15.3", "name": host},
            "ecs": {"version": "8.11.0"}, "input": {"type": "filestream"}}
    return json.dumps(body, separators=(",", ":")).encode()


def key_of(line: str) -> bytes | None:
    found = _BLOCK.search(line)
    return found.group(0).encode() if found else None


def copy_shift(lines: list[str]) -> timedelta:
    """How far each copy of ``lines`` is moved in event time: their span and 5 minutes more, in whole minutes.

    Copies follow each other as a live stream's time does, later and never overlapping (a gap above the
    benchmark model's session gap and lateness between them), and 100,000 records of the HDFS sample stay
    within one day, so the worker writes one daily index, as a live stream does. Copies a day apart made it
    create a new daily index every ~20,000 records, about 0.8 s each with its flush waiting.
    """
    times = [line_time(line) for line in lines]
    span = max(times) - min(times) + timedelta(minutes=5)
    return timedelta(minutes=-(-span.total_seconds() // 60))


def copies(lines: list[str], count: int, seed: int) -> Iterator[tuple[bytes | None, bytes]]:
    """``count`` records (key, value): the sample over and over, copy k shifted k x :func:`copy_shift`, ids
    suffixed k."""
    rng = random.Random(seed)
    shift = copy_shift(lines)
    made = k = 0
    while made < count:
        for i, line in enumerate(lines):
            if made >= count:
                return
            text = _BLOCK.sub(lambda m, k=k: f"blk_{m.group(1)}{k}", line) if k else line
            yield key_of(text), ecs_record(text, line_time(line) + k * shift, i * 160, rng)
            made += 1
        k += 1


def distinct_entities(lines: list[str], count: int, seed: int) -> Iterator[tuple[bytes | None, bytes]]:
    """``count`` records of ``count`` different blocks, all within 10 s of event time: nothing closes."""
    rng = random.Random(seed)
    start = line_time(lines[0])
    for i in range(count):
        line = _BLOCK.sub(f"blk_77{i:012d}", lines[i % len(lines)], count=1)
        line = _BLOCK.sub(f"blk_77{i:012d}", line)
        yield key_of(line), ecs_record(line, start + timedelta(seconds=10 * i / count), i * 160, rng)


def write_file(path: Path, records: Iterator[tuple[bytes | None, bytes]]) -> int:
    count = 0
    with path.open("wb") as out:
        for _, value in records:
            out.write(value + b"\n")
            count += 1
    return count


def fill_topic(bootstrap: str, topic: str, partitions: int, records: Iterator[tuple[bytes | None, bytes]]) -> int:
    """Create ``topic`` and produce every record (acks=all); returns the count."""
    from pipeline.sources.kafka import ensure_topics, make_producer  # noqa: PLC0415

    ensure_topics(bootstrap, {topic: (partitions, {})})
    producer = make_producer(bootstrap, linger_ms=50, batch_size=256 * 1024)
    count = 0
    for key, value in records:
        producer.send(topic, value=value, key=key)
        count += 1
    producer.flush(timeout=120)
    producer.close()
    return count


# ---------------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` from ``/proc/PID/stat`` (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def sched_seconds(pid: int) -> tuple[float, float] | None:
    """Seconds ``pid``'s live threads ran on a core and waited runnable for one (``/proc/PID/task/*/schedstat``).

    On a shared machine the second tells how much of a worker's wall time went to waiting for a core
    (other processes' load) rather than to waiting for Kafka or Elasticsearch. None once it is gone.
    """
    run = wait = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (task / "schedstat").read_text().split()
            run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MB, from ``/proc/PID/status``."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = row.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = round(int(value.split()[0]) / 1024, 1)
    return found


class Worker:
    """``logwarden worker`` as a subprocess (JSON logs to a file, a metrics port)."""

    def __init__(self, work: Path, name: str, args: list[str]) -> None:
        self.port = free_port()
        self.log_path = work / f"{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--json-logs", "--metrics-port", str(self.port),
               *args]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        """Current sample totals (summed over labels); empty while the server is not up."""
        from benchmarks.worker_throughput import scrape  # noqa: PLC0415

        return scrape(self.port)

    def records(self) -> float:
        return self.metrics().get("logwarden_worker_records_total", 0.0)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise SystemExit(f"worker did not exit within {timeout} s:\n{self.text()[-3000:]}") from None

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def summary(self) -> dict[str, Any]:
        for line in reversed(self.text().splitlines()):
            with contextlib.suppress(ValueError):
                message = json.loads(line).get("message", "")
                if message.startswith("{") and "worker stopped" in message:
                    return dict(json.loads(message))
        return {}


def cleanup(bootstrap: str, es_url: str, topics: list[str], groups: list[str], prefixes: list[str]) -> None:
    """Delete what a run made: topics (with their dead-letter and state topics), groups, anomaly indices."""
    from elasticsearch import Elasticsearch  # noqa: PLC0415
    from kafka import KafkaAdminClient  # noqa: PLC0415

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        existing = set(admin.list_topics())
        wanted = {*topics, *(f"{t}.dlq" for t in topics), *(f"{g}.logwarden-state" for g in groups)}
        doomed = sorted(t for t in wanted if t in existing)
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
        for group in groups:
            with contextlib.suppress(Exception):
                admin.delete_groups([group])
        admin.close()
    es = Elasticsearch(es_url, request_timeout=30).options(ignore_status=404)
    for prefix in prefixes:
        with contextlib.suppress(Exception):
            found = es.indices.get(index=f"{prefix}-*", expand_wildcards="all", allow_no_indices=True)
            if found.meta.status == 200 and found.body:
                es.indices.delete(index=",".join(sorted(found.body)))
            es.indices.delete_index_template(name=f"{prefix}-anomalies")
