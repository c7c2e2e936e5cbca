"""``logwarden kibana import``: load the shipped Kibana saved objects (data view, search, dashboard, alert rule).

Credentials come from the environment only (``LOGWARDEN_KIBANA_API_KEY``, or ``LOGWARDEN_KIBANA_USERNAME`` and
``LOGWARDEN_KIBANA_PASSWORD``), so they stay out of shell history and ``ps``. The objects and the request are
:mod:`pipeline.sinks.kibana`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipeline.cli.common import CONTEXT, Group
from pipeline.config import DEFAULT_INDEX_PREFIX, DEFAULT_KIBANA_URL
from pipeline.sinks.kibana import KibanaAuth, default_objects_file, for_prefix, import_objects, load_objects


@click.group(cls=Group, context_settings=CONTEXT)
def kibana() -> None:
    """Kibana views and alerting for the anomaly documents."""


@kibana.command("import")
@click.option("--url", envvar="LOGWARDEN_KIBANA_URL", default=DEFAULT_KIBANA_URL, show_default=True,
              show_envvar=True, help="Kibana base URL (with its base path, if Kibana has one).")
@click.option("--space", help="Kibana space id to import into.  [default: the default space]")
@click.option("--index-prefix", default=DEFAULT_INDEX_PREFIX, show_default=True,
              help="The workers' index prefix: the data view and the rule read <prefix>-anomalies.")
@click.option("--min-score", type=float,
              help="The alert rule fires for anomalies with anomaly.score at least this.  [default: every anomaly]")
@click.option("--file", "objects_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Saved objects NDJSON to import.  [default: kibana/logwarden.ndjson shipped with Logwarden]")
@click.option("--ca-certs", envvar="LOGWARDEN_KIBANA_CA_CERTS", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False), help="CA bundle for an https URL.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds to wait for Kibana.")
def import_command(url: str, space: str | None, index_prefix: str, min_score: float | None,
                   objects_file: Path | None, ca_certs: str | None, timeout: float) -> None:
    """Import (overwriting only Logwarden's own objects) the data view, saved search, dashboard and alert rule.

    \b
    Authentication, from the environment:
      LOGWARDEN_KIBANA_API_KEY                              an API key (base64 "id:key"), or
      LOGWARDEN_KIBANA_USERNAME, LOGWARDEN_KIBANA_PASSWORD  basic auth
    The rule is imported disabled (Kibana does that to every imported rule): enable it and add its actions
    in Stack Management > Rules.
    """
    from pipeline.sinks.elasticsearch.layout import check_prefix  # noqa: PLC0415 - the ES client, only when run

    check_prefix(index_prefix)
    objects = for_prefix(load_objects(objects_file or default_objects_file()), index_prefix, min_score)
    auth = KibanaAuth(api_key=os.environ.get("LOGWARDEN_KIBANA_API_KEY") or None,
                      username=os.environ.get("LOGWARDEN_KIBANA_USERNAME") or None,
                      password=os.environ.get("LOGWARDEN_KIBANA_PASSWORD") or None)
    answer = import_objects(url, objects, space=space, auth=auth, timeout=timeout, ca_certs=ca_certs)
    click.echo(f"Kibana imported {answer.get('successCount', len(objects))} objects into space "
               f"{space or 'default'} (data view {index_prefix}-anomalies)")
    for result in answer.get("successResults") or []:
        click.echo(f"  {result.get('type')}: {result.get('meta', {}).get('title', result.get('id'))}")
