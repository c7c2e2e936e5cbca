"""Throughput of the pipeline against Drain3 alone on the same lines, measured side by side in one run.

The figure is always a ratio: this machine is shared, so absolute rates move with the neighbours, while two
measurements taken in turn in one run see the same load. Three sections (JSON keys):

* ``inprocess``: lines/s of the in-process detection pipeline (decode, masking and templates, entities, windows,
  scoring: the shared :class:`pipeline.stages.chain.RecordChain` with a trained miner's ``match`` and
  :class:`pipeline.scoring.Scorer`, as ``logwarden detect`` runs them, documents for the anomalous windows as it
  writes by default), next to Drain3 alone
  (``drain3.TemplateMiner.add_log_message``, drain3-improved, on the message part of each line, already cut
  out, with the three masking regexes of Drain3's own example configuration: IPv4, hex, numbers) on the same
  lines. Inputs: HDFS lines (``examples/hdfs_sample.log`` rendered with unique block ids and later timestamps
  per copy, as :mod:`benchmarks.training_memory` does; the model is trained on other copies) and the mixed
  Loghub-2k lines of every system in ``shared/data`` (each through its own layout and a model trained on its
  own 2,000 lines). Each rate is the best of ``--rounds`` runs, taken in turn (wall and CPU time); a fresh
  miner per run and masking's module-level memos emptied, so no cache is warm. ``drain3_our_masking`` is
  Drain3 fed our masker's output (the same masking as ours, literally): it shows what the miner costs beyond
  masking.
* ``detect_process``: whole-process ``logwarden detect FILE --model-dir D --out -`` on ``--process-lines``
  lines (2,000,000 by default, so start-up is amortised) in a temporary directory, against a process that runs
  Drain3 alone over the same file (reading it, cutting out the message, ``add_log_message``); wall and CPU
  seconds of each child.
* ``train_rss``: peak RSS of ``logwarden train``'s streaming trainer on ``--train-lines`` lines (2,000,000 by
  default; goal <= 1 GiB), through :func:`benchmarks.training_memory.measure` (its own subprocess).

``--stream`` adds :mod:`benchmarks.stream_throughput` (Kafka and Elasticsearch). ``--quick`` runs small
sizes in seconds (the smoke test). Seeds and inputs are fixed. Usage::

    nice -n 10 python -m benchmarks.throughput                 # everything, full size (tens of minutes)
    python -m benchmarks.throughput --quick                    # small sizes
    python -m benchmarks.throughput --sections inprocess       # one section

Data: Loghub (https://github.com/logpai/loghub; Zhu et al., ISSRE 2023): HDFS_v1 and the Loghub-2k samples.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import training_memory
from benchmarks.loghub import LOG_FORMATS, SYSTEMS, raw_log_path

REPO = Path(__file__).resolve().parents[1]
HDFS_SETTINGS = training_memory.SETTINGS
HDFS_CONTENT = re.compile(rb"^\d{6} \d{6} \d+ \w+ [^:]+: (.*)$")
# Drain3's example masking (its drain3.ini): IPv4 addresses, hex numbers, decimal numbers.
DRAIN3_MASKING = (
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
)
SECTIONS = ("inprocess", "detect_process", "train_rss")
FULL = {"hdfs_lines": 200_000, "train_lines": 100_000, "loghub_lines": 2_000, "process_lines": 2_000_000,
        "rss_lines": 2_000_000, "rounds": 3}
QUICK = {"hdfs_lines": 6_000, "train_lines": 20_000, "loghub_lines": 300, "process_lines": 20_000, "rss_lines": 20_000,
         "rounds": 1}


def drain3_miner(masking: bool = True) -> Any:
    """Drain3 with its defaults and (``masking``) the example masking; no persistence, no profiling."""
    from drain3 import TemplateMiner  # noqa: PLC0415
    from drain3.masking import MaskingInstruction  # noqa: PLC0415
    from drain3.template_miner_config import TemplateMinerConfig  # noqa: PLC0415

    config = TemplateMinerConfig()
    if masking:
        config.masking_instructions = [MaskingInstruction(rx, name) for rx, name in DRAIN3_MASKING]
    return TemplateMiner(config=config)


def best_of(run: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``rounds`` runs (other load only ever slows a run).

    Before each run, everything alive (the inputs, the trained models, earlier results) is frozen out of the
    cyclic collector's full passes, for both sides alike, and comes back after: ``logwarden detect`` does the
    same for what exists at its start (``streaming_gc``), and otherwise a full pass over the benchmark's own
    50,000 input lines is charged to whichever side it happens in (Drain3's rate moved by 20% between runs
    with the pipeline's leftovers).
    """
    wall = cpu = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.freeze()
        try:
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        finally:
            gc.unfreeze()
    return wall, cpu


def _rates(lines: int, wall: float, cpu: float) -> dict[str, float]:
    return {"wall": round(lines / wall), "cpu": round(lines / max(cpu, 1e-9))}


class Case:
    """One input for the in-process section: raw lines, their messages, a trained model and its settings."""

    def __init__(self, name: str, raws: list[Any], settings: Any, bundle: Any) -> None:
        from pipeline.stages.chain import make_decoder  # noqa: PLC0415

        self.name, self.raws, self.settings, self.bundle = name, raws, settings, bundle
        decoder = make_decoder(settings)
        self.messages = [decoder.decode(raw).message for raw in raws]

    def pipeline(self) -> dict[str, int]:
        """One run of ``detect``'s chain and scorer over every line (:func:`pipeline.embedded.detect`), with the
        documents ``logwarden detect`` writes by default: those of the anomalous windows (``every=False``).

        Masking's module-level memos (shapes, tokens, collapse plans) outlive a miner: they are emptied first, so
        each run starts as cold as a ``detect`` process, not warmed by training or by the runs before it."""
        from pipeline.embedded import detect  # noqa: PLC0415
        from pipeline.stages.masking import clear_memos  # noqa: PLC0415

        clear_memos()
        documents, stats = detect((), self.settings, self.bundle, lines=iter(self.raws), every=False)
        anomalies = sum(doc["anomaly"]["is_anomaly"] for doc in documents)
        assert anomalies == stats.anomalies
        return {"windows": stats.windows, "anomalies": anomalies}

    def drain3(self) -> None:
        miner = drain3_miner()
        for message in self.messages:
            miner.add_log_message(message)

    def drain3_our_masking(self) -> None:
        from pipeline.stages.masking import mask  # noqa: PLC0415

        miner = drain3_miner(masking=False)
        for message in self.messages:
            miner.add_log_message(mask(message))


def _raw_lines(data: Iterable[bytes], origin: str = "bench") -> list[Any]:
    from pipeline.records import RawLine  # noqa: PLC0415

    return [RawLine(line, origin, number, None, 0.0, False) for number, line in enumerate(data, start=1)]


def hdfs_case(lines: int, train_lines: int) -> Case:
    """HDFS: a model trained on the first ``train_lines`` rendered lines, measured on the next ``lines``."""
    from pipeline.training import train_stream  # noqa: PLC0415

    rendered = list(training_memory.rendered(train_lines + lines))
    bundle = train_stream(iter(_raw_lines(rendered[:train_lines])), HDFS_SETTINGS)
    return Case("HDFS", _raw_lines(rendered[train_lines:]), HDFS_SETTINGS, bundle)


def loghub_cases(lines: int = 2000) -> list[Case]:
    """Each Loghub-2k system (its first ``lines`` lines) with its preset's layout, entity and window and a model
    trained on those lines."""
    from pipeline.config import PipelineSettings  # noqa: PLC0415
    from pipeline.stages import presets  # noqa: PLC0415
    from pipeline.training import train_stream  # noqa: PLC0415

    cases = []
    for system in SYSTEMS:
        name = f"loghub-{system.lower()}"
        settings = PipelineSettings().merged(presets.apply(name, {})).merged({"allow_untimed": True})
        if f"<{settings.entity_field}>" not in LOG_FORMATS[system]:  # Apache's layout has no component
            settings = settings.merged({"entity_field": "Level"})
        assert settings.log_format == LOG_FORMATS[system]
        raws = _raw_lines(raw_log_path(system).read_bytes().splitlines()[:lines], system)
        bundle = train_stream(iter(raws), settings, force=True)
        cases.append(Case(system, raws, settings, bundle))
    return cases


def _compare(cases: Sequence[Case], rounds: int) -> dict[str, Any]:
    """Pipeline vs Drain3 over ``cases`` (rates over all their lines), the three taken in turn per round."""
    lines = sum(len(case.raws) for case in cases)
    totals = {"pipeline": [float("inf")] * 2, "drain3": [float("inf")] * 2, "drain3_our_masking": [float("inf")] * 2}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for kind in totals:
            wall = cpu = 0.0
            for case in cases:
                def run(case: Case = case, kind: str = kind) -> None:
                    if kind == "pipeline":
                        for key, value in case.pipeline().items():
                            counts[f"{case.name}.{key}"] = value
                    else:
                        getattr(case, kind)()
                w, c = best_of(run, 1)
                wall, cpu = wall + w, cpu + c
            totals[kind] = [min(totals[kind][0], wall), min(totals[kind][1], cpu)]
    rates = {kind: _rates(lines, wall, cpu) for kind, (wall, cpu) in totals.items()}
    return {
        "lines": lines,
        "lines_per_s": rates,
        "ratio_vs_drain3": {k: round(rates["pipeline"][k] / rates["drain3"][k], 2) for k in ("wall", "cpu")},
        "ratio_vs_drain3_our_masking": {
            k: round(rates["pipeline"][k] / rates["drain3_our_masking"][k], 2) for k in ("wall", "cpu")},
        "windows": sum(v for k, v in counts.items() if k.endswith(".windows")),
        "anomalies": sum(v for k, v in counts.items() if k.endswith(".anomalies")),
    }


def inprocess(sizes: dict[str, int]) -> dict[str, Any]:
    mixed = _compare(loghub_cases(sizes["loghub_lines"]), sizes["rounds"])
    return {"hdfs": _compare([hdfs_case(sizes["hdfs_lines"], sizes["train_lines"])], sizes["rounds"]),
            "loghub_2k_mixed": mixed | {"systems": list(SYSTEMS)}}


def drain3_process(path: str) -> dict[str, int]:
    """The Drain3-alone process: read ``path``, cut out each line's message, learn it (``--drain3-file``)."""
    miner = drain3_miner()
    lines = 0
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            found = HDFS_CONTENT.match(line)
            miner.add_log_message((found.group(1) if found else line).decode("utf-8", "replace"))
            lines += 1
    return {"lines": lines, "clusters": len(miner.drain.clusters)}


def _child(args: list[str]) -> dict[str, Any]:
    """Run ``args`` to completion; its wall and CPU seconds (user + system, from the children's rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "stdout": done.stdout}


def _logwarden() -> str:
    beside = Path(sys.executable).parent / "logwarden"
    return str(beside) if beside.exists() else "logwarden"


def detect_process(sizes: dict[str, int]) -> dict[str, Any]:
    """Whole-process ``logwarden detect`` against a whole Drain3 process on the same ``process_lines`` lines."""
    lines, train_lines = sizes["process_lines"], sizes["train_lines"]
    fmt, entity = HDFS_SETTINGS.log_format, HDFS_SETTINGS.entity_regex
    assert fmt is not None and entity is not None
    with tempfile.TemporaryDirectory(prefix="logwarden-throughput-") as tmp:
        train_log, big_log, model_dir = Path(tmp) / "train.log", Path(tmp) / "detect.log", Path(tmp) / "models"
        rendered = training_memory.rendered(train_lines + lines)
        with open(train_log, "wb") as fh:
            for _, line in zip(range(train_lines), rendered, strict=False):
                fh.write(line + b"\n")
        with open(big_log, "wb") as fh:
            for line in rendered:
                fh.write(line + b"\n")
        subprocess.run([_logwarden(), "train", str(train_log), "--model-dir", str(model_dir), "--log-format", fmt,
                        "--entity-regex", entity], cwd=REPO, check=True, capture_output=True)
        ours = _child([_logwarden(), "detect", str(big_log), "--model-dir", str(model_dir), "--out", "-"])
        documents = ours.pop("stdout").count(b"\n")
        drain3 = _child([sys.executable, "-m", "benchmarks.throughput", "--drain3-file", str(big_log)])
        drain3.update(json.loads(drain3.pop("stdout")))
    return {
        "lines": lines,
        "logwarden_detect": ours | {"anomaly_documents": documents,
                                    "lines_per_s": {"wall": round(lines / ours["wall_s"]),
                                                    "cpu": round(lines / max(ours["cpu_s"], 1e-9))}},
        "drain3_process": drain3 | {"lines_per_s": {"wall": round(lines / drain3["wall_s"]),
                                                    "cpu": round(lines / max(drain3["cpu_s"], 1e-9))}},
        "ratio_vs_drain3": {"wall": round(drain3["wall_s"] / ours["wall_s"], 2),
                            "cpu": round(drain3["cpu_s"] / max(ours["cpu_s"], 1e-9), 2)},
    }


def train_rss(sizes: dict[str, int]) -> dict[str, Any]:
    result = training_memory.measure("stream", sizes["rss_lines"])
    result["peak_rss_under_1_gib"] = result["peak_rss_mib"] * 2**20 < training_memory.GiB
    return result


def run(sections: Sequence[str], sizes: dict[str, int], stream: bool = False, quick: bool = False) -> dict[str, Any]:
    """Every asked-for section, in order, into one JSON-ready report. ``stream`` adds the Kafka section."""
    report: dict[str, Any] = {"benchmark": "throughput", "python": platform.python_version(),
                              "cpus": os.cpu_count(), "sizes": sizes}
    measures = {"inprocess": inprocess, "detect_process": detect_process, "train_rss": train_rss}
    for name in sections:
        report[name] = measures[name](sizes)
        print(json.dumps({name: report[name]}), file=sys.stderr, flush=True)  # a long run keeps what it measured
    if stream:
        report["stream"] = stream_section(quick)
    return report


def stream_section(quick: bool) -> dict[str, Any]:
    """The Kafka/Elasticsearch measurements (:mod:`benchmarks.stream_throughput`; needs the servers)."""
    from benchmarks import stream_throughput  # noqa: PLC0415  (Kafka and Elasticsearch clients: only when asked)

    result: dict[str, Any] = stream_throughput.run(quick=quick)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds), for the smoke test")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--stream", action="store_true", help="also the Kafka/Elasticsearch section")
    for key in FULL:
        parser.add_argument(f"--{key.replace('_', '-')}", type=int,
                            help=f"default {FULL[key]:,} ({QUICK[key]:,} quick)")
    parser.add_argument("--drain3-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drain3_file:
        print(json.dumps(drain3_process(args.drain3_file)))
        return 0
    base = QUICK if args.quick else FULL
    overrides = {key: getattr(args, key) for key in FULL if getattr(args, key) is not None}
    sizes = base | overrides if overrides else base
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    print(json.dumps(run(sections, sizes, args.stream, args.quick), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
