"""``logwarden train``, ``detect`` and ``parse``: the embedded jobs over files, no servers.

Thin: resolve options (:func:`pipeline.cli.common.resolve`), run :mod:`pipeline.embedded`, write results
through :mod:`pipeline.sinks.report`.

Every destination is checked before any input is read: ``--out`` and ``--report`` files are written as
temporary files next to them and renamed at the end (an interrupted or failed run leaves an existing file as
it was), and ``train`` probes ``--model-dir`` for writing first.
"""

from __future__ import annotations

import csv
import heapq
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from models.registry import ModelRegistry
from pipeline import embedded as jobs
from pipeline.cli.common import (
    Command,
    UserError,
    input_options,
    progress_bar,
    resolve,
    settings_from,
    untimed_option,
    warn,
    window_options,
)
from pipeline.cli.evaluate import run_evaluation
from pipeline.config import PipelineSettings, default_text
from pipeline.sinks.report import atomic_path, open_output, render_report, summary_table, write_jsonl


def stats_line(stats: jobs.JobStats) -> str:
    decode = stats.decode
    problems = {k: v for k, v in decode.items() if k not in ("lines", "matched", "json") and v}
    text = f"{stats.lines} lines"
    if stats.windows:
        text += f", {stats.windows} windows"
    if stats.templates:
        text += f", {stats.templates} templates"
    if stats.unseen_templates:
        text += f", {stats.unseen_templates} unseen templates"
    if stats.no_entity:
        text += f", {stats.no_entity} lines without entity"
    if stats.late_records:
        text += f", {stats.late_records} late records"
        if stats.late_records * 2 > stats.lines:
            text += (" (most records came late: raise --allowed-lateness if the input is out of order, "
                     "check --year / --timezone if its timestamps lack them)")
    if stats.untimed:
        text += f", {stats.untimed} lines without timestamp"
    if problems:
        text += ", " + ", ".join(f"{v} {_PROBLEM_NAMES.get(k, k.replace('_', ' '))}" for k, v in problems.items())
    return text


_PROBLEM_NAMES = {"not_json": "not JSON", "invalid_utf8": "invalid UTF-8"}


def force_option(f: Any) -> Any:
    return click.option(
        "--force", is_flag=True, default=None,
        help=f"Fit a model even on fewer than {jobs.MIN_TRAINING_WINDOWS} training windows (refused otherwise: "
        "such a model says little).")(f)


def check_model_dir(path: str) -> None:
    """Fail before any work when ``path`` cannot hold a new model version (probed by writing a file)."""
    root = Path(path)
    try:
        (root / "versions").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root / "versions"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to --model-dir {path}: {exc.strerror or exc}") from None


def report_warnings(stats: jobs.JobStats) -> None:
    for message in stats.warnings:
        warn(message)


@click.command(cls=Command)
@input_options
@window_options()
@untimed_option
@force_option
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Model registry directory; the new version becomes current (unless --no-promote).  [required]")
@click.option("--no-promote", is_flag=True, default=None,
              help="Publish the new version without making it current (`logwarden models promote V` later).")
@click.option("--contamination", type=float,
              help="Expected share of abnormal windows in training." + default_text(PipelineSettings, "contamination"))
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="With --eval: labelled entities (BlockId,Label Normal/Anomaly, or entity,label 0/1); the new "
              "model's precision, recall, F1 and PR-AUC on the --eval input are stored in its manifest.")
@click.option("--eval", "eval_paths", multiple=True, metavar="PATH",
              help="Input to evaluate the new model on, with --labels (repeatable).")
@click.option("--warm-start", is_flag=True, default=None,
              help="Start from the current model of --model-dir: its templates keep their ids (dashboards and "
              "alert rules on template ids keep working), new ones join the vocabulary, and its settings are the "
              "defaults.")
def train(**flags: Any) -> None:
    """Learn templates and normal window behaviour from PATH... and publish a model version.

    Training data need not be clean: the detector assumes about --contamination of it is abnormal.
    Refused, with a hint: input most of whose lines have no readable timestamp (--time-format, or
    --allow-untimed), and too few training windows (--force). --model-dir is checked for writing first.

    \b
    Examples:
      logwarden train hdfs.log --model-dir models-out --entity-regex 'blk_-?\\d+' \\
          --log-format '<Date> <Time> <Pid> <Level> <Component>: <Content>'
      logwarden train app-*.json.gz --model-dir models-out --entity-field host.name --window tumbling
    """
    flags = resolve(flags)
    if not flags.get("model_dir"):
        raise UserError("--model-dir is required (on the command line or as model_dir in --config)")
    if bool(flags.get("labels_path")) != bool(flags.get("eval_paths")):
        raise UserError("--labels and --eval go together: the labels of the entities in the --eval input")
    previous = None
    if flags.get("warm_start"):
        registry = ModelRegistry(flags["model_dir"])
        if registry.current_version() is None:
            raise UserError(f"--warm-start: {flags['model_dir']} has no current model to start from")
        previous = registry.load()
    settings = settings_from(flags, previous.settings if previous is not None else None)
    check_model_dir(flags["model_dir"])
    with progress_bar(flags["paths"], "training") as progress:
        bundle = jobs.train(flags["paths"], settings, progress, force=bool(flags["force"]), warm_start=previous)
    if flags.get("labels_path"):
        bundle.evaluation = run_evaluation(flags["eval_paths"], settings, bundle, flags["labels_path"])
    bundle.source = {"kind": "files", "name": ",".join(flags["paths"])}
    if previous is not None:
        bundle.source["warm_start"] = previous.version
    stats = jobs.JobStats(**bundle.stats)
    report_warnings(stats)
    promote = not flags.get("no_promote")
    try:
        version = ModelRegistry(flags["model_dir"]).publish(bundle, make_current=promote)
    except OSError as exc:
        raise UserError(f"cannot write the model to {flags['model_dir']}: {exc.strerror or exc}") from None
    how = "and made current" if promote else "(not current: --no-promote)"
    click.echo(f"model {version} written to {flags['model_dir']} {how} ({stats_line(stats)})", err=True)
    if bundle.evaluation:
        e = bundle.evaluation
        click.echo(f"evaluation: precision {e['precision']:.3f}, recall {e['recall']:.3f}, F1 {e['f1']:.3f}, "
                   f"PR-AUC {'-' if e['pr_auc'] is None else format(e['pr_auc'], '.3f')}", err=True)


@click.command(cls=Command)
@input_options
@window_options()
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Use this registry's current model (and its settings). Without it, train on the input first.")
@click.option("--model-version", help="Use this version instead of the current one.")
@click.option("--contamination", type=float, help="When training on the input: expected abnormal share.")
@untimed_option
@force_option
@click.option("--out", default="-", show_default=True,
              help="JSON lines output ('-' = stdout). A file is replaced only when the run completes.")
@click.option("--all-windows", is_flag=True, help="Write every scored window, not only anomalies.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Also write an HTML report of the anomalies (replaced only when the run completes).")
@click.option("--top", default=10, show_default=True, help="Anomalies shown in the summary table.")
def detect(**flags: Any) -> None:
    """Score the windows of PATH... and write the anomalous ones as JSON lines.

    Each line is the document the streaming worker indexes into Elasticsearch: @timestamp, entity.id,
    window.*, anomaly.score (higher = more abnormal), anomaly.threshold, anomaly.is_anomaly, model.version,
    templates (the explanation: observed vs expected counts, new templates) and log.samples.
    A summary table of the top anomalies goes to stderr. `-` reads stdin; .gz files are read directly.

    \b
    Examples:
      logwarden detect today.log --model-dir models-out --out anomalies.jsonl --report report.html
      zcat old.log.gz | logwarden detect - --entity-regex 'req-[0-9a-f]+' --all-windows
    """
    flags = resolve(flags)
    bundle = None
    if flags.get("model_dir"):
        bundle = ModelRegistry(flags["model_dir"]).load(flags.get("model_version"))
    settings = settings_from(flags, bundle.settings if bundle is not None else None)
    top: list[tuple[float, int, dict[str, Any]]] = []
    anomalies: list[dict[str, Any]] = []
    with ExitStack() as files:
        out = files.enter_context(open_output(flags["out"]))
        report = files.enter_context(atomic_path(flags["report"])) if flags["report"] else None
        progress = files.enter_context(progress_bar(flags["paths"], "detecting"))
        docs, stats = jobs.detect(flags["paths"], settings, bundle, progress, force=bool(flags["force"]))
        for n, doc in enumerate(docs):
            anomalous = doc["anomaly"]["is_anomaly"]
            if anomalous or flags["all_windows"]:
                write_jsonl(out, doc)
            if anomalous:
                item = (doc["anomaly"]["score"], -n, doc)
                if len(top) < flags["top"]:
                    heapq.heappush(top, item)
                elif flags["top"] > 0:
                    heapq.heappushpop(top, item)
                if report is not None:
                    anomalies.append(doc)
        out.flush()
        if report is not None:
            anomalies.sort(key=lambda d: -d["anomaly"]["score"])
            report.write_text(render_report(anomalies, stats.as_dict(), "Logwarden anomalies"), encoding="utf-8")
    report_warnings(stats)
    best = [doc for _, _, doc in sorted(top, key=lambda t: (-t[0], -t[1]))]
    click.echo(f"{stats.anomalies} anomalous windows ({stats_line(stats)})", err=True)
    if best:
        click.echo(summary_table(best, shutil.get_terminal_size((160, 24)).columns), err=True)


@click.command(cls=Command)
@input_options
@click.option("--out", default="-", show_default=True,
              help="CSV output: line,template_id,template ('-' = stdout). A file is replaced only when the run "
              "completes.")
def parse(**flags: Any) -> None:
    """Write the template of every line of PATH... as CSV (line numbers from 1, in input order)."""
    flags = resolve(flags)
    settings = settings_from(flags)
    with open_output(flags["out"], newline="") as out, progress_bar(flags["paths"], "parsing") as progress:
        rows, stats = jobs.parse(flags["paths"], settings, progress)
        writer = csv.writer(out)
        writer.writerow(["line", "template_id", "template"])
        writer.writerows(rows)
    click.echo(f"parsed {stats_line(stats)}", err=True)
