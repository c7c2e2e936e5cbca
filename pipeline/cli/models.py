"""``logwarden models list | show | promote | rollback | delete``: the model registry from the shell.

Thin: every operation is :class:`models.registry.ModelRegistry`'s (atomic pointer, writer lock, history), so a
scheduled retraining and an operator promoting by hand can never lose each other's change. Workers watching
the registry pick up a promotion or a rollback without a restart (:mod:`pipeline.stream.reload`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from models.registry import ModelRegistry
from pipeline.cli.common import CONTEXT, Group, UserError, open_registry

MODEL_DIR_HELP = "Model registry directory (what `logwarden train --model-dir` wrote)."


def registry_of(model_dir: str | None, bootstrap_servers: str | None = None) -> Any:
    if not model_dir:
        raise UserError("--model-dir is required (or LOGWARDEN_MODEL_DIR)")
    registry = open_registry(model_dir, bootstrap_servers)
    if isinstance(registry, ModelRegistry) and not registry.root.is_dir():
        raise UserError(f"model directory {model_dir} does not exist (train one with `logwarden train`)")
    return registry


def model_dir_option(f: Any) -> Any:
    f = click.option("--bootstrap-servers", envvar="LOGWARDEN_KAFKA_BOOTSTRAP",
                     help="With --model-dir kafka:TOPIC: Kafka brokers.  [default: 127.0.0.1:9092]")(f)
    return click.option("--model-dir", envvar="LOGWARDEN_MODEL_DIR", type=click.Path(file_okay=False),
                        help=MODEL_DIR_HELP + " Or kafka:TOPIC, the registry in a compacted topic.  [required]")(f)


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def describe_source(source: dict[str, Any]) -> str:
    if not source:
        return "-"
    text = f"{source.get('kind', '?')}:{source.get('name', '?')}"
    if source.get("since") or source.get("until"):
        text += f"[{source.get('since') or ''}..{source.get('until') or ''}]"
    return text


def summary_line(version: str, manifest: dict[str, Any], current: bool) -> str:
    """One ``models list`` line: created, source, counts, threshold, evaluation if any."""
    stats = manifest.get("stats") or {}
    model = manifest.get("model") or {}
    evaluation = manifest.get("evaluation") or {}
    parts = [("*" if current else " "), version, f"created={manifest.get('created', '-')}",
             f"source={describe_source(manifest.get('source') or {})}", f"lines={stats.get('lines', '-')}",
             f"windows={stats.get('windows', '-')}", f"templates={stats.get('templates', '-')}",
             f"threshold={_fmt(model.get('threshold'), 4)}"]
    if evaluation:
        parts.append(f"precision={_fmt(evaluation.get('precision'))} recall={_fmt(evaluation.get('recall'))} "
                     f"f1={_fmt(evaluation.get('f1'))} pr_auc={_fmt(evaluation.get('pr_auc'))}")
    return " ".join(parts)


@click.group(cls=Group, context_settings=CONTEXT)
def models() -> None:
    """List, inspect, promote, roll back and delete the model versions of a registry.

    \b
    Examples:
      logwarden models list --model-dir models-out
      logwarden models show 20261201T030000Z-3fa2c1 --model-dir models-out
      logwarden models promote 20261201T030000Z-3fa2c1 --model-dir models-out
      logwarden models rollback --model-dir models-out
    Workers running with --model-dir switch to the new current version without a restart.
    """


@models.command("list")
@model_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version instead of text.")
def list_(model_dir: str | None, bootstrap_servers: str | None, as_json: bool) -> None:
    """One line per version, oldest first; '*' marks the current one."""
    registry = registry_of(model_dir, bootstrap_servers)
    current = registry.current_version()
    known = registry.manifests() if hasattr(registry, "manifests") else None
    for version in sorted(known) if known is not None else registry.versions():
        try:
            manifest = known[version] if known is not None else registry.manifest(version)
        except Exception as exc:  # noqa: BLE001 - one broken version must not hide the others
            click.echo(f"{'*' if version == current else ' '} {version} unreadable: {exc}")
            continue
        if as_json:
            click.echo(json.dumps({"version": version, "current": version == current, **manifest}, sort_keys=True))
        else:
            click.echo(summary_line(version, manifest, version == current))


@models.command()
@click.argument("version")
@model_dir_option
def show(version: str, model_dir: str | None, bootstrap_servers: str | None) -> None:
    """Print VERSION's manifest (source, counts, threshold, libraries, checksums, evaluation) as JSON."""
    registry = registry_of(model_dir, bootstrap_servers)
    manifest = registry.manifest(version)
    click.echo(json.dumps({"current": version == registry.current_version(), **manifest}, indent=1, sort_keys=True))


@models.command()
@click.argument("version")
@model_dir_option
def promote(version: str, model_dir: str | None, bootstrap_servers: str | None) -> None:
    """Make VERSION current (it is loaded and verified first)."""
    registry = registry_of(model_dir, bootstrap_servers)
    registry.promote(version)
    click.echo(f"model {version} is now current in {model_dir}", err=True)


@models.command()
@model_dir_option
def rollback(model_dir: str | None, bootstrap_servers: str | None) -> None:
    """Make the version that was current before the present one current again."""
    before, after = registry_of(model_dir, bootstrap_servers).rollback()
    click.echo(f"rolled back from {before} to {after} in {model_dir}", err=True)


@models.command()
@click.argument("version")
@model_dir_option
def delete(version: str, model_dir: str | None, bootstrap_servers: str | None) -> None:
    """Delete VERSION (never the current one)."""
    registry_of(model_dir, bootstrap_servers).delete(version)
    click.echo(f"model {version} deleted from {model_dir}", err=True)
