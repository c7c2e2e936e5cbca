"""``logwarden train``, ``detect`` and ``parse``: the embedded jobs over files, no servers.

Thin: resolve options (:func:`pipeline.cli.common.resolve`), run :mod:`pipeline.embedded`, write results
through :mod:`pipeline.sinks.report`.
"""

from __future__ import annotations

import csv
import heapq
import shutil
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
    window_options,
)
from pipeline.config import PipelineSettings, default_text
from pipeline.sinks.report import open_output, summary_table, write_jsonl, write_report


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
    if problems:
        text += ", " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in problems.items())
    return text



@click.command(cls=Command)
@input_options
@window_options()
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Model registry directory; the new version becomes current.  [required]")
@click.option("--contamination", type=float,
              help="Expected share of abnormal windows in training." + default_text(PipelineSettings, "contamination"))
def train(**flags: Any) -> None:
    """Learn templates and normal window behaviour from PATH... and publish a model version.

    Training data need not be clean: the detector assumes about --contamination of it is abnormal.

    \b
    Examples:
      logwarden train hdfs.log --model-dir models-out --entity-regex 'blk_-?\\d+' \\
          --log-format '<Date> <Time> <Pid> <Level> <Component>: <Content>'
      logwarden train app-*.json.gz --model-dir models-out --entity-field host.name --window tumbling
    """
    flags = resolve(flags)
    if not flags.get("model_dir"):
        raise UserError("--model-dir is required (on the command line or as model_dir in --config)")
    settings = settings_from(flags)
    with progress_bar(flags["paths"], "training") as progress:
        bundle = jobs.train(flags["paths"], settings, progress)
    version = ModelRegistry(flags["model_dir"]).publish(bundle)
    click.echo(f"model {version} written to {flags['model_dir']} and made current "
               f"({stats_line(jobs.JobStats(**bundle.stats))})", err=True)


@click.command(cls=Command)
@input_options
@window_options()
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Use this registry's current model (and its settings). Without it, train on the input first.")
@click.option("--model-version", help="Use this version instead of the current one.")
@click.option("--contamination", type=float, help="When training on the input: expected abnormal share.")
@click.option("--out", default="-", show_default=True, help="JSON lines output ('-' = stdout).")
@click.option("--all-windows", is_flag=True, help="Write every scored window, not only anomalies.")
@click.option("--report", type=click.Path(dir_okay=False), help="Also write an HTML report of the anomalies.")
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
    with progress_bar(flags["paths"], "detecting") as progress, open_output(flags["out"]) as out:
        docs, stats = jobs.detect(flags["paths"], settings, bundle, progress)
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
                if flags["report"]:
                    anomalies.append(doc)
        out.flush()
    best = [doc for _, _, doc in sorted(top, key=lambda t: (-t[0], -t[1]))]
    click.echo(f"{stats.anomalies} anomalous windows ({stats_line(stats)})", err=True)
    if best:
        click.echo(summary_table(best, shutil.get_terminal_size((160, 24)).columns), err=True)
    if flags["report"]:
        anomalies.sort(key=lambda d: -d["anomaly"]["score"])
        write_report(flags["report"], anomalies, stats.as_dict(), "Logwarden anomalies")


@click.command(cls=Command)
@input_options
@click.option("--out", default="-", show_default=True, help="CSV output: line,template_id,template ('-' = stdout).")
def parse(**flags: Any) -> None:
    """Write the template of every line of PATH... as CSV (line numbers from 1, in input order)."""
    flags = resolve(flags)
    settings = settings_from(flags)
    with progress_bar(flags["paths"], "parsing") as progress:
        rows, stats = jobs.parse(flags["paths"], settings, progress)
        with open_output(flags["out"], newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "template_id", "template"])
            writer.writerows(rows)
    click.echo(f"parsed {stats_line(stats)}", err=True)
