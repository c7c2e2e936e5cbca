"""Decoding throughput on the Loghub-2k samples: lines per second, printed as JSON.

Each system's 2,000 raw lines (Loghub, https://github.com/logpai/loghub; Zhu et al., ISSRE 2023) are
repeated to ``--lines`` lines and decoded with the system's logparser format and auto-detected time layout
(``decode``), then written to a temporary file and read back with ``read_lines`` (``read``) and read plus
decoded (``read_decode``); each rate is lines per second by wall clock and per CPU second. Two more inputs:
the HDFS lines without a format (plain text with a leading timestamp) and the HDFS records rendered as ECS
JSON lines. The Loghub samples are sparse in time (most lines carry a new timestamp), so this is a worst
case for the time-parsing cache.

    python -m benchmarks.decoding_speed [--lines 200000] [--systems HDFS,BGL]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.loghub import LOG_FORMATS, SYSTEMS, raw_log_path
from benchmarks.throughput import best_of
from pipeline.records import RawLine
from pipeline.sources.files import read_lines
from pipeline.stages.decoding import Decoder


def _rate(lines: int, run: Callable[[], object], rounds: int = 3) -> dict[str, int]:
    """Lines per second, best of ``rounds`` runs, by wall clock and by this process's CPU time.

    Best, not mean: other load only ever slows a run. CPU time is the steadier number on a shared machine.
    """
    wall, cpu = best_of(run, rounds)
    return {"wall": round(lines / wall), "cpu": round(lines / max(cpu, 1e-9))}


def _bench(name: str, raws: list[RawLine], log_format: str | None, tmp: Path) -> dict[str, Any]:
    path = tmp / f"{name}.log"
    path.write_bytes(b"".join(raw.data + b"\n" for raw in raws))

    def decode() -> None:
        decoder = Decoder(log_format)
        for raw in raws:
            decoder.decode(raw)

    def read() -> None:
        for _ in read_lines([str(path)]):
            pass

    def read_decode() -> None:
        decoder = Decoder(log_format)
        for raw in read_lines([str(path)]):
            decoder.decode(raw)

    check = Decoder(log_format)
    flagged = sum(1 for raw in raws[:20000] if check.decode(raw).flags)
    return {
        "input": name,
        "log_format": log_format,
        "lines": len(raws),
        "decode_lines_per_s": _rate(len(raws), decode),
        "read_lines_per_s": _rate(len(raws), read),
        "read_decode_lines_per_s": _rate(len(raws), read_decode),  # {"wall": ..., "cpu": ...} each
        "time_layout": check.time_layout,
        "flagged_in_first_20000": flagged,
    }


def _as_json_lines(raws: list[RawLine], log_format: str) -> list[RawLine]:
    decoder = Decoder(log_format)
    out = []
    for raw in raws:
        record = decoder.decode(raw)
        doc = {"@timestamp": record.timestamp and int(record.timestamp * 1000), "message": record.message,
               "log": {"level": record.fields.get("Level")}, "process": {"pid": record.fields.get("Pid")},
               "service.name": record.fields.get("Component")}
        out.append(RawLine(json.dumps(doc).encode(), raw.origin, raw.offset))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decoding_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines per input (the 2k sample repeated)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated loghub-2k systems")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for system in [s for s in args.systems.split(",") if s]:
            sample = list(read_lines([str(raw_log_path(system))]))
            raws = (sample * (args.lines // len(sample) + 1))[: args.lines]
            results.append(_bench(system, raws, LOG_FORMATS[system], tmp))
            if system == "HDFS":
                results.append(_bench("HDFS-plain", raws, None, tmp))
                results.append(_bench("HDFS-ecs-json", _as_json_lines(raws, LOG_FORMATS["HDFS"]), None, tmp))
    report = {"benchmark": "decoding_speed", "python": platform.python_version(), "results": results}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
