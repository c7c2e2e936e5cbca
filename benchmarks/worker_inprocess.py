"""The streaming worker's own CPU per record, in-process: the real loop over a fake consumer and a fake sink.

:mod:`benchmarks.stream_throughput` measures a worker end to end against Kafka and Elasticsearch; this isolates
what the worker adds to the per-record chain, without servers. The records are Filebeat-style ECS JSON of HDFS
lines (:func:`benchmarks.stream_support.copies`, fixed seed), keyed by block id over 4 partitions, served by
:class:`tests.fakes.FakeConsumer`; anomalies go to :class:`tests.fakes.FakeElasticsearch` through the real
client. Three figures on the same record values, in CPU microseconds per record (best of ``--rounds``, taken in
turn within each round, after one untimed run of each):

* ``worker``: :meth:`pipeline.stream.worker.Worker.run` to the end of input (``exit_when_idle=0``): polls,
  replay bookkeeping, the chain, metrics, scoring, indexing, checkpoints;
* ``json_loads``: ``json.loads`` of each record value (what a plain consumer does beyond Kafka);
* ``detect``: ``logwarden detect``'s chain and scorer (:func:`pipeline.embedded.detect`) over the same values.

Prints one JSON document. Usage::

    python -m benchmarks.worker_inprocess                  # 50,000 records, 3 rounds
    python -m benchmarks.worker_inprocess --profile 30     # also cProfile one worker run (top 30 by tottime)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from benchmarks import stream_support as ss

PARTITIONS = 4
SEED = 14
SESSION_GAP, LATENESS = 60.0, 5.0  # the model's, as in benchmarks.stream_throughput
KAFKA_TIME_MS = 1_750_000_000_000  # every record's Kafka timestamp (its arrival time): fixed, so runs repeat


def settings() -> Any:
    from pipeline.config import PipelineSettings  # noqa: PLC0415

    return PipelineSettings(entity_regex=ss.ENTITY_REGEX, session_gap=SESSION_GAP, allowed_lateness=LATENESS)


def records(count: int) -> list[tuple[bytes | None, bytes]]:
    return list(ss.copies(ss.sample_lines(), count, seed=SEED))


def partition_of(key: bytes | None) -> int:
    return zlib.crc32(key or b"") % PARTITIONS


def train(train_records: int) -> Any:
    """A model trained on the first ``train_records`` records (the sample itself, as the stream benchmark)."""
    from pipeline.records import RawLine  # noqa: PLC0415
    from pipeline.training import train_stream  # noqa: PLC0415

    raws = (RawLine(value, "train", i, None, 0.0, False) for i, (_, value) in enumerate(records(train_records)))
    return train_stream(raws, settings())


class WorkerRun:
    """One worker over a fresh fake consumer holding ``data`` (the log is built before timing starts)."""

    def __init__(self, data: list[tuple[bytes | None, bytes]], bundle: Any) -> None:
        from kafka import TopicPartition  # noqa: PLC0415

        from pipeline.config import WorkerOptions  # noqa: PLC0415
        from pipeline.scoring import Scorer  # noqa: PLC0415
        from pipeline.stages.templates import TemplateMiner  # noqa: PLC0415
        from pipeline.stream.worker import Worker  # noqa: PLC0415
        from tests.fakes import FakeConsumer, FakeElasticsearch, worker_context  # noqa: PLC0415

        parts = [TopicPartition("logs", p) for p in range(PARTITIONS)]
        self.consumer = FakeConsumer(parts)
        for key, value in data:
            self.consumer.append(parts[partition_of(key)], value, key=key, timestamp=KAFKA_TIME_MS)
        self.es = FakeElasticsearch()
        options = WorkerOptions(topics=("logs",), settings=settings(), exit_when_idle=0.0,
                                template_catalog_interval=0.0, input_format="json")
        miner = TemplateMiner.from_state(bundle.miner_state)
        ctx = worker_context(options, Scorer(bundle), miner.match, self.es)
        self.worker = Worker(ctx, consumer=self.consumer)

    def run(self) -> dict[str, int]:
        code = self.worker.run()
        assert code == 0, f"the worker exited with {code}"
        registry = self.worker.metrics.registry
        return {"windows_scored": int(registry.get_sample_value("logwarden_worker_windows_scored_total") or 0),
                "documents": len(self.es.all_docs()),
                "committed": sum(self.consumer.committed_at(tp) or 0 for tp in self.consumer.log)}


def _cpu(run: Callable[[], object]) -> tuple[float, object]:
    """CPU seconds of ``run()`` and its result; what exists before it (the fake log: a tracked ConsumerRecord per
    record, which a real worker never holds) is frozen out of the collector's full passes, which would otherwise
    walk it about once a run at some 3 us per record."""
    gc.collect()
    gc.freeze()
    try:
        start = time.process_time()
        out = run()
        return time.process_time() - start, out
    finally:
        gc.unfreeze()


def _detect(values: list[bytes], bundle: Any) -> dict[str, int]:
    from pipeline.embedded import detect  # noqa: PLC0415
    from pipeline.records import RawLine  # noqa: PLC0415

    raws = iter([RawLine(v, "bench", i, None, KAFKA_TIME_MS / 1000.0, False) for i, v in enumerate(values)])
    documents, stats = detect((), settings(), bundle, lines=raws, every=False)  # as detect writes: anomalies only
    anomalies = sum(doc["anomaly"]["is_anomaly"] for doc in documents)
    assert anomalies == stats.anomalies
    return {"windows": stats.windows, "anomalies": anomalies}


def _loads(values: list[bytes]) -> int:
    loads = json.loads
    for value in values:
        loads(value)
    return len(values)


PARTS = ("worker", "json_loads", "detect")


def measure(count: int, rounds: int, train_records: int, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Best CPU seconds of each part over ``rounds`` rounds, as microseconds per record, and their ratios."""
    bundle = train(train_records)
    data = records(count)
    values = [value for _, value in data]
    seen: dict[str, Any] = {}
    # Untimed first: the masking memos are module-wide and a running worker's are warm (the first pass over
    # new messages costs about half as much again).
    warm = {"worker": lambda: WorkerRun(data, bundle).run(), "json_loads": lambda: _loads(values),
            "detect": lambda: _detect(values, bundle)}
    for part in parts:
        warm[part]()
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(rounds):
        for part in parts:
            if part == "worker":
                rig = WorkerRun(data, bundle)  # the log is built outside the timed part
                cpu, seen[part] = _cpu(rig.run)
            elif part == "json_loads":
                cpu, _ = _cpu(lambda: _loads(values))
            else:
                cpu, seen[part] = _cpu(lambda: _detect(values, bundle))
            best[part] = min(best[part], cpu)
    us = {name: round(cpu / count * 1e6, 2) for name, cpu in best.items()}
    out: dict[str, Any] = {
        "benchmark": "worker_inprocess", "records": count, "partitions": PARTITIONS, "rounds": rounds,
        "seed": SEED, "python": sys.version.split()[0], "cpu_us_per_record": us}
    if "worker" in us and "json_loads" in us:
        out["ratio_worker_to_json_loads"] = round(us["worker"] / max(us["json_loads"], 1e-9), 2)
    if "worker" in us and "detect" in us:
        out["ratio_worker_to_detect"] = round(us["worker"] / max(us["detect"], 1e-9), 2)
        out["worker_beyond_detect_us"] = round(us["worker"] - us["detect"], 2)
    return out | {part: seen[part] for part in ("worker", "detect") if part in seen}


STAGES = ("chain_text", "chain_json", "chain_json_replay", "partition_read")


def breakdown(count: int, rounds: int, train_records: int) -> dict[str, Any]:
    """Where a record's CPU goes, stage by stage, per partition and without the loop around them:

    * ``chain_text``: the chain alone over the plain HDFS lines (``detect`` on a text log, no scoring);
    * ``chain_json``: the same over the ECS JSON values (adds the JSON decoding and the record built from it);
    * ``chain_json_replay``: as a worker's partition builds it (its ledger as the replay hook, offsets tracked);
    * ``partition_read``: :meth:`PartitionStream.read` over the consumed records in 500-record batches
      (adds the records' conversion to lines, the metrics and the pending-window bookkeeping).

    Each is the best of ``rounds``, the four taken in turn within a round (the inputs frozen as in :func:`_cpu`).
    """
    from kafka import TopicPartition  # noqa: PLC0415

    from pipeline.records import RawLine  # noqa: PLC0415
    from pipeline.stages.chain import RecordChain  # noqa: PLC0415
    from pipeline.stages.templates import TemplateMiner  # noqa: PLC0415
    from pipeline.stream.dead_letters import DeadLetters  # noqa: PLC0415
    from pipeline.stream.ledger import PartitionLedger  # noqa: PLC0415
    from pipeline.stream.metrics import WorkerMetrics  # noqa: PLC0415
    from pipeline.stream.partition import PartitionStream  # noqa: PLC0415
    from tests.fakes import RecordingProducer, consumer_record  # noqa: PLC0415

    bundle = train(train_records)
    miner = TemplateMiner.from_state(bundle.miner_state)
    config = settings()
    text = config.merged({"log_format": "<Date> <Time> <Pid> <Level> <Component>: <Content>"})
    parts: dict[int, list[Any]] = {}
    for key, value in records(count):
        tp = TopicPartition("logs", partition_of(key))
        parts.setdefault(tp.partition, []).append(
            consumer_record(tp, len(parts.get(tp.partition, [])), value, key, KAFKA_TIME_MS))
    arrival = KAFKA_TIME_MS / 1000.0

    def chain_run(kind: str) -> None:
        for p, consumed in parts.items():
            origin = f"logs/{p}"
            if kind == "chain_text":
                chain = RecordChain(text, miner.match)
                raws = [RawLine(json.loads(r.value)["message"].encode(), origin, r.offset, r.key, arrival)
                        for r in consumed]
            else:
                replay = PartitionLedger(origin, 0) if kind == "chain_json_replay" else None
                chain = RecordChain(config, miner.match, json_mode="strict", replay=replay,
                                    track_offsets=replay is not None, origin=origin)
                raws = [RawLine(r.value, origin, r.offset, r.key, arrival) for r in consumed]
            add = chain.add
            start = time.process_time()
            for raw in raws:
                add(raw, 0.0)
            spent[kind] += time.process_time() - start

    def read_run() -> None:
        metrics, letters = WorkerMetrics(), DeadLetters(RecordingProducer(), None)
        for p, consumed in parts.items():
            tp = TopicPartition("logs", p)
            stream = PartitionStream(tp, config, miner.match, PartitionLedger(f"logs/{p}", 0), None, "json")
            start = time.process_time()
            for i in range(0, len(consumed), 500):
                stream.read(consumed[i:i + 500], metrics, letters)
                stream.accept()
            spent["partition_read"] += time.process_time() - start

    best = dict.fromkeys(STAGES, float("inf"))
    for _ in range(rounds + 1):  # the first round warms the module-wide masking memos, untimed
        spent = dict.fromkeys(STAGES, 0.0)
        for kind in STAGES[:3]:
            _cpu(lambda kind=kind: chain_run(kind))  # (for its freezing: chain_run times itself)
        _cpu(read_run)
        if _:
            best = {k: min(best[k], spent[k]) for k in STAGES}
    us = {k: round(v / count * 1e6, 2) for k, v in best.items()}
    return {"benchmark": "worker_inprocess.breakdown", "records": count, "rounds": rounds, "cpu_us_per_record": us,
            "json_decoding_us": round(us["chain_json"] - us["chain_text"], 2),
            "replay_bookkeeping_us": round(us["chain_json_replay"] - us["chain_json"], 2),
            "partition_us": round(us["partition_read"] - us["chain_json_replay"], 2)}


def profile(count: int, train_records: int, top: int) -> str:
    rig = WorkerRun(records(count), train(train_records))
    prof = cProfile.Profile()
    gc.collect()
    gc.freeze()  # as in _cpu
    prof.runcall(rig.run)
    gc.unfreeze()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_inprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-records", type=int, default=len(ss.sample_lines()))
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--breakdown", action="store_true", help="the per-stage figures instead (breakdown())")
    parser.add_argument("--profile", type=int, metavar="TOP", help="print a cProfile of one worker run instead")
    args = parser.parse_args(argv)
    parts = tuple(args.parts.split(","))
    if not set(parts) <= set(PARTS):
        parser.error(f"--parts: choose from {', '.join(PARTS)}")
    if args.breakdown:
        print(json.dumps(breakdown(args.records, args.rounds, args.train_records), indent=1))
        return 0
    if args.profile:
        print(profile(args.records, args.train_records, args.profile))
        return 0
    print(json.dumps(measure(args.records, args.rounds, args.train_records, parts), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
