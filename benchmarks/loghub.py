"""Shared loader for the Loghub-2k samples and the grouping-accuracy metric.

The samples are 2,000-line extracts of eight systems collected by the LogPAI team (Loghub,
https://github.com/logpai/loghub; Zhu et al., "Loghub: A Large Collection of System Log Datasets for
AI-driven Log Analytics", ISSRE 2023), each with a structured CSV that gives the message part
(``Content``) and its ground-truth template (``EventId``/``EventTemplate``).

The data lives beside the repository, never inside it: ``Path(repo_root).parent / "shared" / "data"``
(CI copies ``shared/`` next to its clone). ``LOGWARDEN_DATA`` overrides the location. Any benchmark may
import this module; it only reads files.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.stages.loghub_layouts import LOG_FORMATS, LOGHUB_LAYOUTS

__all__ = ["LOG_FORMATS", "LOGHUB_LAYOUTS", "SYSTEMS", "LoghubSample", "grouping_accuracy", "load_sample"]

REPO_ROOT = Path(__file__).resolve().parent.parent

SYSTEMS: tuple[str, ...] = ("Apache", "BGL", "HDFS", "Hadoop", "Linux", "OpenSSH", "Spark", "Zookeeper")


class DataMissing(FileNotFoundError):
    """The shared data folder (or one system's files) is not where it should be."""


def data_dir() -> Path:
    """Where the shared data lives: ``$LOGWARDEN_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("LOGWARDEN_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def loghub_dir() -> Path:
    return data_dir() / "loghub-2k"


@dataclass(frozen=True, slots=True)
class LoghubSample:
    """One system's sample: messages in file order with their ground-truth event ids and templates."""

    system: str
    contents: list[str]
    event_ids: list[str]
    event_templates: list[str]

    def __len__(self) -> int:
        return len(self.contents)


def raw_log_path(system: str) -> Path:
    return loghub_dir() / system / f"{system}_2k.log"


def structured_path(system: str) -> Path:
    return loghub_dir() / system / f"{system}_2k.log_structured.csv"


def load_sample(system: str, limit: int | None = None) -> LoghubSample:
    """Read ``NAME_2k.log_structured.csv`` (the first ``limit`` rows when given)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown loghub-2k system {system!r}; expected one of {', '.join(SYSTEMS)}")
    path = structured_path(system)
    if not path.is_file():
        raise DataMissing(f"loghub-2k data not found: {path}")
    contents: list[str] = []
    event_ids: list[str] = []
    templates: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if limit is not None and len(contents) >= limit:
                break
            contents.append(row["Content"])
            event_ids.append(row["EventId"])
            templates.append(row["EventTemplate"])
    return LoghubSample(system, contents, event_ids, templates)


def grouping_accuracy(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their ground-truth group.

    The metric of Zhu et al., "Tools and Benchmarks for Automated Log Parsing" (ICSE-SEIP 2019): a
    predicted group counts (all its lines) only when it equals one ground-truth group as a set.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} lines")
    if not truth:
        return 0.0
    pred_groups: dict[Hashable, list[int]] = defaultdict(list)
    truth_sizes: dict[Hashable, int] = defaultdict(int)
    for i, (p, t) in enumerate(zip(predicted, truth, strict=True)):
        pred_groups[p].append(i)
        truth_sizes[t] += 1
    correct = 0
    for lines in pred_groups.values():
        labels = {truth[i] for i in lines}
        if len(labels) == 1 and truth_sizes[next(iter(labels))] == len(lines):
            correct += len(lines)
    return correct / len(truth)
