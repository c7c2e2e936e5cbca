"""The ``logwarden`` command line.

Every option can also come from a YAML file given with ``--config`` (keys are the long option names,
dashes or underscores). Precedence: defaults < the model's stored settings < config file < flags.
User mistakes (missing files, bad formats, bad model directories) print one ``logwarden: error:`` line
and exit with status 2; no traceback.
"""

from __future__ import annotations

import heapq
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.core import ParameterSource
from tqdm import tqdm

from models.errors import ModelError
from models.registry import ModelRegistry
from pipeline import embedded as jobs
from pipeline.config import PipelineSettings, load_config
from pipeline.errors import LogwardenError
from pipeline.sinks.report import open_output, summary_table, write_jsonl, write_report
from pipeline.sources.files import count_bytes

ERROR_EXIT = 2


class UserError(click.ClickException):
    exit_code = ERROR_EXIT

    def show(self, file: Any = None) -> None:
        click.echo(f"logwarden: error: {self.format_message()}", err=True)


class Group(click.Group):
    """Turns our user-facing errors into one-line messages with exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LogwardenError, ModelError) as exc:
            raise UserError(str(exc)) from None
        except BrokenPipeError:
            # `logwarden detect ... | head`: the reader went away; that is not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)


def input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--max-line-bytes", type=int, help="Truncate longer lines (counted).  [default: 65536]")(f)
    f = click.option("--time-format", help="strptime format of the timestamp fields (auto-detected if omitted).")(f)
    f = click.option(
        "--log-format",
        help="logparser-style layout, e.g. '<Date> <Time> <Level> <Component>: <Content>'. "
        "<Content> is the message. Without it JSON lines are detected and other lines are taken whole.",
    )(f)
    f = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="YAML file with any of these options (flags win).")(f)
    return click.argument("paths", nargs=-1, required=True, metavar="PATH...")(f)


def window_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--allowed-lateness", help="How late (event time) a record may be.  [default: 1m]")(f)
    f = click.option("--window-size", help="Tumbling window length.  [default: 1m]")(f)
    f = click.option("--max-session", help="Cut sessions longer than this.  [default: 1h]")(f)
    f = click.option("--session-gap", help="Silence that ends a session window.  [default: 5m]")(f)
    f = click.option("--window", type=click.Choice(["session", "tumbling"]), help="Window kind.  [default: session]")(f)
    f = click.option("--entity-field", help="Decoded field naming the entity, e.g. host.name or Component.")(f)
    f = click.option("--entity-regex",
                     help=r"Every match in the message is an entity, e.g. 'blk_-?\d+' (a named group picks part).")(f)
    return f


def apply_config(flags: dict[str, Any]) -> dict[str, Any]:
    """Fill options the user did not give on the command line from the ``--config`` file.

    Every option of the command can come from the file (pipeline settings, ``model_dir``, ``out``, ``top``,
    ...), converted and checked by the option's own click type; :func:`resolve_settings` then puts the
    model's stored settings below them.
    """
    if not flags.get("config_file"):
        return flags
    ctx = click.get_current_context()
    config = load_config(flags["config_file"])
    for param in ctx.command.params:
        name = param.name
        if name is None or name in ("config_file", "paths") or name not in config:
            continue
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None):
            continue
        try:
            flags[name] = param.type_cast_value(ctx, config[name])
        except click.BadParameter as exc:
            raise LogwardenError(f"config file {flags['config_file']}: {name}: {exc.message}") from None
    return flags


def resolve_settings(flags: dict[str, Any], base: dict[str, Any] | None = None,
                     config: dict[str, Any] | None = None) -> PipelineSettings:
    """defaults < the model's stored settings (``base``) < ``config`` < flags.

    Commands that ran :func:`apply_config` already hold the file's values in ``flags``.
    """
    return PipelineSettings().merged(base).merged(config).merged(flags)


@contextmanager
def progress_bar(paths: tuple[str, ...], label: str) -> Iterator[Callable[[int], object] | None]:
    """A byte-based tqdm bar on stderr when it is a terminal; nothing otherwise.

    ``count_bytes`` also opens every input once, so a missing or corrupt file fails before any work.
    """
    total = count_bytes(paths)
    if not sys.stderr.isatty():
        yield None
        return
    # delay: no bar at all for inputs that take less than a moment.
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False, delay=0.5) as bar:
        yield bar.update


def _stats_line(stats: jobs.JobStats) -> str:
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


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="logwarden")
def cli() -> None:
    """Logwarden finds log windows (per block, host, service or request) that look unlike normal.

    \b
    Quick start on a file, no servers needed:
      logwarden detect app.log --entity-regex 'req-[0-9a-f]+'          # train on the file, score it
      logwarden train  history.log --model-dir models-out/ --entity-field host.name
      logwarden detect today.log.gz --model-dir models-out/ --out anomalies.jsonl
      logwarden parse  app.log --out templates.csv                     # what templates are there?
    """


@cli.command()
@input_options
@window_options
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Model registry directory; the new version becomes current.  [required]")
@click.option("--contamination", type=float, help="Expected share of abnormal windows in training.  [default: 0.03]")
def train(**flags: Any) -> None:
    """Learn templates and normal window behaviour from PATH... and publish a model version.

    Training data need not be clean: the detector assumes about --contamination of it is abnormal.

    \b
    Examples:
      logwarden train hdfs.log --model-dir models-out --entity-regex 'blk_-?\\d+' \\
          --log-format '<Date> <Time> <Pid> <Level> <Component>: <Content>'
      logwarden train app-*.json.gz --model-dir models-out --entity-field host.name --window tumbling
    """
    flags = apply_config(flags)
    if not flags.get("model_dir"):
        raise UserError("--model-dir is required (on the command line or as model_dir in --config)")
    settings = resolve_settings(flags)
    with progress_bar(flags["paths"], "training") as progress:
        bundle = jobs.train(flags["paths"], settings, progress)
    version = ModelRegistry(flags["model_dir"]).publish(bundle)
    click.echo(f"model {version} written to {flags['model_dir']} and made current "
               f"({_stats_line(jobs.JobStats(**bundle.stats))})", err=True)


@cli.command()
@input_options
@window_options
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
    flags = apply_config(flags)
    bundle = None
    base = None
    if flags.get("model_dir"):
        bundle = ModelRegistry(flags["model_dir"]).load(flags.get("model_version"))
        base = bundle.settings
    settings = resolve_settings(flags, base)
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
    click.echo(f"{stats.anomalies} anomalous windows ({_stats_line(stats)})", err=True)
    if best:
        click.echo(summary_table(best, shutil.get_terminal_size((160, 24)).columns), err=True)
    if flags["report"]:
        anomalies.sort(key=lambda d: -d["anomaly"]["score"])
        write_report(flags["report"], anomalies, stats.as_dict(), "Logwarden anomalies")


@cli.command()
@input_options
@click.option("--out", default="-", show_default=True, help="CSV output: line,template_id,template ('-' = stdout).")
def parse(**flags: Any) -> None:
    """Write the template of every line of PATH... as CSV (line numbers from 1, in input order)."""
    import csv

    flags = apply_config(flags)
    settings = resolve_settings(flags)
    with progress_bar(flags["paths"], "parsing") as progress:
        rows, stats = jobs.parse(flags["paths"], settings, progress)
        with open_output(flags["out"], newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "template_id", "template"])
            writer.writerows(rows)
    click.echo(f"parsed {_stats_line(stats)}", err=True)


def _register_stream_commands() -> None:
    """Commands that talk to Kafka / Elasticsearch live in their own modules."""
    from pipeline.cli.es import es_setup

    cli.add_command(es_setup)
    try:
        from pipeline.cli.stream import replay, worker
    except ImportError:  # pragma: no cover - only while the streaming module is absent
        return
    cli.add_command(worker)
    cli.add_command(replay)


_register_stream_commands()


def main() -> None:
    cli(prog_name="logwarden")


if __name__ == "__main__":
    main()
