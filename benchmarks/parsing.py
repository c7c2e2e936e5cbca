"""Parsing benchmark: grouping accuracy of our default template miner vs Drain3's defaults.

For each Loghub-2k system (Zhu et al., ISSRE 2023, https://github.com/logpai/loghub) the ``Content``
column of the structured CSV is fed, in file order, to

* **ours**: :class:`pipeline.templates.TemplateMiner` with its default :class:`MinerConfig` (one
  configuration for every system); every line is tagged with its final template after all lines are
  learnt (``learn_cluster`` then ``final_template``), as ``logwarden parse`` does;
* **drain3**: ``drain3.TemplateMiner`` (drain3-improved 0.10, the maintained fork of 0.9.11) with a
  default ``TemplateMinerConfig`` (no masking, sim_th 0.4, depth 4), each line tagged with the cluster
  it joined (Drain clusters never merge, so that is also its final cluster).

Grouping accuracy (GA) is the metric of Zhu et al., ICSE-SEIP 2019 (see :mod:`benchmarks.loghub`).
The run also reports our learn and match speed (lines/s, single thread, masking included) and GA when
the lines are tagged through ``match`` after training instead (the inference path).

Usage (from the repository root)::

    python -m benchmarks.parsing                  # table, then JSON on the last line
    python -m benchmarks.parsing --json           # JSON only
    python -m benchmarks.parsing --systems Linux OpenSSH --limit 300
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict
from typing import Any

from drain3 import TemplateMiner as Drain3Miner
from drain3.template_miner_config import TemplateMinerConfig

from benchmarks.loghub import SYSTEMS, DataMissing, LoghubSample, grouping_accuracy, load_sample
from models.artifacts import module_distribution
from pipeline.stages.masking import mask_token
from pipeline.stages.templates import MinerConfig, TemplateMiner


def run_ours(sample: LoghubSample, config: MinerConfig) -> dict[str, Any]:
    """GA and speed of our miner on one sample; the token cache starts cold for a fair speed."""
    mask_token.cache_clear()
    miner = TemplateMiner(config)
    start = time.perf_counter()
    handles = [miner.learn_cluster(line) for line in sample.contents]
    learn_s = time.perf_counter() - start
    learnt_ids = [miner.final_template(h).template_id for h in handles]
    start = time.perf_counter()
    matched = [miner.match(line) for line in sample.contents]
    match_s = time.perf_counter() - start
    n = len(sample)
    return {
        "ga": grouping_accuracy(learnt_ids, sample.event_ids),
        "ga_match": grouping_accuracy([m.template_id for m in matched], sample.event_ids),
        "templates": len(miner.templates()),
        "unknown_on_match": sum(not m.known for m in matched),
        "learn_lines_per_s": n / learn_s if learn_s else None,
        "match_lines_per_s": n / match_s if match_s else None,
    }


def run_drain3(sample: LoghubSample) -> dict[str, Any]:
    """GA of drain3's TemplateMiner with a default TemplateMinerConfig (no drain3.ini lookup)."""
    miner = Drain3Miner(config=TemplateMinerConfig())
    ids = [miner.add_log_message(line)["cluster_id"] for line in sample.contents]
    return {"ga": grouping_accuracy(ids, sample.event_ids), "templates": len(miner.drain.clusters)}


def run(systems: list[str], limit: int | None) -> dict[str, Any]:
    config = MinerConfig()
    rows: dict[str, Any] = {}
    for system in systems:
        sample = load_sample(system, limit)
        rows[system] = {
            "lines": len(sample),
            "truth_templates": len(set(sample.event_ids)),
            "ours": run_ours(sample, config),
            "drain3": run_drain3(sample),
        }
    ours = [r["ours"]["ga"] for r in rows.values()]
    ref = [r["drain3"]["ga"] for r in rows.values()]
    lines = sum(r["lines"] for r in rows.values())
    learn_time = sum(r["lines"] / r["ours"]["learn_lines_per_s"] for r in rows.values())
    match_time = sum(r["lines"] / r["ours"]["match_lines_per_s"] for r in rows.values())
    return {
        "benchmark": "parsing",
        "data": "loghub-2k (Loghub, Zhu et al., ISSRE 2023)",
        "limit": limit,
        "config": asdict(config),
        "versions": {"drain3": " ".join(module_distribution()), "python": sys.version.split()[0]},
        "systems": rows,
        "summary": {
            "ours_mean_ga": statistics.fmean(ours),
            "ours_min_ga": min(ours),
            "drain3_mean_ga": statistics.fmean(ref),
            "drain3_min_ga": min(ref),
            "ours_learn_lines_per_s": lines / learn_time,
            "ours_match_lines_per_s": lines / match_time,
        },
    }


def render_table(result: dict[str, Any]) -> str:
    head = (
        f"{'system':<10} {'lines':>5} {'GA ours':>8} {'GA drain3':>9} {'GA match':>8} "
        f"{'tpl ours':>8} {'tpl d3':>6} {'truth':>5} {'learn/s':>8} {'match/s':>8}"
    )
    out = [head, "-" * len(head)]
    for system, r in result["systems"].items():
        o, d = r["ours"], r["drain3"]
        out.append(
            f"{system:<10} {r['lines']:>5} {o['ga']:>8.4f} {d['ga']:>9.4f} {o['ga_match']:>8.4f} "
            f"{o['templates']:>8} {d['templates']:>6} {r['truth_templates']:>5} "
            f"{o['learn_lines_per_s']:>8.0f} {o['match_lines_per_s']:>8.0f}"
        )
    s = result["summary"]
    out.append("-" * len(head))
    out.append(f"{'mean':<10} {'':>5} {s['ours_mean_ga']:>8.4f} {s['drain3_mean_ga']:>9.4f}")
    out.append(f"{'min':<10} {'':>5} {s['ours_min_ga']:>8.4f} {s['drain3_min_ga']:>9.4f}")
    out.append(
        f"speed (ours, all lines): learn {s['ours_learn_lines_per_s']:.0f} lines/s, "
        f"match {s['ours_match_lines_per_s']:.0f} lines/s"
    )
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parsing", description=__doc__.split("\n")[0])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), metavar="SYSTEM")
    parser.add_argument("--limit", type=int, default=None, help="use the first N lines of each system")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive number of lines")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("drain3").setLevel(logging.WARNING)
    try:
        result = run(args.systems, args.limit)
    except DataMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(render_table(result))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
