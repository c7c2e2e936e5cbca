"""``logwarden worker`` and ``logwarden replay``: the commands that talk to Kafka and Elasticsearch.

Worker options come, highest first, from: flags < environment variables < the YAML ``--config`` file < the
model's stored settings (decoding, entity, window) < the defaults of :class:`pipeline.config.WorkerOptions`
(see :mod:`pipeline.config`). Secrets are read only from the environment: ``LOGWARDEN_ES_API_KEY`` or
``LOGWARDEN_ES_USERNAME``/``LOGWARDEN_ES_PASSWORD``, ``LOGWARDEN_ES_CA_CERTS``, and the ``LOGWARDEN_KAFKA_*``
variables of :mod:`pipeline.sources.kafka`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import click

from pipeline.cli.common import Command, decoding_options, open_registry, resolve, settings_from, window_options
from pipeline.cli.es import INSECURE_HELP
from pipeline.config import DEFAULT_BOOTSTRAP_SERVERS, DURATION, INPUT_FORMATS, SINKS, WorkerOptions, default_text
from pipeline.errors import LogwardenError

log = logging.getLogger("logwarden.worker")
_ES_SECRETS = {"LOGWARDEN_ES_API_KEY": "api_key", "LOGWARDEN_ES_USERNAME": "username",
               "LOGWARDEN_ES_PASSWORD": "password", "LOGWARDEN_ES_CA_CERTS": "ca_certs"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(json_logs: bool, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # The transport logs every retry with a traceback; the worker logs one line per outage instead.
    logging.getLogger("elastic_transport").setLevel(max(logging.ERROR, root.level))


def _default(name: str) -> str:
    return default_text(WorkerOptions, name)


@click.command(cls=Command)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML file with any of these options, keys as the long names (flags win; an unknown key is an "
                   "error).")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP",
              help="Kafka brokers." + _default("bootstrap_servers"))
@click.option("--topic", "topics", multiple=True, help="Topic to consume (repeatable).")
@click.option("--group-id", help="Consumer group; workers sharing it share the partitions." + _default("group_id"))
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Model registry directory (its current model), or kafka:TOPIC: the registry in a compacted topic "
              "on --bootstrap-servers, for workers on many machines.")
@click.option("--model-version", help="Use this version instead of the current one (and never reload).")
@click.option("--model-poll-interval", type=DURATION,
              help="How often to check --model-dir for a newly promoted (or rolled back) version, which is verified "
              "and swapped in without a restart; one that fails verification is refused and the old model keeps "
              "serving." + _default("model_poll_interval"))
@click.option("--format", "input_format", type=click.Choice(INPUT_FORMATS),
              help="Record format: json dead-letters anything that is not a JSON object." + _default("input_format"))
@decoding_options(from_model=True)
@window_options(from_model=True)
@click.option("--sink", envvar="LOGWARDEN_SINK", type=click.Choice(SINKS),
              help="Where anomalies are indexed: Elasticsearch or OpenSearch (pip install 'logwarden[opensearch]'); "
                   "the --es-* options and LOGWARDEN_ES_* secrets apply to either." + _default("sink"))
@click.option("--es-url", envvar="LOGWARDEN_ES_URL", help="Elasticsearch (or OpenSearch) URL." + _default("es_url"))
@click.option("--es-insecure-skip-verify", is_flag=True, default=None, envvar="LOGWARDEN_ES_INSECURE_SKIP_VERIFY",
              help=INSECURE_HELP)
@click.option("--index-prefix", help="Index prefix: <prefix>-anomalies-YYYY.MM.DD." + _default("index_prefix"))
@click.option("--no-es-setup", is_flag=True, default=None, help="Do not create the index template and alias.")
@click.option("--template-catalog-interval", type=DURATION,
              help="How often to upsert the templates seen into <prefix>-templates (at most 500 per flush); 0 turns "
                   "the catalog off." + _default("template_catalog_interval"))
@click.option("--metrics-port", type=int, help="Serve /metrics, /healthz and /readyz on this port (0: any free).")
@click.option("--exit-when-idle", type=DURATION,
              help="Close all windows, index, commit and exit after this long without records.")
@click.option("--dlq-topic", help="Dead-letter topic.  [default: <topic>.dlq]")
@click.option("--commit-interval", type=DURATION, help="How often to flush and commit." + _default("commit_interval"))
@click.option("--idle-close", type=DURATION,
              help="Close a window when its entity sent nothing for this long (processing time), so a quiet "
                   "partition's last anomalies are indexed.  [default: the session gap (or window size) plus the "
                   "allowed lateness]")
@click.option("--liveness-timeout", type=DURATION,
              help="/healthz fails when the loop completed no poll for this long." + _default("liveness_timeout"))
@click.option("--session-timeout", type=DURATION, help="Kafka group session timeout." + _default("session_timeout"))
@click.option("--es-timeout", type=DURATION, help="Elasticsearch/OpenSearch request timeout." + _default("es_timeout"))
@click.option("--max-poll-interval", type=DURATION,
              help="Kafka max.poll.interval.ms: the group drops a member that polls less often; at least three "
                   "times --es-timeout (a bulk request and its retry run between polls)."
                   + _default("max_poll_interval"))
@click.option("--es-compat", envvar="LOGWARDEN_ES_COMPAT",
              help="Elasticsearch server major (8 or 9) for the media types, or auto; not used by the OpenSearch "
                   "sink." + _default("es_compat"))
@click.option("--json-logs", is_flag=True, default=None, help="Log JSON lines to stderr.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Log level.  [default: INFO]")
def worker(**flags: Any) -> None:
    """Consume log records from Kafka, window and score them like `detect`, index anomalies into Elasticsearch
    (or OpenSearch, with --sink opensearch).

    Produce records keyed by entity (see `logwarden replay --key-regex`) so each entity lives in one
    partition. Delivery: at-least-once processing, effectively-once documents (deterministic ids).
    """
    values = resolve(flags)
    model_dir = values.get("model_dir")
    if not model_dir:
        raise LogwardenError("--model-dir is required (train one with `logwarden train`)")
    # The server-side modules are imported when a worker really starts, not for --help or a config error.
    from models.errors import ModelError  # noqa: PLC0415
    from models.registry import load_last_good  # noqa: PLC0415
    from pipeline.stream.context import WorkerContext  # noqa: PLC0415
    from pipeline.stream.health import HealthServer  # noqa: PLC0415
    from pipeline.stream.reload import refusal_reason  # noqa: PLC0415
    from pipeline.stream.worker import Worker  # noqa: PLC0415

    registry = open_registry(model_dir, values.get("bootstrap_servers"))
    refused: list[tuple[str, str]] = []
    if values.get("model_version"):
        bundle = registry.load(values["model_version"])  # asked for by name: that one or an error
    else:
        bundle, refused = load_last_good(registry)  # a damaged current version must not stop the workers
    setup_logging(bool(values.get("json_logs")), str(values.get("log_level") or "INFO"))
    if refused:
        (version, why), more = refused[0], len(refused) - 1
        log.error("model %s cannot be used (%s)%s; serving %s, the newest good version made current before "
                  "(promote a good version or roll back to clear this)", version, why,
                  f" and {more} newer version(s) of the history neither" if more else "", bundle.version)
    settings = settings_from(values, bundle.settings)
    if settings.log_format == "auto":
        raise LogwardenError("--log-format auto picks a preset from the first lines of files; give the worker "
                             "--preset NAME (a model trained with --log-format auto stores the preset it picked)")
    es_auth = {name: os.environ[var] for var, name in _ES_SECRETS.items() if os.environ.get(var)}
    if values.get("no_es_setup") is not None:
        values["es_setup"] = not values["no_es_setup"]
    options = WorkerOptions.from_values(values, settings, es_auth)
    ctx = WorkerContext(options, bundle)
    if refused:
        ctx.refuse_current(refused[0][0], refusal_reason(ModelError(refused[0][1])))
    server = None
    try:
        if options.metrics_port is not None:
            state: dict[str, Any] = {}
            server = HealthServer(ctx.metrics.registry, lambda: state["w"].readiness() if "w" in state else
                                  (False, "starting"), int(options.metrics_port),
                                  alive=lambda: state["w"].alive() if "w" in state else (True, "starting"))
            log.info("metrics on http://0.0.0.0:%d/metrics (also /healthz, /readyz)", server.port)
        run = Worker(ctx, models=None if values.get("model_version") else registry)
        if server is not None:
            state["w"] = run
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, run.stop)
        log.info("worker starting: model %s, topics %s, group %s", bundle.version, ",".join(options.topics),
                 options.group_id)
        ctx.prepare_topics()
        if not ctx.prepare_elasticsearch(lambda: run.stopping):
            run.consumer.close(autocommit=False)
            return
        code = run.run()
        summary = {"event": "worker stopped", "exit_code": code, "model": ctx.bundle.version,
                   "partitions_owned": sorted(f"{tp.topic}/{tp.partition}" for tp in run.ever_assigned),
                   **ctx.metrics.totals()}
        log.info("%s", json.dumps(summary))
    finally:
        ctx.close()
        if server is not None:
            server.close()
    if code:
        sys.exit(code)


@click.command(cls=Command)
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--topic", required=True, help="Topic to produce to (created if missing).")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP", default=DEFAULT_BOOTSTRAP_SERVERS,
              show_default=True, help="Kafka brokers.")
@click.option("--rate", type=float, help="Lines per second (default: as fast as Kafka takes them).")
@click.option("--key-regex", help=r"Record key = first match, e.g. 'blk_-?\d+': one entity, one partition.")
@click.option("--partitions", type=int, default=1, show_default=True, help="Partitions when creating the topic.")
@click.option("--max-line-bytes", type=int, default=1 << 20, show_default=True, help="Longer lines are cut.")
def replay(**flags: Any) -> None:
    """Produce the lines of FILE... into Kafka, one record per line (for demos, benchmarks and tests).

    Use the model's entity regex as --key-regex so that every entity's lines land in one partition, in
    order: that is what lets a group of workers find the same windows as `logwarden detect`.
    """
    from pipeline.sources.replay import replay as run_replay  # noqa: PLC0415 - the Kafka client, only when used

    stats = run_replay(flags["paths"], flags["topic"], flags["bootstrap_servers"], rate=flags["rate"],
                       key_regex=flags["key_regex"], partitions=flags["partitions"],
                       max_line_bytes=flags["max_line_bytes"])
    if stats.truncated:
        click.echo(f"logwarden: note: {stats.truncated} lines longer than --max-line-bytes were cut", err=True)
    click.echo(json.dumps({"topic": flags["topic"], **stats.as_dict()}), err=True)
