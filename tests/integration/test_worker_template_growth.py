"""A stream of high-cardinality junk keeps the worker's template state and memory bounded (issue 13, item 8).

The sample is replayed with 24,000 junk lines mixed in: HDFS-layout lines dated like their neighbours, each
with a message of random letter words (no digits, so masking keeps every word), about 3 KiB each and a template
of its own the model never saw, spread over four junk blocks (``blk_80000000001``...). Without bounds a worker
would hold every junk line twice per window (template text and sample line) and once more in the template
catalog's pending set: some 200 MB for these 70 MB of junk.

What must hold, measured on the real worker against the real servers:

* the sample's anomaly documents are the ones ``detect`` finds on the clean sample, field for field;
* every junk line is counted: in ``log.count`` of its block's documents, in the unseen-template metric, and
  past 256 distinct unseen templates per window in the folded metric (the window's one "other" id);
* the template catalog holds at most its pending bound of unknown templates, and each junk line is either in
  the catalog's counts or in ``logwarden_worker_template_catalog_dropped_total``;
* the worker's resident memory grows by less than 40 MB from the first quarter of the junk to the end.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.records import MAX_UNSEEN_TEMPLATES
from pipeline.sinks.elasticsearch.catalog import MAX_PENDING
from tests.integration.worker_support import (
    SAMPLE,
    Rig,
    cleanup,  # noqa: F401 - fixture
    expected,
    rig,  # noqa: F401 - fixture
    wait_for,
)

pytestmark = pytest.mark.integration

JUNK_LINES = 24_000
JUNK_BLOCKS = [f"blk_8000000000{n}" for n in range(1, 5)]
WORDS_PER_LINE = 400  # about 3 KiB of letters
GROWTH_LIMIT = 40 * 1024 * 1024


def junk_stream(path: Path) -> list[bytes]:
    """The sample with one junk line after every few sample lines, each dated like the line before it."""
    rng = random.Random(13)
    letters = "abcdefghijklmnopqrstuvwxyz"
    sample = SAMPLE.read_bytes().splitlines()

    def junk_line(after: bytes, number: int) -> bytes:
        date, time_ = after.split(b" ", 2)[:2]
        words = " ".join("".join(rng.choices(letters, k=6)) for _ in range(WORDS_PER_LINE))
        block = JUNK_BLOCKS[number % len(JUNK_BLOCKS)]
        return b"%s %s 99 INFO dfs.JunkWriter: %s %s" % (date, time_, words.encode(), block.encode())

    every = max(1, len(sample) // JUNK_LINES)
    out: list[bytes] = []
    junk = 0
    for number, line in enumerate(sample):
        out.append(line)
        if junk < JUNK_LINES and number % every == every - 1:
            out.append(junk_line(line, junk))
            junk += 1
    while junk < JUNK_LINES:  # the sample is shorter than the junk: the rest goes at its end
        out.append(junk_line(sample[-1], junk))
        junk += 1
    path.write_bytes(b"\n".join(out) + b"\n")
    return out


def test_high_cardinality_junk_keeps_template_state_and_memory_bounded(rig: Rig, es_client: Elasticsearch,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    want = expected()
    lines = junk_stream(tmp_path / "junk.log")
    rig.replay(tmp_path / "junk.log")
    # No catalog flush while the stream runs (the interval is long): the pending set alone must stay bounded,
    # and the final flush at exit writes what it holds.
    worker = rig.start("worker", "--exit-when-idle", "5s", "--template-catalog-interval", "1h")
    memory: list[tuple[float, int]] = []  # (records read, RSS)
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.wait(0.25):
            read = worker.metric("logwarden_worker_records_total", topic=rig.topic)
            rss = worker.rss_bytes()
            if rss:
                memory.append((read, rss))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    try:
        wait_for("every record read", lambda: worker.metric("logwarden_worker_records_total", topic=rig.topic)
                 >= len(lines), 300)
        code = worker.wait(180)  # the junk blocks' windows are open until the exit closes them
    finally:
        stop.set()
        sampler.join(5)
    assert code == 0, worker.text()[-3000:]

    docs = rig.docs()
    junk_docs = [doc for doc in docs.values() if doc["entity"]["id"] in JUNK_BLOCKS]
    sample_docs = {key: doc for key, doc in docs.items() if doc["entity"]["id"] not in JUNK_BLOCKS}
    assert set(sample_docs) == want.ids
    for key, doc in sample_docs.items():
        for part in ("anomaly", "log", "templates"):
            assert doc.get(part) == want.docs[key].get(part), (key, part)

    # Every junk line is in its block's windows, all of them anomalous (nothing but never-seen templates).
    assert {doc["entity"]["id"] for doc in junk_docs} == set(JUNK_BLOCKS)
    assert sum(doc["log"]["count"] for doc in junk_docs) == JUNK_LINES
    totals = worker.summary()  # the metrics at exit, after the last windows were scored
    unseen = totals["unseen_template_lines"]
    assert JUNK_LINES <= unseen <= JUNK_LINES + want.lines // 1000, unseen
    folded = totals["unseen_templates_folded"]
    assert folded == JUNK_LINES - MAX_UNSEEN_TEMPLATES * len(junk_docs), (folded, len(junk_docs))

    # The catalog: bounded, and each junk line recorded or counted as left out.
    catalog = f"{rig.topic}-templates"
    es_client.indices.refresh(index=catalog)
    unknown = es_client.search(index=catalog, query={"term": {"known": False}}, size=0,
                               aggs={"lines": {"sum": {"field": "count"}}}, track_total_hits=True)
    stored = unknown["hits"]["total"]["value"]
    dropped = totals["template_catalog_dropped"]
    assert 0 < stored <= MAX_PENDING
    assert dropped > 0
    assert unknown["aggregations"]["lines"]["value"] + dropped == unseen

    # Memory: flat from the first quarter of the junk on.
    quarter = [rss for read, rss in memory if read >= len(lines) // 4]
    assert len(quarter) >= 4, memory
    growth = max(quarter) - quarter[0]
    assert growth < GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB after the first quarter of the stream"
