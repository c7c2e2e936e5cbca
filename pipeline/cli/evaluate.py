"""``logwarden evaluate``: how well a model finds labelled anomalies, as a table or JSON.

Also used by ``logwarden train --labels FILE --eval PATH...``, which stores the same figures in the new
version's manifest (so ``logwarden models list`` shows them beside each version).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from models.artifacts import ModelBundle
from pipeline import embedded as jobs
from pipeline.cli.common import (
    Command,
    UserError,
    input_options,
    open_registry,
    progress_bar,
    resolve,
    settings_from,
    window_options,
)
from pipeline.config import PipelineSettings
from pipeline.sources.labels import read_labels

ROWS = (("precision", "precision"), ("recall", "recall"), ("F1", "f1"), ("PR-AUC", "pr_auc"),
        ("threshold", "threshold"), ("entities evaluated", "entities"), ("anomalous (labels)", "anomalous"),
        ("flagged (model)", "flagged"), ("true positives", "true_positives"), ("false positives", "false_positives"),
        ("false negatives", "false_negatives"), ("labelled, not in input", "labelled_not_seen"),
        ("in input, not labelled", "seen_not_labelled"))


def run_evaluation(paths: Sequence[str], settings: PipelineSettings, bundle: ModelBundle,
                   labels_path: str) -> dict[str, Any]:
    """The evaluation of ``bundle`` on ``paths``, with what it was computed on."""
    labels = read_labels(labels_path)
    with progress_bar(tuple(paths), "evaluating") as progress:
        result, _ = jobs.evaluate(paths, settings, bundle, labels, progress)
    return {**result, "labels": labels_path, "paths": list(paths)}


def table(result: dict[str, Any]) -> str:
    lines = []
    for title, key in ROWS:
        value = result.get(key)
        text = "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
        lines.append(f"{title:<24}{text:>12}")
    return "\n".join(lines)


@click.command(cls=Command)
@input_options
@window_options()
@click.option("--model-dir", type=click.Path(file_okay=False), help="Model registry directory.  [required]")
@click.option("--model-version", help="Evaluate this version instead of the current one.")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP", help="With --model-dir kafka:TOPIC.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="CSV of entity,label: Loghub's BlockId,Label (Normal/Anomaly) or entity,label (0/1).  [required]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(**flags: Any) -> None:
    """Precision, recall, F1 and PR-AUC of a model on PATH... against labelled entities, at its threshold.

    An entity (a block, host, request) counts as flagged when any of its windows scores above the model's
    threshold; its highest window score ranks it for PR-AUC. Entities only in the labels or only in the input
    are counted, not scored.

    \b
    Example:
      logwarden evaluate hdfs_test.log --model-dir models-out --labels anomaly_label.csv
    """
    flags = resolve(flags)
    if not flags.get("model_dir"):
        raise UserError("--model-dir is required (on the command line or as model_dir in --config)")
    if not flags.get("labels_path"):
        raise UserError("--labels is required: a CSV of entity,label (BlockId,Label with Normal/Anomaly, or 0/1)")
    bundle = open_registry(flags["model_dir"], flags.get("bootstrap_servers")).load(flags.get("model_version"))
    settings = settings_from(flags, bundle.settings)
    result = run_evaluation(flags["paths"], settings, bundle, flags["labels_path"])
    result["model"] = bundle.version
    click.echo(json.dumps(result, sort_keys=True) if flags["as_json"] else f"model {bundle.version}\n{table(result)}")
