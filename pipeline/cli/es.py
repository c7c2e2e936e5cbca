"""``logwarden es-setup``: create the index template, today's daily index and the alias (Elasticsearch or OpenSearch).

Registered on the main group by ``pipeline.cli.app`` (``cli.add_command(es_setup)``). Connection settings
follow the worker's flags; secrets can come from the environment (``LOGWARDEN_ES_API_KEY``,
``LOGWARDEN_ES_USERNAME``, ``LOGWARDEN_ES_PASSWORD``) so they stay out of shell history and ``ps``.
Every failure is a :class:`~pipeline.errors.LogwardenError` (one line, exit status 2 under the main group).

The Elasticsearch client is imported when the command runs, not when the CLI is built: ``detect`` and the
other embedded commands must work without the streaming clients loaded (or installed).

``--sink opensearch`` sets up the same layout on OpenSearch with the same flags (``--es-url`` and the
``LOGWARDEN_ES_*`` secrets name "the search cluster"; ``--es-compat`` is Elasticsearch's only and ignored);
``--ilm`` there creates an ISM policy (:mod:`pipeline.sinks.opensearch.layout`). Without the
``logwarden[opensearch]`` extra that is a one-line error naming the install command.
"""

from __future__ import annotations

from typing import Any

import click

from pipeline.config import DEFAULT_ES_URL, DEFAULT_INDEX_PREFIX, DEFAULT_SINK, SINKS
from pipeline.errors import LogwardenError

ES_COMPAT_CHOICES = ("auto", "8", "9")  # = pipeline.sinks.elasticsearch.client.ES_COMPAT_CHOICES
INSECURE_HELP = ("Do NOT verify the https server's certificate (logged as a warning): only for a test cluster whose "
                 "CA you cannot get; give its CA with --ca-certs / LOGWARDEN_ES_CA_CERTS instead.")


def make_es_client(*args: Any, **kwargs: Any) -> Any:
    """:func:`pipeline.sinks.elasticsearch.client.make_es_client`, imported on first use."""
    from pipeline.sinks.elasticsearch.client import make_es_client as make  # noqa: PLC0415 - lazy on purpose

    return make(*args, **kwargs)


def make_os_client(*args: Any, **kwargs: Any) -> Any:
    """:func:`pipeline.sinks.opensearch.client.make_os_client`, imported on first use (an optional extra)."""
    from pipeline.sinks.opensearch.client import make_os_client as make  # noqa: PLC0415 - lazy on purpose

    return make(*args, **kwargs)


def _replicas(value: str) -> int | str:
    if value == "auto":
        return value
    if value.isdigit():
        return int(value)
    raise click.BadParameter("a number of replicas or 'auto'")


@click.command("es-setup")
@click.option("--sink", envvar="LOGWARDEN_SINK", type=click.Choice(SINKS), default=DEFAULT_SINK, show_default=True,
              show_envvar=True, help="The cluster's product; opensearch needs pip install 'logwarden[opensearch]'.")
@click.option("--es-url", envvar="LOGWARDEN_ES_URL", default=DEFAULT_ES_URL, show_default=True, show_envvar=True,
              help="Elasticsearch (or OpenSearch) URL (comma-separated for several nodes).")
@click.option("--index-prefix", default=DEFAULT_INDEX_PREFIX, show_default=True,
              help="Names: <prefix>-anomalies (alias / data stream), <prefix>-anomalies-YYYY.MM.DD (indices).")
@click.option("--api-key", envvar="LOGWARDEN_ES_API_KEY", show_envvar=True, help="Elasticsearch API key.")
@click.option("--username", envvar="LOGWARDEN_ES_USERNAME", show_envvar=True, help="Basic-auth user.")
@click.option("--password", envvar="LOGWARDEN_ES_PASSWORD", show_envvar=True,
              help="Basic-auth password (prefer the environment variable).")
@click.option("--ca-certs", envvar="LOGWARDEN_ES_CA_CERTS", show_envvar=True,
              type=click.Path(exists=True, dir_okay=False),
              help="CA bundle for an https URL.")
@click.option("--es-insecure-skip-verify", is_flag=True, default=False, envvar="LOGWARDEN_ES_INSECURE_SKIP_VERIFY",
              help=INSECURE_HELP)
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True, help="Primary shards per index.")
@click.option("--replicas", default="auto", show_default=True,
              help="Replicas per index, or 'auto' (0 on one node, 1 on a cluster).")
@click.option("--ilm/--no-ilm", default=False, show_default=True,
              help="Attach an ILM policy deleting indices after --retention (server must have ILM; on OpenSearch "
                   "an ISM policy, server must have the ISM plugin).")
@click.option("--retention", default="30d", show_default=True, help="ILM/ISM delete age, e.g. 30d.")
@click.option("--data-stream", is_flag=True, default=False,
              help="Write to a data stream instead of daily indices (server must support data streams; "
                   "replays after a rollover can duplicate documents).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds to wait for each request.")
@click.option("--es-compat", envvar="LOGWARDEN_ES_COMPAT", type=click.Choice(ES_COMPAT_CHOICES), default="auto",
              show_default=True, show_envvar=True,
              help="Elasticsearch server major (8 or 9) the requests' media types are pinned to; auto asks the "
                   "server. Not used with --sink opensearch.")
def es_setup(
    sink: str, es_url: str, index_prefix: str, api_key: str | None, username: str | None, password: str | None,
    ca_certs: str | None, es_insecure_skip_verify: bool, shards: int, replicas: str, ilm: bool, retention: str,
    data_stream: bool, timeout: float, es_compat: str,
) -> None:
    """Create (idempotently) the index template, daily index and alias anomaly documents go to."""
    if sink == "opensearch":
        _opensearch_setup(es_url, index_prefix, api_key, username, password, ca_certs, shards=shards,
                          replicas=_replicas(replicas), use_ilm=ilm, use_data_stream=data_stream, retention=retention,
                          timeout=timeout, insecure_skip_verify=es_insecure_skip_verify)
        return
    from elastic_transport import TransportError  # noqa: PLC0415 - see the module docstring
    from elasticsearch import ApiError  # noqa: PLC0415

    from pipeline.sinks.elasticsearch.client import describe_error, server_major  # noqa: PLC0415
    from pipeline.sinks.elasticsearch.layout import setup_indices  # noqa: PLC0415

    client = make_es_client(es_url, api_key, username, password, timeout=timeout, ca_certs=ca_certs, max_retries=1,
                            compat=es_compat, insecure_skip_verify=es_insecure_skip_verify)
    try:
        major = server_major(client)
        done = setup_indices(client, index_prefix, shards=shards, replicas=_replicas(replicas), use_ilm=ilm,
                             use_data_stream=data_stream, retention=retention)
    except (TransportError, ApiError) as exc:
        raise LogwardenError(f"es-setup: {describe_error(exc, es_url)}") from None
    finally:
        client.close()
    version = getattr(client.transport, "detected_version", None) or f"{major}.x (--es-compat)"
    click.echo(f"Elasticsearch {version}: requests use compatible-with={major}")
    for resource, outcome in done.items():
        click.echo(f"{resource}: {outcome}")


def publish_templates(es_url: str, prefix: str, templates: dict[str, str], version: str, *,
                      insecure_skip_verify: bool = False) -> dict[str, int]:
    """``train --es-url``: the new model's templates into ``<prefix>-templates`` (see the catalog module)."""
    import os  # noqa: PLC0415

    from elastic_transport import TransportError  # noqa: PLC0415 - see the module docstring
    from elasticsearch import ApiError  # noqa: PLC0415

    from pipeline.sinks.elasticsearch.catalog import TemplateCatalog, setup_catalog  # noqa: PLC0415
    from pipeline.sinks.elasticsearch.client import describe_error  # noqa: PLC0415
    from pipeline.sinks.elasticsearch.layout import check_prefix  # noqa: PLC0415

    check_prefix(prefix)
    client = make_es_client(es_url, os.environ.get("LOGWARDEN_ES_API_KEY"), os.environ.get("LOGWARDEN_ES_USERNAME"),
                            os.environ.get("LOGWARDEN_ES_PASSWORD"), timeout=30, max_retries=1,
                            ca_certs=os.environ.get("LOGWARDEN_ES_CA_CERTS"),
                            compat=os.environ.get("LOGWARDEN_ES_COMPAT", "auto"),
                            insecure_skip_verify=insecure_skip_verify)
    try:
        setup_catalog(client, prefix)
        return TemplateCatalog(client, prefix, version).publish_model(templates, version)
    except (TransportError, ApiError) as exc:
        raise LogwardenError(describe_error(exc, es_url)) from None
    except RuntimeError as exc:
        raise LogwardenError(str(exc)) from None
    finally:
        client.close()


def _opensearch_setup(url: str, prefix: str, api_key: str | None, username: str | None, password: str | None,
                      ca_certs: str | None, *, timeout: float, insecure_skip_verify: bool, **layout: Any) -> None:
    client = make_os_client(url, api_key, username, password, timeout=timeout, ca_certs=ca_certs, max_retries=1,
                            insecure_skip_verify=insecure_skip_verify)
    # The client module is importable now (make_os_client raised the install hint otherwise).
    from pipeline.sinks.opensearch.client import TransportError, describe_error, server_version  # noqa: PLC0415
    from pipeline.sinks.opensearch.layout import setup_indices  # noqa: PLC0415

    try:
        version = server_version(client)
        done = setup_indices(client, prefix, **layout)
    except TransportError as exc:
        raise LogwardenError(f"es-setup: {describe_error(exc, url)}") from None
    finally:
        client.close()
    click.echo(f"OpenSearch {version}")
    for resource, outcome in done.items():
        click.echo(f"{resource}: {outcome}")
