"""The ``logwarden`` command: the main group and its commands.

Commands live by what they talk to: :mod:`pipeline.cli.files` (train, detect, parse: files in, no servers),
:mod:`pipeline.cli.stream` (worker, replay: Kafka and Elasticsearch), :mod:`pipeline.cli.es` (es-setup),
:mod:`pipeline.cli.kibana` (kibana import). Every option can also come from a YAML file given with ``--config``;
precedence and defaults are :mod:`pipeline.config`'s. User mistakes print one ``logwarden: error:`` line and exit
with status 2.
"""

from __future__ import annotations

import click

from pipeline.cli.common import CONTEXT, Command, Group
from pipeline.cli.es import es_setup
from pipeline.cli.evaluate import evaluate
from pipeline.cli.files import detect, parse
from pipeline.cli.kibana import kibana
from pipeline.cli.models import models
from pipeline.cli.stream import replay, worker
from pipeline.cli.train import train
from pipeline.stages.presets import describe


@click.group(cls=Group, context_settings=CONTEXT)
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
    rows = describe()
    width = max(len(name) for name, _, _ in rows)
    for name, title, example in rows:
        click.echo(f"{name:<{width}}  {title}")
        if example:
            click.echo(f"{'':<{width}}    {example}")


for _command in (train, detect, parse, evaluate, models, presets, worker, replay, es_setup, kibana):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="logwarden")
