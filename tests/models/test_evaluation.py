from __future__ import annotations

import pytest

from models.evaluation import entity_metrics


def test_counts_and_figures() -> None:
    labels = {"a": True, "b": True, "c": False, "d": False, "only_labelled": True}
    scores = {"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.1, "only_seen": 0.5}
    flagged = {"a": True, "b": False, "c": True, "d": False, "only_seen": False}
    m = entity_metrics(labels, scores, flagged, 0.5)
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (1, 1, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["pr_auc"] == pytest.approx((1.0 + 2 / 3) / 2)  # ranks a, c, b, d
    assert m["entities"] == 4 and m["labelled_not_seen"] == 1 and m["seen_not_labelled"] == 1


def test_no_anomaly_leaves_pr_auc_undefined() -> None:
    m = entity_metrics({"a": False}, {"a": 0.1}, {"a": False}, 0.5)
    assert m["pr_auc"] is None and m["precision"] == 0.0 and m["f1"] == 0.0
