"""The reference our HDFS detection is compared with: vanilla Drain3 plus loglizer's Isolation Forest recipe.

This is what a user would build from the well-known parts (He et al., "Experience Report: System Log Analysis for
Anomaly Detection", ISSRE 2016, and its loglizer toolkit; Drain3 from IBM): Drain3 (drain3-improved 0.10, the
maintained fork of 0.9.11) with its default configuration (no masking) run over the message part of every line; each
line counted once for every distinct block id it names (``blk_-?\\d+``, as loglizer's HDFS loader does); a raw
event-count matrix per block (no tf-idf, no normalisation) whose columns are the Drain3 clusters seen in training
(later clusters are dropped, loglizer's ``oov=False``); ``IsolationForest(max_samples=0.9999, contamination=0.03)``
fitted on the training stream's blocks without labels and predicting the test stream's blocks with its own
threshold.

The miner parses the training stream and then the test stream in one process, the way loglizer parsed the whole
HDFS log once before splitting it. PR-AUC ranks blocks by ``-score_samples`` (higher = more abnormal).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

HDFS_LINE = re.compile(r"^(?P<Date>\d{6}) (?P<Time>\d{6}) (?P<Pid>\d+) (?P<Level>\w+) (?P<Component>[^:]+): "
                       r"(?P<Content>.*)$")
BLOCK_RE = re.compile(r"blk_-?\d+")
CONTAMINATION = 0.03

BlockCounts = dict[str, Counter[int]]


def content(line: str) -> str:
    """The message part of an HDFS line (the whole line when it does not have the HDFS layout)."""
    match = HDFS_LINE.match(line)
    return match.group("Content") if match else line


def block_event_counts(miner: TemplateMiner, path: Path) -> BlockCounts:
    """Parse every line of ``path`` with ``miner`` (learning as it goes) and count clusters per block."""
    counts: BlockCounts = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            message = content(raw.rstrip("\n"))
            cluster = miner.add_log_message(message)["cluster_id"]
            for blk in set(BLOCK_RE.findall(message)):
                counts.setdefault(blk, Counter())[cluster] += 1
    return counts


def count_matrix(counts: BlockCounts, blocks: Iterable[str], columns: list[int]) -> np.ndarray:
    """Rows = ``blocks``, columns = cluster ids; absent blocks are all-zero rows, unknown clusters dropped."""
    index = {cid: j for j, cid in enumerate(columns)}
    block_list = list(blocks)
    matrix = np.zeros((len(block_list), len(columns)), dtype=float)
    for i, blk in enumerate(block_list):
        for cid, n in counts.get(blk, Counter()).items():
            j = index.get(cid)
            if j is not None:
                matrix[i, j] = n
    return matrix


def block_metrics(labels: Mapping[str, int], flagged: Mapping[str, bool], scores: Mapping[str, float]
                  ) -> dict[str, float | int]:
    """Per-block precision, recall and F1 of ``flagged`` and PR-AUC of ``scores`` against ``labels``.

    A labelled block missing from ``flagged``/``scores`` counts as not flagged with the lowest score.
    """
    blocks = sorted(labels)
    y_true = np.array([labels[b] for b in blocks], dtype=int)
    y_pred = np.array([bool(flagged.get(b, False)) for b in blocks], dtype=int)
    finite = [s for s in scores.values() if np.isfinite(s)]
    floor = (min(finite) - 1.0) if finite else 0.0
    y_score = np.array([scores.get(b, floor) for b in blocks], dtype=float)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", pos_label=1, zero_division=0)
    pr_auc = float(average_precision_score(y_true, y_score)) if y_true.any() else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "pr_auc": pr_auc,
        "blocks": len(blocks),
        "anomalous": int(y_true.sum()),
        "flagged": int(y_pred.sum()),
        "true_positives": int((y_true & y_pred).sum()),
        "missing": sum(1 for b in blocks if b not in scores),
    }


def run_reference(train_log: Path, test_log: Path, labels: Mapping[str, int], seed: int) -> dict[str, Any]:
    """Train on ``train_log`` (unlabelled), score the blocks of ``labels`` in ``test_log``; metrics and timing."""
    started = time.perf_counter()
    miner = TemplateMiner(config=TemplateMinerConfig())  # explicit defaults: never a stray drain3.ini
    train_counts = block_event_counts(miner, train_log)
    columns = sorted({cid for c in train_counts.values() for cid in c})
    test_counts = block_event_counts(miner, test_log)
    train_blocks = sorted(train_counts)
    forest = IsolationForest(max_samples=0.9999, contamination=CONTAMINATION, random_state=seed)
    forest.fit(count_matrix(train_counts, train_blocks, columns))
    test_blocks = sorted(labels)
    x_test = count_matrix(test_counts, test_blocks, columns)
    flagged = dict(zip(test_blocks, (forest.predict(x_test) == -1).tolist(), strict=True))
    scores = dict(zip(test_blocks, (-forest.score_samples(x_test)).tolist(), strict=True))
    result: dict[str, Any] = block_metrics(labels, flagged, scores)
    result.update(
        name="Drain3 defaults + loglizer IsolationForest",
        train_blocks=len(train_blocks),
        templates_train=len(columns),
        templates_total=len(miner.drain.clusters),
        seconds=round(time.perf_counter() - started, 2),
    )
    return result
