"""Precision, recall, F1 and PR-AUC of a model on labelled entities.

Labels name entities (an HDFS block, a host), not windows: an entity is *predicted* abnormal when any of its
windows scored above the model's threshold, and its score for the ranking metric (PR-AUC, average precision) is
the highest score of its windows. That is how Loghub labels HDFS sessions and how an SRE reads an alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def entity_metrics(labels: Mapping[str, bool], scores: Mapping[str, float], flagged: Mapping[str, bool],
                   threshold: float) -> dict[str, Any]:
    """Metrics over the entities both labelled and scored; counts of those only on one side.

    ``scores``: entity -> highest window score; ``flagged``: entity -> any window above the threshold.
    ``pr_auc`` is None when no evaluated entity is abnormal (it is undefined then).
    """
    evaluated = sorted(set(labels) & set(scores))
    y_true = np.array([labels[e] for e in evaluated], dtype=bool)
    y_pred = np.array([flagged[e] for e in evaluated], dtype=bool)
    y_score = np.array([scores[e] for e in evaluated], dtype=float)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    from sklearn.metrics import average_precision_score  # noqa: PLC0415 - scikit-learn only when evaluating

    pr_auc = float(average_precision_score(y_true, y_score)) if y_true.any() and len(y_true) else None
    return {
        "threshold": float(threshold),
        "entities": len(evaluated),
        "anomalous": int(y_true.sum()),
        "flagged": int(y_pred.sum()),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "pr_auc": None if pr_auc is None else round(pr_auc, 6),
        "labelled_not_seen": len(set(labels) - set(scores)),
        "seen_not_labelled": len(set(scores) - set(labels)),
    }
