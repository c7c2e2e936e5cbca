"""HDFS end-to-end detection benchmark: Logwarden's defaults vs vanilla Drain3 + loglizer's Isolation Forest.

Two streams of raw HDFS lines are rendered (:mod:`benchmarks.hdfs_render`) from disjoint session sources:

* training: normal sessions of ``hdfs_train`` mixed with anomalous ones of ``hdfs_test_abnormal`` at 3%,
  unlabelled as in real life (a model trained on production logs sees the incidents in them too);
* test: other sessions, from ``robust_log_train.csv``, normal and anomalous at the same 3%.

Both systems train on the first and are scored per block on the second: precision, recall and F1 of the
blocks each flags, and PR-AUC of its scores (threshold-free). Ours runs through the CLI a user runs::

    logwarden train TRAIN.log --model-dir D --log-format '<Date> <Time> <Pid> <Level> <Component>: <Content>' \\
        --entity-regex 'blk_-?\\d+' --window session
    logwarden detect TEST.log --model-dir D --all-windows --out scores.jsonl

The reference is :mod:`benchmarks.reference`. Seeds are fixed, so a run is reproducible. Usage::

    python -m benchmarks.detection            # full size: 4,854 + 150 training, 6,000 + 186 test blocks
    python -m benchmarks.detection --quick    # small slice for CI
    python -m benchmarks.detection --json     # the JSON document on stdout (the table goes to stderr)

Data: HDFS_v1 block sessions from Loghub (https://github.com/logpai/loghub; Zhu et al., ISSRE 2023).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from benchmarks.hdfs_render import DEFAULT_START, load_source, mix, render, write_labels, write_log
from benchmarks.reference import BLOCK_RE, block_metrics, run_reference

HDFS_LOG_FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
ENTITY_REGEX = r"blk_-?\d+"
ANOMALOUS_RATE = 0.03
FULL_SIZES = (4854, 6000)  # normal sessions: all of hdfs_train; all normal sessions of robust_log_train.csv
QUICK_SIZES = (1000, 1000)
CLI_TIMEOUT_SECONDS = 600


def build_streams(workdir: Path, train_normal: int, test_normal: int, rate: float, seed: int,
                  test_rate: float | None = None) -> dict[str, Any]:
    """Render the training and test streams into ``workdir``; returns their paths, labels and sizes.

    ``rate`` is the training stream's anomalous share, ``test_rate`` the test stream's (default: ``rate``).
    """
    train_normal_src, train_anomalous_src = load_source("train")
    test_normal_src, test_anomalous_src = load_source("test")
    train = render(mix(train_normal_src, train_anomalous_src, train_normal, rate, random.Random(seed)), seed=seed)
    test_share = rate if test_rate is None else test_rate
    test = render(mix(test_normal_src, test_anomalous_src, test_normal, test_share, random.Random(seed + 1)),
                  seed=seed + 1, start=DEFAULT_START + timedelta(days=1))
    paths = {name: workdir / name for name in ("train.log", "train_labels.csv", "test.log", "test_labels.csv")}
    write_log(train, paths["train.log"])
    write_labels(train, paths["train_labels.csv"])
    write_log(test, paths["test.log"])
    write_labels(test, paths["test_labels.csv"])
    return {
        "paths": paths,
        "test_labels": dict(zip(test.block_ids, test.labels, strict=True)),
        "data": {
            "train": {"blocks": len(train.block_ids), "anomalous": sum(train.labels), "lines": len(train.lines)},
            "test": {"blocks": len(test.block_ids), "anomalous": sum(test.labels), "lines": len(test.lines)},
        },
    }


def logwarden_command() -> str | None:
    """The ``logwarden`` script of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "logwarden"
    return str(beside) if beside.exists() else shutil.which("logwarden")


def unavailable_reason(command: str | None) -> str | None:
    """Why ``logwarden train`` cannot run here, or None when it can."""
    if command is None:
        return "the logwarden command is not installed (pip install -e .)"
    try:
        proc = subprocess.run([command, "train", "--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"logwarden train --help failed: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"logwarden train is not available yet: {last}"
    return None


def read_scores(path: Path) -> tuple[dict[str, float], dict[str, bool]]:
    """Per-block score (max over a block's windows) and flag (any window) from ``detect --out`` JSON lines."""
    scores: dict[str, float] = {}
    flagged: dict[str, bool] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            entity = doc["entity"]["id"] if "entity" in doc else doc["entity.id"]
            anomaly = doc["anomaly"] if "anomaly" in doc else {
                "score": doc["anomaly.score"], "is_anomaly": doc["anomaly.is_anomaly"]}
            match = BLOCK_RE.search(str(entity))
            if match is None:
                continue
            blk = match.group(0)
            scores[blk] = max(float(anomaly["score"]), scores.get(blk, float("-inf")))
            flagged[blk] = bool(anomaly["is_anomaly"]) or flagged.get(blk, False)
    return scores, flagged


def _run_cli(args: Sequence[str]) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise RuntimeError(f"{' '.join(args[1:3])} failed: {detail[0]}")


def run_ours(command: str, train_log: Path, test_log: Path, labels: Mapping[str, int], workdir: Path
             ) -> dict[str, Any]:
    """``logwarden train`` then ``detect --all-windows`` through the CLI; per-block metrics and timing."""
    started = time.perf_counter()
    model_dir = workdir / "model"
    out = workdir / "scores.jsonl"
    _run_cli([command, "train", str(train_log), "--model-dir", str(model_dir), "--log-format", HDFS_LOG_FORMAT,
              "--entity-regex", ENTITY_REGEX, "--window", "session"])
    trained = time.perf_counter()
    _run_cli([command, "detect", str(test_log), "--model-dir", str(model_dir), "--all-windows", "--out", str(out)])
    scores, flagged = read_scores(out)
    result: dict[str, Any] = block_metrics(labels, flagged, scores)
    result.update(name="Logwarden defaults", train_seconds=round(trained - started, 2),
                  seconds=round(time.perf_counter() - started, 2))
    return result


def run_benchmark(train_normal: int, test_normal: int, seed: int = 0, rate: float = ANOMALOUS_RATE,
                  workdir: Path | None = None, ours: bool = True) -> dict[str, Any]:
    """Render both streams, run the reference and (when available) ours; the benchmark's JSON document."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="logwarden-detection-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        streams = build_streams(work, train_normal, test_normal, rate, seed)
        paths, labels = streams["paths"], streams["test_labels"]
        report: dict[str, Any] = {
            "benchmark": "hdfs-detection",
            "config": {"train_normal": train_normal, "test_normal": test_normal, "anomalous_rate": rate,
                       "seed": seed, "log_format": HDFS_LOG_FORMAT, "entity_regex": ENTITY_REGEX},
            "data": streams["data"],
            "reference": run_reference(paths["train.log"], paths["test.log"], labels, seed),
        }
        command = logwarden_command()
        reason = unavailable_reason(command) if ours else "not requested"
        if reason is not None or command is None:
            report["ours"] = {"name": "Logwarden defaults", "skipped": reason}
        else:
            try:
                report["ours"] = run_ours(command, paths["train.log"], paths["test.log"], labels, work)
            except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
                report["ours"] = {"name": "Logwarden defaults", "error": str(exc)}
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def print_table(report: Mapping[str, Any], out: TextIO) -> None:
    data = report["data"]
    print(f"HDFS detection: train {data['train']['blocks']} blocks ({data['train']['anomalous']} anomalous, "
          f"unlabelled), test {data['test']['blocks']} blocks ({data['test']['anomalous']} anomalous)", file=out)
    print(f"{'system':<46}{'precision':>10}{'recall':>8}{'F1':>8}{'PR-AUC':>8}{'seconds':>9}", file=out)
    for key in ("reference", "ours"):
        row = report[key]
        if "f1" in row:
            print(f"{row['name']:<46}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}"
                  f"{row['pr_auc']:>8.3f}{row['seconds']:>9.1f}", file=out)
        else:
            print(f"{row['name']:<46}  {'skipped: ' + row['skipped'] if 'skipped' in row else row['error']}",
                  file=out)
    print(f"total {report['seconds']:.1f} s", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection",
                                     description="HDFS detection benchmark: Logwarden vs Drain3 + loglizer IF.")
    parser.add_argument("--train-sessions", type=int, help="normal sessions in the training stream "
                        f"(default {FULL_SIZES[0]}; anomalous ones are added at --anomalous-rate)")
    parser.add_argument("--test-sessions", type=int,
                        help=f"normal sessions in the test stream (default {FULL_SIZES[1]})")
    parser.add_argument("--anomalous-rate", type=float, default=ANOMALOUS_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"small slice for CI ({QUICK_SIZES[0]} + {QUICK_SIZES[1]} normal sessions)")
    parser.add_argument("--reference-only", action="store_true", help="skip Logwarden, run the reference only")
    parser.add_argument("--workdir", type=Path, help="keep the rendered streams and model here")
    parser.add_argument("--json", action="store_true", help="print the JSON document on stdout, the table on stderr")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    try:
        report = run_benchmark(args.train_sessions or sizes[0], args.test_sessions or sizes[1], args.seed,
                               args.anomalous_rate, args.workdir, ours=not args.reference_only)
    except (OSError, ValueError) as exc:
        print(f"detection benchmark: {exc}", file=sys.stderr)
        return 2
    print_table(report, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2))
    return 1 if "error" in report["ours"] else 0


if __name__ == "__main__":
    sys.exit(main())
