"""HDFS detection with stack traces mixed in: joined, the figures hold; not joined, they drop.

The HDFS streams of :mod:`benchmarks.detection` (same rendering, seeds and scoring) get Java stack traces in a
share of their blocks, normal and anomalous alike, so a trace says nothing about the label: after one line of
each chosen block comes a DataNode exception, ten ``\\tat`` frames and a ``Caused by:`` line that names the
block (exception messages name what failed). The story: after a deploy, a benign retry path logs its
exception with a stack trace; the training stream (before the deploy) has none (``--train-share``, default 0),
the test stream has them in 10% of its blocks (``--share``). Three runs of ``logwarden train`` + ``detect``:

* ``plain``: the streams without traces (the detection benchmark's own figures);
* ``joined``: with traces and the defaults, which join each trace to the record before it
  (:mod:`pipeline.stages.multiline`): the block's windows are what they were, the figures should match ``plain``;
* ``not joined``: with traces and ``--no-multiline``: every frame is a record (those that name no block are
  records without entity), the ``Caused by:`` line lands in the block's window as a template never seen in
  training, and every block with a trace looks new, whatever its label: precision drops.

Usage::

    python -m benchmarks.multiline            # full size (as benchmarks.detection)
    python -m benchmarks.multiline --quick    # the small slice CI smoke-tests
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.detection import (
    ENTITY_REGEX,
    FULL_SIZES,
    HDFS_LOG_FORMAT,
    QUICK_SIZES,
    _run_cli,
    build_streams,
    logwarden_command,
    read_scores,
    unavailable_reason,
)
from benchmarks.reference import BLOCK_RE, block_metrics

TRACE_SHARE = 0.10
TRAIN_TRACE_SHARE = 0.0
FRAMES = (
    "org.apache.hadoop.hdfs.server.datanode.BlockReceiver.receivePacket(BlockReceiver.java:{n})",
    "org.apache.hadoop.hdfs.server.datanode.BlockReceiver.receiveBlock(BlockReceiver.java:{m})",
    "org.apache.hadoop.hdfs.server.datanode.DataXceiver.writeBlock(DataXceiver.java:412)",
    "org.apache.hadoop.hdfs.server.datanode.DataXceiver.run(DataXceiver.java:107)",
    "java.lang.Thread.run(Thread.java:619)",
)


def trace_for(block: str, rng: random.Random) -> list[str]:
    """A DataNode exception as Java prints it; only the ``Caused by:`` line names the block."""
    lines = [f"java.io.IOException: Connection reset by peer (attempt {rng.randrange(1, 4)})"]
    for frame in FRAMES * 2:
        lines.append("\tat " + frame.format(n=rng.randrange(200, 400), m=rng.randrange(400, 600)))
    lines.append(f"Caused by: java.io.IOException: Broken pipe while writing {block}")
    lines.append(f"\t... {rng.randrange(3, 9)} more")
    return lines


def add_traces(src: Path, dst: Path, share: float, seed: int) -> int:
    """Copy ``src`` to ``dst`` with a trace after the first line of ``share`` of the blocks; returns how many."""
    rng = random.Random(seed)
    blocks: list[str] = []
    seen: set[str] = set()
    with src.open(encoding="utf-8") as fh:
        for line in fh:
            match = BLOCK_RE.search(line)
            if match and match.group(0) not in seen:
                seen.add(match.group(0))
                blocks.append(match.group(0))
    chosen = set(rng.sample(blocks, round(share * len(blocks))))
    done: set[str] = set()
    with src.open(encoding="utf-8") as fh, dst.open("w", encoding="utf-8") as out:
        for line in fh:
            out.write(line)
            match = BLOCK_RE.search(line)
            if match and match.group(0) in chosen and match.group(0) not in done:
                done.add(match.group(0))
                out.write("\n".join(trace_for(match.group(0), rng)) + "\n")
    return len(done)


def run_case(command: str, name: str, train: Path, test: Path, labels: dict[str, int], work: Path,
             extra: Sequence[str] = ()) -> dict[str, Any]:
    started = time.perf_counter()
    model, out = work / f"model-{name}", work / f"scores-{name}.jsonl"
    _run_cli([command, "train", str(train), "--model-dir", str(model), "--log-format", HDFS_LOG_FORMAT,
              "--entity-regex", ENTITY_REGEX, "--window", "session", *extra])
    _run_cli([command, "detect", str(test), "--model-dir", str(model), "--all-windows", "--out", str(out), *extra])
    scores, flagged = read_scores(out)
    result: dict[str, Any] = block_metrics(labels, flagged, scores)
    result.update(name=name, seconds=round(time.perf_counter() - started, 2))
    return result


def run_benchmark(train_normal: int, test_normal: int, seed: int = 0, share: float = TRACE_SHARE,
                  train_share: float = TRAIN_TRACE_SHARE, workdir: Path | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    command = logwarden_command()
    reason = unavailable_reason(command)
    if reason is not None or command is None:
        return {"benchmark": "hdfs-multiline", "skipped": reason}
    with tempfile.TemporaryDirectory(prefix="logwarden-multiline-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        streams = build_streams(work, train_normal, test_normal, 0.03, seed)
        paths, labels = streams["paths"], streams["test_labels"]
        traced = {name: work / f"traced-{name}.log" for name in ("train", "test")}
        counts = {name: add_traces(paths[f"{name}.log"], traced[name], rate, seed + i)
                  for i, (name, rate) in enumerate((("train", train_share), ("test", share)))}
        anomalous = {b for b, y in labels.items() if y}
        with traced["test"].open(encoding="utf-8") as fh:
            traced_anomalous = len({m.group(0) for line in fh if line.startswith("Caused by:")
                                    for m in [BLOCK_RE.search(line)] if m and m.group(0) in anomalous})
        plain = run_case(command, "plain", paths["train.log"], paths["test.log"], labels, work)
        joined = run_case(command, "joined", traced["train"], traced["test"], labels, work)
        split = run_case(command, "not joined", traced["train"], traced["test"], labels, work, ["--no-multiline"])
    ratios = {f"{case['name']} / plain": {k: round(case[k] / plain[k], 3) if plain[k] else None
                                          for k in ("f1", "pr_auc")} for case in (joined, split)}
    return {"benchmark": "hdfs-multiline",
            "config": {"train_normal": train_normal, "test_normal": test_normal, "seed": seed,
                       "trace_share": {"train": train_share, "test": share}},
            "data": {**streams["data"], "traces": counts, "test_anomalous_with_trace": traced_anomalous},
            "plain": plain, "joined": joined, "not_joined": split, "ratios": ratios,
            "seconds": round(time.perf_counter() - started, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multiline", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small slice ({QUICK_SIZES[0]} + {QUICK_SIZES[1]})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--share", type=float, default=TRACE_SHARE, help="share of test blocks given a stack trace")
    parser.add_argument("--train-share", type=float, default=TRAIN_TRACE_SHARE,
                        help="share of training blocks given one")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    report = run_benchmark(*sizes, seed=args.seed, share=args.share, train_share=args.train_share,
                           workdir=args.workdir)
    json.dump(report, sys.stdout, indent=2)
    print()
    if "skipped" in report:
        return 1
    for case in ("plain", "joined", "not_joined"):
        r = report[case]
        print(f"{r['name']:<11} precision {r['precision']:.3f} recall {r['recall']:.3f} F1 {r['f1']:.3f} "
              f"PR-AUC {r['pr_auc']:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
