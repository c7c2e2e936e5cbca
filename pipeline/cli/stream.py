"""``logwarden worker`` and ``logwarden replay`` (registered on the main group in :mod:`pipeline.cli.app`).

Worker options come, lowest first, from: built-in defaults < the model's stored settings (decoding,
entity, window) < the YAML ``--config`` file < environment variables < flags. Secrets are read only from
the environment: ``LOGWARDEN_ES_API_KEY`` or ``LOGWARDEN_ES_USERNAME``/``LOGWARDEN_ES_PASSWORD``,
``LOGWARDEN_ES_CA_CERTS``, and the ``LOGWARDEN_KAFKA_*`` variables of :mod:`pipeline.sources.kafka`.

This module must not import :mod:`pipeline.cli.app` at import time (that module imports this one).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from models.errors import ModelError
from models.registry import ModelRegistry
from pipeline.config import load_config, parse_duration
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


def _user_errors(run: Callable[[], Any]) -> Any:
    """Run a command body turning user mistakes into one ``logwarden: error:`` line and exit status 2."""
    from pipeline.cli.app import UserError  # noqa: PLC0415 - pipeline.cli.app imports this module

    try:
        return run()
    except (LogwardenError, ModelError) as exc:
        raise UserError(str(exc)) from None


def _pick(flags: dict[str, Any], config: dict[str, Any], key: str, default: Any = None) -> Any:
    value = flags.get(key)
    if value is None or value == ():
        value = config.get(key)
    return default if value is None else value


def _duration(value: Any, name: str) -> float | None:
    return None if value is None else parse_duration(value, name)


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file with any of these options.")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP",
              help="Kafka brokers.  [default: 127.0.0.1:9092]")
@click.option("--topic", "topics", multiple=True, help="Topic to consume (repeatable).")
@click.option("--group-id", help="Consumer group; workers sharing it share the partitions.  [default: logwarden]")
@click.option("--model-dir", type=click.Path(file_okay=False), help="Model registry directory (its current model).")
@click.option("--model-version", help="Use this version instead of the current one.")
@click.option("--format", "input_format", type=click.Choice(["auto", "json", "text"]),
              help="Record format: json dead-letters anything that is not a JSON object.  [default: auto]")
@click.option("--log-format", help="logparser-style layout (default: the model's).")
@click.option("--time-format", help="strptime format of the timestamp (default: the model's).")
@click.option("--max-line-bytes", type=int, help="Longer records are cut and dead-lettered.  [default: the model's]")
@click.option("--entity-regex", help="Entity regex (default: the model's).")
@click.option("--entity-field", help="Entity field (default: the model's).")
@click.option("--window", type=click.Choice(["session", "tumbling"]), help="Window kind (default: the model's).")
@click.option("--session-gap", help="Session gap (default: the model's).")
@click.option("--max-session", help="Longest session (default: the model's).")
@click.option("--window-size", help="Tumbling window size (default: the model's).")
@click.option("--allowed-lateness", help="Allowed lateness (default: the model's).")
@click.option("--es-url", envvar="LOGWARDEN_ES_URL", help="Elasticsearch URL.  [default: http://127.0.0.1:9200]")
@click.option("--index-prefix", help="Index prefix: <prefix>-anomalies-YYYY.MM.DD.  [default: logwarden]")
@click.option("--no-es-setup", is_flag=True, default=None, help="Do not create the index template and alias.")
@click.option("--metrics-port", type=int, help="Serve /metrics, /healthz and /readyz on this port (0: any free).")
@click.option("--exit-when-idle", help="Close all windows, index, commit and exit after this long without records.")
@click.option("--dlq-topic", help="Dead-letter topic.  [default: <topic>.dlq]")
@click.option("--commit-interval", help="How often to flush and commit.  [default: 5s]")
@click.option("--session-timeout", help="Kafka group session timeout.  [default: 10s]")
@click.option("--es-timeout", help="Elasticsearch request timeout.  [default: 10s]")
@click.option("--es-compat", envvar="LOGWARDEN_ES_COMPAT",
              help="Elasticsearch server major (8 or 9) for the media types, or auto.  [default: auto]")
@click.option("--json-logs", is_flag=True, default=None, help="Log JSON lines to stderr.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def worker(**flags: Any) -> None:
    """Consume log records from Kafka, window and score them like `detect`, index anomalies into Elasticsearch.

    Produce records keyed by entity (see `logwarden replay --key-regex`) so each entity lives in one
    partition. Delivery: at-least-once processing, effectively-once documents (deterministic ids).
    """
    _user_errors(lambda: _run_worker(flags))


def _run_worker(flags: dict[str, Any]) -> None:
    from pipeline.cli.app import resolve_settings  # noqa: PLC0415 - pipeline.cli.app imports this module
    from pipeline.stream.context import WorkerContext, WorkerOptions
    from pipeline.stream.health import HealthServer
    from pipeline.stream.worker import Worker

    config = load_config(flags["config_file"]) if flags.get("config_file") else {}
    model_dir = _pick(flags, config, "model_dir")
    if not model_dir:
        raise LogwardenError("--model-dir is required (train one with `logwarden train`)")
    bundle = ModelRegistry(model_dir).load(_pick(flags, config, "model_version"))
    setup_logging(bool(_pick(flags, config, "json_logs", False)), str(_pick(flags, config, "log_level", "INFO")))
    settings = resolve_settings(flags, bundle.settings, config)
    topics = _pick(flags, config, "topics") or _pick(flags, config, "topic") or ()
    es_auth = {name: os.environ[var] for var, name in _ES_SECRETS.items() if os.environ.get(var)}
    options = WorkerOptions(
        bootstrap_servers=str(_pick(flags, config, "bootstrap_servers", "127.0.0.1:9092")),
        topics=(topics,) if isinstance(topics, str) else tuple(topics),
        group_id=str(_pick(flags, config, "group_id", "logwarden")),
        settings=settings,
        es_url=str(_pick(flags, config, "es_url", "http://127.0.0.1:9200")),
        index_prefix=str(_pick(flags, config, "index_prefix", "logwarden")),
        metrics_port=_pick(flags, config, "metrics_port"),
        exit_when_idle=_duration(_pick(flags, config, "exit_when_idle"), "--exit-when-idle"),
        dlq_topic=_pick(flags, config, "dlq_topic"),
        input_format=str(_pick(flags, config, "input_format", config.get("format", "auto"))),
        commit_interval=parse_duration(_pick(flags, config, "commit_interval", "5s"), "--commit-interval"),
        session_timeout=parse_duration(_pick(flags, config, "session_timeout", "10s"), "--session-timeout"),
        es_timeout=parse_duration(_pick(flags, config, "es_timeout", "10s"), "--es-timeout"),
        es_compat=str(_pick(flags, config, "es_compat", "auto")),
        es_setup=not _pick(flags, config, "no_es_setup", False),
        es_auth=es_auth,
    )
    ctx = WorkerContext(options, bundle)
    server = None
    try:
        if options.metrics_port is not None:
            state: dict[str, Any] = {}
            server = HealthServer(ctx.metrics.registry, lambda: state["w"].readiness() if "w" in state else
                                  (False, "starting"), int(options.metrics_port))
            log.info("metrics on http://0.0.0.0:%d/metrics (also /healthz, /readyz)", server.port)
        run = Worker(ctx)
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
        summary = {"event": "worker stopped", "exit_code": code, "model": bundle.version,
                   "partitions_owned": sorted(f"{tp.topic}/{tp.partition}" for tp in run.ever_assigned),
                   **ctx.metrics.totals()}
        log.info("%s", json.dumps(summary))
    finally:
        ctx.close()
        if server is not None:
            server.close()
    if code:
        sys.exit(code)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--topic", required=True, help="Topic to produce to (created if missing).")
@click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP", default="127.0.0.1:9092", show_default=True)
@click.option("--rate", type=float, help="Lines per second (default: as fast as Kafka takes them).")
@click.option("--key-regex", help=r"Record key = first match, e.g. 'blk_-?\d+': one entity, one partition.")
@click.option("--partitions", type=int, default=1, show_default=True, help="Partitions when creating the topic.")
@click.option("--max-line-bytes", type=int, default=1 << 20, show_default=True, help="Longer lines are cut.")
def replay(**flags: Any) -> None:
    """Produce the lines of FILE... into Kafka, one record per line (for demos, benchmarks and tests).

    Use the model's entity regex as --key-regex so that every entity's lines land in one partition, in
    order: that is what lets a group of workers find the same windows as `logwarden detect`.
    """
    from pipeline.sources.replay import replay as run_replay

    stats = _user_errors(lambda: run_replay(
        flags["paths"], flags["topic"], flags["bootstrap_servers"], rate=flags["rate"],
        key_regex=flags["key_regex"], partitions=flags["partitions"], max_line_bytes=flags["max_line_bytes"]))
    if stats.truncated:
        click.echo(f"logwarden: note: {stats.truncated} lines longer than --max-line-bytes were cut", err=True)
    click.echo(json.dumps({"topic": flags["topic"], **stats.as_dict()}), err=True)


@click.group()
def standalone() -> None:
    """`python -m pipeline.cli.stream worker|replay`: the same commands without the main group."""


standalone.add_command(worker)
standalone.add_command(replay)

if __name__ == "__main__":
    standalone(prog_name="logwarden")
