"""``logwarden train``: learn a model from files, a Kafka time range or an Elasticsearch index; publish it.

Thin: resolve options, open the source (:mod:`pipeline.sources`), run the bounded-memory training of
:mod:`pipeline.training`, optionally evaluate on labelled data, publish into the registry. ``--model-dir`` is
probed for writing before any input is read. The Kafka and Elasticsearch clients are imported only when
such a source is used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from tqdm import tqdm

from models.artifacts import ModelBundle
from models.registry import ModelRegistry
from pipeline import training
from pipeline.cli.common import (
    Command,
    UserError,
    config_option,
    decoding_options,
    open_registry,
    progress_bar,
    resolve,
    settings_from,
    untimed_option,
    warn,
    window_options,
)
from pipeline.cli.es import INSECURE_HELP  # the help text; cli.es imports no client at load
from pipeline.cli.evaluate import run_evaluation
from pipeline.cli.files import check_model_dir, force_option, report_warnings, stats_line
from pipeline.config import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_ES_URL,
    PipelineSettings,
    WorkerOptions,
    default_of,
    default_text,
    parse_time_bound,
)
from pipeline.embedded import JobStats
from pipeline.errors import LogwardenError
from pipeline.records import RawLine

# Elasticsearch secrets come from the environment only, as for the worker (pipeline.cli.stream).
ES_SECRETS = {"LOGWARDEN_ES_API_KEY": "api_key", "LOGWARDEN_ES_USERNAME": "username",
              "LOGWARDEN_ES_PASSWORD": "password", "LOGWARDEN_ES_CA_CERTS": "ca_certs"}


@contextmanager
def line_bar(total: int | None, label: str) -> Iterator[tqdm | None]:
    """A line-counting tqdm bar (lines, windows, ETA) on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    with tqdm(total=total, unit=" lines", unit_scale=True, desc=label, file=sys.stderr, leave=False,
              delay=0.5) as bar:
        yield bar


def _windows_postfix(bar: tqdm | None) -> training.WindowProgress | None:
    if bar is None:
        return None
    return lambda _lines, windows: bar.set_postfix(windows=windows, refresh=False)


def parse_source(spec: str | None) -> tuple[str, str]:
    if not spec or spec == "files":
        return "files", ""
    kind, _, name = spec.partition(":")
    if kind not in ("kafka", "es") or not name:
        raise UserError(f"--source {spec!r}: expected kafka:TOPIC or es:INDEX (or PATH... for files)")
    return kind, name


def _train_kafka(topic: str, flags: dict[str, Any], settings: PipelineSettings, window: dict[str, Any],
                 options: dict[str, Any]) -> ModelBundle:
    from pipeline.sources.kafka_range import KafkaRange  # noqa: PLC0415 - the client, only here

    source = KafkaRange(flags.get("bootstrap_servers") or DEFAULT_BOOTSTRAP_SERVERS, topic, window["since"],
                        window["until"], int(settings.max_line_bytes))
    with line_bar(source.stats.records, f"training from {topic}") as bar:
        lines: Iterator[RawLine] = training.counted(iter(source), bar.update if bar is not None else None)
        bundle = training.train_stream(lines, settings, on_progress=_windows_postfix(bar), **options)
    bundle.stats["kafka"] = {"records": source.stats.records, "read": source.stats.read,
                             "outside_range": source.stats.outside}
    return bundle


def _train_es(index: str, flags: dict[str, Any], settings: PipelineSettings, window: dict[str, Any],
              options: dict[str, Any]) -> ModelBundle:
    import os  # noqa: PLC0415

    from pipeline.sinks.elasticsearch.client import make_es_client  # noqa: PLC0415 - the client, only here
    from pipeline.sources.es_range import EsRange  # noqa: PLC0415

    auth: dict[str, Any] = {name: os.environ[var] for var, name in ES_SECRETS.items() if os.environ.get(var)}
    client = make_es_client(flags.get("es_url") or DEFAULT_ES_URL, timeout=60.0, max_retries=3,
                            insecure_skip_verify=bool(flags.get("es_insecure_skip_verify")), **auth)
    source = EsRange(client, index, window["since"], window["until"], query=flags.get("query"),
                     message_field=flags.get("message_field") or "message",
                     time_field=flags.get("time_field") or "@timestamp", entity_field=settings.entity_field,
                     raw=settings.log_format is not None, max_line_bytes=int(settings.max_line_bytes))
    with line_bar(source.total, f"training from {index}") as bar:
        lines: Iterator[RawLine] = training.counted(iter(source), bar.update if bar is not None else None)
        bundle = training.train_stream(lines, settings, on_progress=_windows_postfix(bar), **options)
    bundle.stats["elasticsearch"] = {"hits": source.total, "read": source.read, "no_message": source.no_message}
    client.close()
    return bundle


@click.command(cls=Command)
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@config_option
@decoding_options()
@click.option("--source", help="Read the training lines from kafka:TOPIC (a time range, see --since/--until; "
              "never commits) or es:INDEX (an index or alias of raw logs) instead of PATH... .")
@click.option("--since", help="With --source: start of the time range, ISO 8601 (2026-11-30T00:00:00Z) or a "
              "duration ago (7d, 12h).  [default: the oldest record]")
@click.option("--until", help="With --source: end of the time range (exclusive), ISO 8601, a duration ago or "
              "'now'.  [default: now, when reading starts]")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP",
              help="With --source kafka:TOPIC or --model-dir kafka:TOPIC: Kafka brokers.  "
              f"[default: {DEFAULT_BOOTSTRAP_SERVERS}]")
@click.option("--es-url",
              help="Elasticsearch to read with --source es:INDEX; also records the model's templates in the "
              "<prefix>-templates catalog there (credentials from LOGWARDEN_ES_API_KEY or "
              f"LOGWARDEN_ES_USERNAME/PASSWORD).  [default with --source es: {DEFAULT_ES_URL}]")
@click.option("--es-insecure-skip-verify", is_flag=True, default=None, envvar="LOGWARDEN_ES_INSECURE_SKIP_VERIFY",
              help=INSECURE_HELP)
@click.option("--query", help="With --source es:INDEX: only these documents: a query string "
              "(host.name:web-1 AND log.level:error, Lucene syntax, which simple KQL filters share) or a JSON query "
              "DSL object.")
@click.option("--message-field", help="With --source es:INDEX: the field holding the line (with --log-format: the "
              "raw line, parsed by the layout; without: the message, its time from --time-field).  "
              "[default: message]")
@click.option("--time-field", help="With --source es:INDEX: the event-time field (range and sort).  "
              "[default: @timestamp]")
@window_options()
@untimed_option
@force_option
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Model registry directory, or kafka:TOPIC (a compacted topic workers on any machine read; "
              "--bootstrap-servers); the new version becomes current (unless --no-promote).  [required]")
@click.option("--no-promote", is_flag=True, default=None,
              help="Publish the new version without making it current (`logwarden models promote V` later).")
@click.option("--contamination",
              help="Abnormal share of the training windows: auto (estimated), clean (training is normal) or a "
                   "number in (0, 0.5)." + default_text(PipelineSettings, "contamination"))
@click.option("--target-fpr", type=float,
              help="False-positive rate the threshold allows when training is clean (and the floor of auto)."
                   + default_text(PipelineSettings, "target_fpr"))
@click.option("--index-prefix", help="Index prefix of the template catalog (with --es-url)."
              + default_text(WorkerOptions, "index_prefix"))
@click.option("--max-templates", type=click.IntRange(min=1),
              help="Bound of the template state: once this many templates exist, lines that fit none of them go to "
              "one 'other' template (counted in the summary)." + default_text(PipelineSettings, "max_templates"))
@click.option("--sample-windows", type=click.IntRange(min=1),
              help="Memory bound: the forest and threshold are fitted on a uniform reservoir sample of at most this "
              "many windows (templates and window counts cover the whole input, read once, streaming).  "
              f"[default: {training.DEFAULT_SAMPLE_WINDOWS}]")
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
    """Learn templates and normal window behaviour and publish a model version.

    Input: PATH... (files, .gz, '-' for stdin), or --source kafka:TOPIC / es:INDEX with --since/--until.
    Memory stays bounded for inputs far larger than RAM: one streaming pass builds the templates and the
    window count vectors, and the forest is fitted on a reservoir sample of --sample-windows windows.
    Training data need not be clean: the detector assumes about --contamination of it is abnormal.
    Refused, with a hint: input most of whose lines have no readable timestamp (--time-format, or
    --allow-untimed), and too few training windows (--force). --model-dir is checked for writing first.

    \b
    Examples:
      logwarden train hdfs.log --model-dir models-out --entity-regex 'blk_-?\\d+' \\
          --log-format '<Date> <Time> <Pid> <Level> <Component>: <Content>'
      logwarden train --source kafka:logs --since 7d --model-dir /models --warm-start --no-promote
      logwarden train --source es:logs-app --since 2026-11-01 --until 2026-12-01 --entity-field host.name \\
          --model-dir /models
    """
    flags = resolve(flags)
    kind, name = parse_source(flags.get("source"))
    paths = tuple(flags.get("paths") or ())
    if kind == "files" and not paths:
        raise UserError("give PATH... or --source kafka:TOPIC / es:INDEX (see 'logwarden train --help')")
    if kind != "files" and paths:
        raise UserError(f"give either PATH... or --source {flags['source']}, not both")
    if kind == "files" and (flags.get("since") or flags.get("until")):
        raise UserError("--since and --until go with --source kafka:TOPIC or es:INDEX")
    if not flags.get("model_dir"):
        raise UserError("--model-dir is required (on the command line or as model_dir in --config)")
    if bool(flags.get("labels_path")) != bool(flags.get("eval_paths")):
        raise UserError("--labels and --eval go together: the labels of the entities in the --eval input")
    window = {"since": parse_time_bound(flags["since"], "--since") if flags.get("since") else None,
              "until": parse_time_bound(flags["until"], "--until") if flags.get("until") else None}
    if window["since"] is not None and window["until"] is not None and window["since"] >= window["until"]:
        raise UserError("--since must be before --until")
    previous = None
    registry = open_registry(flags["model_dir"], flags.get("bootstrap_servers"))
    if flags.get("warm_start"):
        current = None if isinstance(registry, ModelRegistry) and not registry.root.exists() else \
            registry.current_version()
        if current is None:
            raise UserError(f"--warm-start: {flags['model_dir']} has no current model to start from")
        previous = registry.load(current)
    settings = settings_from(flags, previous.settings if previous is not None else None)
    if isinstance(registry, ModelRegistry):
        check_model_dir(flags["model_dir"])
    options: dict[str, Any] = {"force": bool(flags["force"]), "warm_start": previous}
    if flags.get("sample_windows"):
        options["sample_windows"] = int(flags["sample_windows"])
    if kind == "kafka":
        bundle = _train_kafka(name, flags, settings, window, options)
    elif kind == "es":
        bundle = _train_es(name, flags, settings, window, options)
    else:
        with progress_bar(paths, "training") as progress:
            bundle = training.train_files(paths, settings, progress, **options)
    if flags.get("labels_path"):
        bundle.evaluation = run_evaluation(flags["eval_paths"], settings, bundle, flags["labels_path"])
    bundle.source = {"kind": {"es": "elasticsearch"}.get(kind, kind), "name": name or ",".join(paths)}
    if kind != "files":
        bundle.source.update({k: _iso(v) for k, v in window.items()})
    if previous is not None:
        bundle.source["warm_start"] = previous.version
    publish(registry, bundle, flags)


def _iso(seconds: float | None) -> str | None:
    from datetime import UTC, datetime  # noqa: PLC0415

    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def publish(registry: Any, bundle: ModelBundle, flags: dict[str, Any]) -> None:
    stats = JobStats(**{k: v for k, v in bundle.stats.items() if k in JobStats.__dataclass_fields__})
    report_warnings(stats)
    promote = not flags.get("no_promote")
    try:
        version = registry.publish(bundle, make_current=promote)
    except OSError as exc:
        raise UserError(f"cannot write the model to {flags['model_dir']}: {exc.strerror or exc}") from None
    how = "and made current" if promote else "(not current: --no-promote)"
    sampled = bundle.stats.get("sampled_windows")
    extra = f", fitted on a sample of {sampled}" if sampled is not None and sampled < stats.windows else ""
    click.echo(f"model {version} written to {flags['model_dir']} {how} ({stats_line(stats)}{extra})", err=True)
    if flags.get("es_url"):
        from pipeline.cli.es import publish_templates  # noqa: PLC0415 - the Elasticsearch client, only here

        prefix = flags.get("index_prefix") or default_of(WorkerOptions, "index_prefix")
        try:
            done = publish_templates(flags["es_url"], prefix, bundle.features.templates_, version,
                                     insecure_skip_verify=bool(flags.get("es_insecure_skip_verify")))
        except LogwardenError as exc:
            warn(f"the model is published, but its templates are not in the catalog: {exc}")
        else:
            click.echo(f"template catalog {prefix}-templates: {done['known']} templates known by {version}, "
                       f"{done['no_longer_known']} no longer known", err=True)
    if bundle.evaluation:
        e = bundle.evaluation
        click.echo(f"evaluation: precision {e['precision']:.3f}, recall {e['recall']:.3f}, F1 {e['f1']:.3f}, "
                   f"PR-AUC {'-' if e['pr_auc'] is None else format(e['pr_auc'], '.3f')}", err=True)
