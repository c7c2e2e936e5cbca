"""``logwarden replay``: produce log files into a Kafka topic, one record per line, keyed by entity.

Keying is what makes a consumer group of workers agree with ``logwarden detect``: Kafka's default
partitioner sends every record with the same key to the same partition, in order, so all lines of one
entity (a block, a request, a host) are read by one worker and its windows are built whole. The key is
the first match of ``--key-regex`` in the line (the named group's text when the regex has one, as for
``--entity-regex``); use the same regex as the model's entity regex. A line without a match takes the key of
the line before it in the same file: the frames of a stack trace name no entity, and they must reach the
worker in the same partition, under the same key and in order, for it to join them to their record
(:mod:`pipeline.stages.multiline`). Lines without a match before any keyed line of a file get no key and are
spread over the partitions. Lines that name two entities follow their first one.

The producer is idempotent with ``acks=all``, so per-key order holds and an acknowledged line is stored.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka.errors import KafkaError
from tqdm import tqdm

from pipeline.errors import LogwardenError
from pipeline.sources.files import SourceStats, count_bytes, read_lines
from pipeline.sources.kafka import ensure_topics, make_producer, partition_count

DEFAULT_MAX_LINE_BYTES = 1 << 20


@dataclass
class ReplayStats:
    lines: int = 0
    bytes: int = 0
    keyed: int = 0
    followed: int = 0  # lines without a key match sent under the key of the line before them
    truncated: int = 0
    seconds: float = 0.0
    partitions: int | None = None
    created: bool = False
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        rate = self.lines / self.seconds if self.seconds > 0 else None
        return {"lines": self.lines, "bytes": self.bytes, "keyed": self.keyed, "followed": self.followed,
                "truncated": self.truncated,
                "seconds": round(self.seconds, 3), "lines_per_second": round(rate, 1) if rate else None,
                "partitions": self.partitions, "created_topic": self.created}


def key_function(regex: str | None) -> Callable[[str], bytes | None]:
    """``line -> key``: the first match of ``regex`` (its named group if it has one), else None."""
    if not regex:
        return lambda _line: None
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise LogwardenError(f"--key-regex {regex!r} is not a valid regex: {exc}") from None
    group = next(iter(pattern.groupindex), None)

    def key(line: str) -> bytes | None:
        match = pattern.search(line)
        if match is None:
            return None
        value = match.group(group) if group else match.group(0)
        return value.encode() if value else None

    return key


def replay(
    paths: Sequence[str],
    topic: str,
    bootstrap_servers: str,
    *,
    rate: float | None = None,
    key_regex: str | None = None,
    partitions: int = 1,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: bool | None = None,
) -> ReplayStats:
    """Send every line of ``paths`` to ``topic`` (created with ``partitions`` if missing); returns counts."""
    if rate is not None and rate <= 0:
        raise LogwardenError(f"--rate must be positive, got {rate}")
    if partitions < 1:
        raise LogwardenError(f"--partitions must be at least 1, got {partitions}")
    key_of = key_function(key_regex)
    total = count_bytes(paths)  # also checks every path before anything is sent
    stats = ReplayStats()
    try:
        topic_configs = {"max.message.bytes": str(max(1 << 20, max_line_bytes + 4096))}
        stats.created = bool(ensure_topics(bootstrap_servers, {topic: (partitions, topic_configs)}))
        stats.partitions = partition_count(bootstrap_servers, topic)
        producer = make_producer(bootstrap_servers, max_request_size=max(1 << 20, max_line_bytes + 4096),
                                 batch_size=256 * 1024, client_id="logwarden-replay")
    except KafkaError as exc:
        raise LogwardenError(f"cannot prepare topic {topic} on {bootstrap_servers}: {exc}") from None
    if not stats.created and stats.partitions is not None and stats.partitions != partitions:
        print(f"logwarden: note: topic {topic} exists with {stats.partitions} partitions", file=sys.stderr)

    def failed(exc: BaseException) -> None:
        stats.failures.append(str(exc))

    source_stats = SourceStats()
    started = time.monotonic()
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"replay -> {topic}", file=sys.stderr,
              disable=None if progress is None else not progress, leave=False) as bar:
        try:
            previous: tuple[str, bytes | None] = ("", None)
            for raw in read_lines(paths, max_line_bytes=max_line_bytes, stats=source_stats, progress=bar.update):
                key = key_of(raw.data.decode(errors="replace")) if key_regex else None
                stats.keyed += key is not None
                if key is None and key_regex and previous[0] == raw.origin and previous[1] is not None:
                    key = previous[1]
                    stats.followed += 1
                previous = (raw.origin, key)
                producer.send(topic, key=key, value=raw.data).add_errback(failed)
                stats.lines += 1
                stats.bytes += len(raw.data)
                stats.truncated += raw.truncated
                if rate is not None:
                    ahead = stats.lines / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            producer.flush()
        finally:
            producer.close(timeout=30)
    stats.seconds = time.monotonic() - started
    if stats.failures:
        raise LogwardenError(f"{len(stats.failures)} of {stats.lines} lines were not written to {topic}; "
                             f"first error: {stats.failures[0]}")
    return stats
