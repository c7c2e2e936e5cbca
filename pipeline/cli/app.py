"""The ``logwarden`` command: the main group and its commands.

Commands live by what they talk to: :mod:`pipeline.cli.files` (train, detect, parse: files in, no servers),
:mod:`pipeline.cli.stream` (worker, replay: Kafka and Elasticsearch), :mod:`pipeline.cli.es` (es-setup),
:mod:`pipeline.cli.kibana` (kibana import). Every option can also come from a YAML file given with ``--config``;
precedence and defaults are :mod:`pipeline.config`'s. User mistakes print one ``logwarden: error:`` line and exit
with status 2.

Start-up: ``logwarden --help`` (and every command's own ``--help``) must be quick, but the commands need
scikit-learn, skops, numpy, plotly and the Kafka and Elasticsearch clients. So the main group imports a
command's module only when that command is looked up (:class:`LazyCommands`); the listing of ``--help`` uses
each command's summary written here (a test checks it against the command's own help).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import click
from click.formatting import HelpFormatter

from pipeline.cli.common import CONTEXT, Command, Group

# name -> (module, attribute, the first sentence of its help: what `logwarden --help` lists)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "detect": ("pipeline.cli.files", "detect", "Score the windows of PATH... and write the anomalous ones as JSON "
               "lines."),
    "es-setup": ("pipeline.cli.es", "es_setup", "Create (idempotently) the index template, daily index and alias "
                 "anomaly documents go to."),
    "evaluate": ("pipeline.cli.evaluate", "evaluate", "Precision, recall, F1 and PR-AUC of a model on PATH... "
                 "against labelled entities, at its threshold."),
    "kibana": ("pipeline.cli.kibana", "kibana", "Kibana views and alerting for the anomaly documents."),
    "models": ("pipeline.cli.models", "models", "List, inspect, promote, roll back and delete the model versions "
               "of a registry."),
    "parse": ("pipeline.cli.files", "parse", "Write the template of every line of PATH... as CSV (line numbers "
              "from 1, in input order)."),
    "presets": ("pipeline.cli.app", "presets", "List the presets (--preset NAME) with an example line each; "
                "--log-format auto picks among them."),
    "replay": ("pipeline.cli.stream", "replay", "Produce the lines of FILE... into Kafka, one record per line (for "
               "demos, benchmarks and tests)."),
    "train": ("pipeline.cli.train", "train", "Learn templates and normal window behaviour and publish a model "
              "version."),
    "worker": ("pipeline.cli.stream", "worker", "Consume log records from Kafka, window and score them like "
               "`detect`, index anomalies into Elasticsearch (or OpenSearch, with --sink opensearch)."),
}


class LazyCommands(dict[str, click.Command]):
    """The group's command map: a command's module is imported the first time the command is looked up."""

    def _load(self, name: str) -> click.Command:
        module, attribute, _ = COMMANDS[name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        dict.__setitem__(self, name, command)
        return command

    def __getitem__(self, name: str) -> click.Command:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name in COMMANDS:
            return self._load(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(COMMANDS) | set(dict.keys(self))))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(dict.keys(self)))

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return [self[name] for name in self]

    def items(self) -> Any:
        return [(name, self[name]) for name in self]


class LazyGroup(Group):
    """The main group over :class:`LazyCommands`; its help lists the summaries without importing a command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands()

    def format_commands(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _summary(name, limit) if name in COMMANDS else self.commands[name].get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _summary(name: str, limit: int) -> str:
    """A command's line in the listing, cut as click cuts the first sentence of its help."""
    return click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name="logwarden")
def cli() -> None:
    """Logwarden finds log windows (per block, host, service or request) that look unlike normal.

    \b
    Quick start on a file, no servers needed:
      logwarden detect app.log --entity-regex 'req-[0-9a-f]+'          # train on the file, score it
      logwarden train  history.log --model-dir models-out/ --entity-field host.name
      logwarden detect today.log.gz --model-dir models-out/ --out anomalies.jsonl
      logwarden parse  app.log --out templates.csv                     # what templates are there?
      logwarden models list --model-dir models-out                     # versions; promote, rollback
    \b
    With Kafka and Elasticsearch:
      logwarden es-setup --es-url http://127.0.0.1:9200
      logwarden worker --config worker.yaml
      logwarden kibana import --url http://127.0.0.1:5601
    """


@click.command(cls=Command)
def presets() -> None:
    """List the presets (--preset NAME) with an example line each; --log-format auto picks among them."""
    from pipeline.stages.presets import describe  # noqa: PLC0415

    rows = describe()
    width = max(len(name) for name, _, _ in rows)
    for name, title, example in rows:
        click.echo(f"{name:<{width}}  {title}")
        if example:
            click.echo(f"{'':<{width}}    {example}")


def main() -> None:
    cli(prog_name="logwarden")
