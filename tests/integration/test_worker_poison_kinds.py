"""Poison input in a text topic and in a JSON topic: the worker stays up, every poison record is processed or
dead-lettered with its reason, offsets reach the end, and the good records give the documents of a clean run.

Each topic holds the first 3,000 lines of the HDFS sample (Loghub, He et al.) with poison records inserted: invalid
UTF-8, NUL bytes, a 10 MB line, UTF-8-encoded and escaped lone surrogates, JSON nested 100,000 deep, timestamps in
the far future, in 1970 and missing, and (text topic) the 64 KiB line shapes that make a layout backtrack, for the
punctuation of every Loghub layout. Every poison record names a block of its own (``blk_90000001NN``) or none, so
no good block's window may change: the clean run is ``logwarden detect`` on the same lines without the poison.
``detect`` on the poisoned file (the embedded path: the same chain) must give those documents too, and say in
its summary line what it met.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient

from benchmarks.loghub import LOGHUB_LAYOUTS
from tests.integration.test_worker_poison import json_lines
from tests.integration.worker_support import (
    REPO_ROOT,
    SAMPLE,
    Cleanup,
    WorkerProcess,
    cleanup,  # noqa: F401 - fixture
    committed_offsets,
    expected,
    indexed,
    read_topic,
    replay_now,
    wait_for,
    window_key,
)

pytestmark = pytest.mark.integration
GOOD_LINES = 3000
BIG = 10 * 1024 * 1024
MAX_LINE = 65536
DEEP = 30_000  # 60 KB of brackets: under --max-line-bytes, far past Python's recursion limit
POISON_BLOCK = re.compile(r"blk_90000001\d\d")


def block(n: int) -> str:
    return f"blk_90000001{n:02d}"


def hostile_text_lines() -> list[bytes]:
    """64 KiB lines of the shapes that make a layout backtrack (``test_decoding._hostile_lines``), one set with the
    punctuation of each Loghub layout; each ends with a block id of its own so it is windowed and template-matched."""
    from tests.pipeline.stages.test_decoding import _hostile_lines  # noqa: PLC0415 - test helper

    shapes: dict[str, str] = {}
    for system, fmt in sorted(LOGHUB_LAYOUTS.items()):
        for shape, line in _hostile_lines(fmt).items():
            key = shape if not shape.startswith("punctuation") else f"{shape}-{system}"
            shapes.setdefault(key, line)
    out = []
    for n, line in enumerate(shapes.values()):
        tail = f" {block(50 + n)}".encode()
        out.append(line.encode("utf-8", "surrogatepass")[: MAX_LINE - len(tail)] + tail)
    return out


# Text topic (the model's HDFS layout): index in the good lines -> (poison, what must become of it).
# ``dlq``: the dead letter's reason; None: processed (windowed or counted), no dead letter.
def text_poison() -> dict[int, tuple[bytes, str | None]]:
    b = block
    poison: dict[int, tuple[bytes, str | None]] = {
        100: (f"081109 203518 143 INFO dfs.DataNode: Receiving block {b(1)} bad ".encode() + b"\xff\xfe bytes",
              "invalid_utf8"),
        150: (f"081109 203518 143 INFO dfs.DataNode: Receiving block {b(2)} nul \x00 byte".encode(), None),
        200: (f"081109 203518 143 INFO dfs.DataNode: Receiving block {b(3)} ".encode() + b"y" * BIG, "truncated"),
        250: (f"081109 203518 143 INFO dfs.DataNode: Receiving block {b(4)} ".encode() + b"\xed\xa0\x80",
              "invalid_utf8"),
        300: (f"681231 235959 143 INFO dfs.DataNode: Receiving block {b(5)} from 2068".encode(), None),
        350: (f"700101 000000 143 INFO dfs.DataNode: Receiving block {b(6)} from 1970".encode(), None),
        400: (f"Receiving block {b(7)} without any timestamp".encode(), None),
        450: (f'{{"message": "{b(8)}", "x": '.encode() + b"[" * DEEP + b"]" * DEEP + b"}", None),
    }
    for n, line in enumerate(hostile_text_lines()):
        try:
            line.decode()
            reason = None
        except UnicodeDecodeError:  # a lone surrogate's bytes, or a character cut by the 64 KiB bound
            reason = "invalid_utf8"
        poison[500 + 20 * n] = (line, reason)
    return poison


def json_poison(neighbour: str) -> dict[int, tuple[bytes, str | None]]:
    b = block
    stamp = f'"@timestamp": "{neighbour}"'.encode()
    future, past = '{"@timestamp": "2099-01-01T00:00:00Z", ', '{"@timestamp": "1970-01-01T00:00:00Z", '
    return {
        100: (b'{' + stamp + f', "message": "Receiving block {b(1)} bad '.encode() + b'\xff\xfe bytes"}',
              "invalid_utf8"),
        150: (b'{' + stamp + f', "message": "Receiving block {b(2)} nul \\u0000 escaped"}}'.encode(), None),
        175: (b'{' + stamp + f', "message": "Receiving block {b(3)} nul '.encode() + b'\x00 raw"}', "not_json"),
        200: (b'{' + stamp + f', "message": "Receiving block {b(4)} '.encode() + b"y" * BIG + b'"}',
              "truncated,not_json"),
        250: (b'{' + stamp + f', "message": "Receiving block {b(5)} \\ud800 lone"}}'.encode(), "invalid_utf8"),
        300: (future.encode() + f'"message": "Receiving block {b(6)} from 2099"}}'.encode(), None),
        350: (past.encode() + f'"message": "Receiving block {b(7)} from 1970"}}'.encode(), None),
        400: (f'{{"message": "Receiving block {b(8)} without any timestamp"}}'.encode(), None),
        450: (f'{{"message": "{b(9)}", "x": '.encode() + b"[" * DEEP + b"]" * DEEP + b"}", "not_json"),
        500: (f'["Receiving block {b(10)}", "an array"]'.encode(), "not_json"),
    }


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The whole document but where its first record was read (a line number, or a Kafka offset and stream)."""
    out = copy.deepcopy(doc)
    out["window"].pop("offset", None)
    out["window"].pop("stream", None)
    return out


def detect_docs(path: Path, model_dir: Path, out: Path) -> tuple[dict[str, dict[str, Any]], str]:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "detect", str(path), "--model-dir", str(model_dir),
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    docs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {window_key(doc): comparable(doc) for doc in docs}, done.stderr


def good(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: comparable(doc) for key, doc in docs.items() if not POISON_BLOCK.fullmatch(doc["entity"]["id"])}


def run_poisoned(kind: str, clean: list[bytes], poison: dict[int, tuple[bytes, str | None]], *,
                 kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient,
                 topic: str, group: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
                 worker_extra: tuple[str, ...] = ()) -> tuple[dict[Any, float], str]:
    """Clean detect, poisoned detect, poisoned worker; asserts what every kind shares. Returns the worker's
    metrics and the poisoned detect's summary line."""
    want = expected()
    cleanup.worker_stream(topic, group)
    lines = list(clean)
    for index, (value, _) in sorted(poison.items()):
        lines.insert(index, value)
    offsets = {lines.index(value): reason for value, reason in poison.values()}
    clean_path, path = tmp_path / f"clean.{kind}", tmp_path / f"poisoned.{kind}"
    clean_path.write_bytes(b"\n".join(clean) + b"\n")
    path.write_bytes(b"\n".join(lines) + b"\n")

    baseline, _ = detect_docs(clean_path, want.model_dir, tmp_path / "clean.out")
    assert baseline, "the clean lines hold no anomaly: nothing to compare"
    started = time.monotonic()
    embedded, summary = detect_docs(path, want.model_dir, tmp_path / "poisoned.out")
    detect_seconds = time.monotonic() - started
    assert good(embedded) == baseline, "detect: the poison changed a good block's document"

    sent = replay_now(path, topic, kafka_bootstrap, partitions=1, max_line_bytes=16 * 1024 * 1024)
    assert sent.lines == len(lines) and sent.truncated == 0
    worker = WorkerProcess(tmp_path, "worker", [
        "--topic", topic, "--group-id", group, "--index-prefix", topic, "--bootstrap-servers", kafka_bootstrap,
        "--es-url", es_url, "--model-dir", str(want.model_dir), "--session-timeout", "6s", "--commit-interval",
        "1s", "--exit-when-idle", "8s", *worker_extra])
    try:
        wait_for("every record read", lambda: worker.metric("logwarden_worker_records_total", topic=topic)
                 >= len(lines), 180)
        assert worker.proc.poll() is None, "the worker stopped on the poison"
        # Read is not done: a record the multi-line joiner holds is decoded (and counted) when its key goes
        # quiet (250 ms). The last counts before the worker leaves (it stays 8 s idle) are the final ones.
        metrics = worker.metrics()
        deadline = time.monotonic() + 60
        while worker.proc.poll() is None and time.monotonic() < deadline:
            if committed_offsets(kafka_admin, group) == {0: len(lines)}:
                metrics = worker.metrics() or metrics
                break
            metrics = worker.metrics() or metrics
            time.sleep(0.5)
        code = worker.wait(120)
    finally:
        worker.close()
    assert code == 0, worker.text()[-3000:]
    assert not [e for e in worker.events() if e.get("level") in ("error", "critical")]
    assert "Traceback" not in worker.text()

    assert good(indexed(es_client, topic)) == baseline, "worker: the poison changed a good block's document"
    assert committed_offsets(kafka_admin, group) == {0: len(lines)}  # offsets advanced past every record
    assert metrics[("logwarden_worker_records_total", (("topic", topic),))] == len(lines)

    letters = read_topic(kafka_bootstrap, f"{topic}.dlq", expect=sum(r is not None for r in offsets.values()))
    got = {}
    for letter in letters:
        headers = {name: value.decode() for name, value in letter.headers}
        assert headers["source.topic"] == topic and headers["source.partition"] == "0"
        got[int(headers["source.offset"])] = (headers, letter.value)
    assert {o: h["reason"] for o, (h, _) in got.items()} == {o: r for o, r in offsets.items() if r is not None}
    for offset, (headers, value) in got.items():
        if "truncated" in headers["reason"]:
            assert headers["original.bytes"] == str(len(lines[offset])) and value == lines[offset][:MAX_LINE]
        else:
            assert value == lines[offset]  # the original bytes, for a re-drive
    print(f"\n{kind}: {len(lines)} records ({len(poison)} poison); detect on the poisoned file "
          f"{detect_seconds:.1f} s; {summary.strip().splitlines()[0]}")
    return metrics, summary


def reason_count(metrics: dict[Any, float], name: str, reason: str) -> float:
    return metrics.get((f"logwarden_worker_{name}_total", (("reason", reason),)), 0.0)


SUMMARY_NAMES = {"invalid_utf8": "invalid UTF-8", "not_json": "not JSON"}


def summary_count(summary: str, reason: str) -> int:
    """What detect's summary line says of ``reason`` (0 when it names none)."""
    found = re.search(rf"\b(\d+) {re.escape(SUMMARY_NAMES.get(reason, reason.replace('_', ' ')))}\b", summary)
    return int(found.group(1)) if found else 0


def same_counts(metrics: dict[Any, float], summary: str, reasons: tuple[str, ...]) -> None:
    """The worker's decode counts and detect's summary agree (the same chain met the same lines)."""
    for reason in reasons:
        assert reason_count(metrics, "decode_errors", reason) == summary_count(summary, reason), (reason, summary)


def test_poison_in_a_text_topic(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient, kafka_topic: str,
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    with SAMPLE.open("rb") as handle:
        clean = [next(handle).rstrip(b"\n") for _ in range(GOOD_LINES)]
    poison = text_poison()
    expect_bad = sum(reason == "invalid_utf8" for _, reason in poison.values())  # 2, and the hostile lines
    metrics, summary = run_poisoned("log", clean, poison, kafka_bootstrap=kafka_bootstrap, es_url=es_url,
                                    es_client=es_client, kafka_admin=kafka_admin, topic=kafka_topic,
                                    group=kafka_group_id, cleanup=cleanup, tmp_path=tmp_path)
    assert expect_bad >= 2
    for reason, count in (("invalid_utf8", expect_bad), ("truncated", 1)):
        assert reason_count(metrics, "decode_errors", reason) == count, reason
        assert reason_count(metrics, "dead_letters", reason) == count, reason
    assert reason_count(metrics, "decode_errors", "stage_error") == 0
    # 2068 and layout fields of hostile lines that hold no time: counted, never moving the watermark.
    assert reason_count(metrics, "decode_errors", "bad_timestamp") >= 1
    # The hostile lines, the untimed and the nested line fit no layout (most of them): kept whole, counted.
    assert reason_count(metrics, "decode_errors", "unmatched") >= 2
    same_counts(metrics, summary, ("invalid_utf8", "truncated", "bad_timestamp", "unmatched", "stage_error"))


def test_poison_in_a_json_topic(
    kafka_bootstrap: str, es_url: str, es_client: Elasticsearch, kafka_admin: KafkaAdminClient, kafka_topic: str,
    kafka_group_id: str, cleanup: Cleanup, tmp_path: Path,  # noqa: F811
) -> None:
    clean = list(json_lines(GOOD_LINES))
    neighbour = json.loads(clean[99])["@timestamp"]
    metrics, summary = run_poisoned("jsonl", clean, json_poison(neighbour), kafka_bootstrap=kafka_bootstrap,
                                    es_url=es_url, es_client=es_client, kafka_admin=kafka_admin, topic=kafka_topic,
                                    group=kafka_group_id, cleanup=cleanup, tmp_path=tmp_path,
                                    worker_extra=("--format", "json"))
    for reason, count in (("invalid_utf8", 2), ("truncated", 1), ("not_json", 4)):
        assert reason_count(metrics, "decode_errors", reason) == count, reason
    assert reason_count(metrics, "dead_letters", "not_json") == 4
    assert reason_count(metrics, "decode_errors", "bad_timestamp") == 1  # 2099
    assert reason_count(metrics, "decode_errors", "stage_error") == 0
    # detect reads files in auto mode: the lines that are not JSON objects are decoded as text and counted.
    same_counts(metrics, summary, ("invalid_utf8", "truncated", "not_json", "stage_error"))
