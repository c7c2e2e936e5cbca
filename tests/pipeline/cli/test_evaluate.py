"""``logwarden evaluate`` and ``train --labels --eval``: figures that agree with the detect output, both label
formats, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sklearn.metrics import average_precision_score

from tests.pipeline.cli.test_files import HDFS_FLAGS, LABELS, SAMPLE, assert_user_error, run, trained  # noqa: F401


def loghub_labels(tmp_path: Path) -> Path:
    path = tmp_path / "anomaly_label.csv"
    rows = list(csv.DictReader(LABELS.open()))
    path.write_text("BlockId,Label\n" + "".join(
        f"{r['block_id']},{'Anomaly' if r['label'] == '1' else 'Normal'}\n" for r in rows))
    return path


def test_evaluate_agrees_with_detect_output(trained: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "all.jsonl"
    assert run("detect", str(SAMPLE), "--model-dir", str(trained), "--out", str(out), "--all-windows").exit_code == 0
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    labels = {r["block_id"]: r["label"] == "1" for r in csv.DictReader(LABELS.open())}
    flagged = {d["entity"]["id"] for d in docs if d["anomaly"]["is_anomaly"]}
    tp = sum(labels[e] for e in flagged)
    scores = {}
    for d in docs:
        scores[d["entity"]["id"]] = max(scores.get(d["entity"]["id"], -1e9), d["anomaly"]["score"])
    ids = sorted(scores)
    want_auc = average_precision_score([labels[e] for e in ids], [scores[e] for e in ids])

    result = run("evaluate", str(SAMPLE), "--model-dir", str(trained), "--labels", str(LABELS), "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["true_positives"] == tp and got["flagged"] == len(flagged)
    assert got["precision"] == pytest.approx(tp / len(flagged), abs=1e-6)
    assert got["recall"] == pytest.approx(tp / sum(labels.values()), abs=1e-6)
    assert got["pr_auc"] == pytest.approx(want_auc, abs=1e-6)
    assert got["entities"] == len(labels) and got["model"] == (trained / "CURRENT").read_text().strip()

    loghub = run("evaluate", str(SAMPLE), "--model-dir", str(trained), "--labels", str(loghub_labels(tmp_path)),
                 "--json")
    assert {k: v for k, v in json.loads(loghub.stdout).items() if k != "labels"} == {
        k: v for k, v in got.items() if k != "labels"}

    text = run("evaluate", str(SAMPLE), "--model-dir", str(trained), "--labels", str(LABELS))
    assert "PR-AUC" in text.stdout and "precision" in text.stdout and "F1" in text.stdout


def test_train_with_labels_stores_the_evaluation(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    result = run("train", str(SAMPLE), "--model-dir", str(model_dir), *HDFS_FLAGS, "--labels", str(LABELS),
                 "--eval", str(SAMPLE))
    assert result.exit_code == 0, result.output
    assert "evaluation: precision" in result.stderr
    version = (model_dir / "CURRENT").read_text().strip()
    manifest = json.loads(run("models", "show", version, "--model-dir", str(model_dir)).stdout)
    evaluation = manifest["evaluation"]
    assert 0.5 <= evaluation["recall"] <= 1.0 and evaluation["paths"] == [str(SAMPLE)]
    listed = run("models", "list", "--model-dir", str(model_dir)).stdout
    assert f"f1={evaluation['f1']:.3f}" in listed


def test_user_errors(trained: Path, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "bad.csv"
    bad.write_text("entity,label\nblk_1,maybe\n")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("blk_nothere,1\n")
    base = ["evaluate", str(SAMPLE), "--model-dir", str(trained)]
    assert_user_error(run(*base), "--labels is required")
    assert_user_error(run(*base, "--labels", str(tmp_path / "none.csv")), "file not found")
    assert_user_error(run(*base, "--labels", str(bad)), "bad.csv:2", "'maybe'")
    assert_user_error(run(*base, "--labels", str(unknown)), "none of the 1 labelled entities")
    assert_user_error(run("evaluate", str(SAMPLE), "--labels", str(LABELS)), "--model-dir is required")
    assert_user_error(run("train", str(SAMPLE), "--model-dir", str(tmp_path / "m"), *HDFS_FLAGS, "--labels",
                          str(LABELS)), "--labels and --eval go together")
