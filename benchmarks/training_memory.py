"""Peak memory and time of bounded-memory training on millions of lines, against in-memory training in one run.

Input: ``examples/hdfs_sample.log`` (19,473 HDFS lines, 1,000 blocks) repeated with every copy's block ids made
unique (a copy number appended) and its timestamps moved 10 minutes later per copy, so ``--lines 2000000`` is
about 103 copies: ~103,000 block sessions over 17 hours of log time, streamed into the trainer as they are
rendered (no file). What is measured, each in its own subprocess so the peak RSS (``ru_maxrss``) is its own:

* ``stream``: :func:`pipeline.training.train_stream` (what ``logwarden train`` runs) on ``--lines`` lines;
* the reference, on the first ``--reference-lines`` lines: the same streaming trainer and
  :func:`pipeline.embedded.train`, which keeps every window in memory (what training did before), with the
  ratios of their peak RSS and time.

Prints JSON. Usage::

    nice -n 10 python -m benchmarks.training_memory                      # 2,000,000 lines, reference 200,000
    python -m benchmarks.training_memory --lines 300000 --reference-lines 100000
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import PipelineSettings
from pipeline.records import RawLine

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "hdfs_sample.log"
SETTINGS = PipelineSettings(log_format="<Date> <Time> <Pid> <Level> <Component>: <Content>",
                            entity_regex=r"blk_-?\d+")
_BLOCK = re.compile(rb"(blk_-?\d+)")
GiB = 1 << 30


def rendered(n: int) -> Iterator[bytes]:
    """``n`` HDFS lines: copies of the sample with unique block ids and later timestamps per copy."""
    base = SAMPLE.read_bytes().splitlines()
    produced = 0
    copy = 0
    while produced < n:
        shift = timedelta(minutes=10 * copy)
        suffix = b"%04d" % copy
        for line in base:
            if produced >= n:
                return
            when = datetime.strptime(line[:13].decode(), "%y%m%d %H%M%S") + shift
            yield when.strftime("%y%m%d %H%M%S").encode() + _BLOCK.sub(rb"\g<1>" + suffix, line[13:])
            produced += 1
        copy += 1


def raw_lines(n: int) -> Iterator[RawLine]:
    for number, data in enumerate(rendered(n), start=1):
        yield RawLine(data, "bench", number, None, 0.0, False)


def run_one(kind: str, lines: int, path: str | None) -> dict[str, Any]:
    """One measurement in this process (called by the subprocess)."""
    from pipeline import embedded, training  # noqa: PLC0415
    from pipeline.sources.files import read_lines  # noqa: PLC0415

    start = time.perf_counter()
    if kind == "stream":
        source = read_lines([path], max_line_bytes=SETTINGS.max_line_bytes) if path else raw_lines(lines)
        bundle = training.train_stream(source, SETTINGS)
    else:
        assert path is not None
        bundle = embedded.train([path], SETTINGS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"lines": bundle.stats["lines"], "windows": bundle.stats["windows"],
            "sampled_windows": bundle.stats.get("sampled_windows", bundle.stats["windows"]),
            "templates": bundle.stats["templates"], "seconds": round(seconds, 1),
            "lines_per_second": round(bundle.stats["lines"] / seconds), "peak_rss_mib": round(peak / 2**20, 1)}


def measure(kind: str, lines: int, path: str | None = None) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.training_memory", "--run", kind, "--lines", str(lines)]
    if path:
        args += ["--path", path]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--reference-lines", type=int, default=200_000)
    parser.add_argument("--run", choices=("stream", "in_memory"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run, args.lines, args.path)))
        return
    result: dict[str, Any] = {"stream": measure("stream", args.lines)}
    result["stream"]["peak_rss_under_1_gib"] = result["stream"]["peak_rss_mib"] * 2**20 < GiB
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "reference.log")
        with open(path, "wb") as fh:
            for line in rendered(args.reference_lines):
                fh.write(line + b"\n")
        stream = measure("stream", args.reference_lines, path)
        in_memory = measure("in_memory", args.reference_lines, path)
    result["reference"] = {
        "lines": args.reference_lines, "stream": stream, "in_memory": in_memory,
        "rss_ratio_in_memory_over_stream": round(in_memory["peak_rss_mib"] / stream["peak_rss_mib"], 2),
        "time_ratio_in_memory_over_stream": round(in_memory["seconds"] / stream["seconds"], 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
