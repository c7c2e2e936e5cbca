"""Elasticsearch layout for anomaly documents: index template, daily indices, alias (``logwarden es-setup``).

The layout itself (mappings, names, template body, why the window start picks the day) is shared with
OpenSearch and documented in :mod:`pipeline.sinks.anomaly_index`; this module makes the Elasticsearch
calls. The default layout works on any Elasticsearch 8.x/9.x, including a bare server without the ingest,
ILM, data-stream or analysis-common modules.

ILM and data streams are opt-in and only when the server has them (detected by probing their REST
endpoints, which works with or without ``_nodes`` privileges); asking for them on a server without them
is a :class:`~pipeline.errors.LogwardenError`. With ``use_ilm`` the daily indices get a delete-after-
``retention`` policy. With ``use_data_stream`` documents go to the data stream ``<prefix>-anomalies``
(``op_type: create``; a replay that hits the same backing index is a harmless 409, but after a rollover a
replay can duplicate: daily indices are the layout with effectively-once documents).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import ApiError, Elasticsearch

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError

# Re-exported: the names callers and tests have always imported from here.
from pipeline.sinks.anomaly_index import (
    ALREADY_EXISTS,
    ANOMALY_MAPPINGS,
    MAPPING_VERSION,
    TEMPLATE_PRIORITY,
    alias_name,
    check_prefix,
    check_setup,
    concrete_index_error,
    create_targets,
    fingerprint,
    index_for,
    managed_meta,
    template_body,
)

__all__ = ["ANOMALY_MAPPINGS", "MAPPING_VERSION", "TEMPLATE_PRIORITY", "alias_name", "check_prefix", "index_for",
           "missing_privileges", "setup_indices", "supports_data_streams", "supports_ilm"]


# ------------------------------------------------------------------------------------ feature probes
def _probe(call: Any, feature: str) -> bool:
    """True when the endpoint answers; False when the server has no handler for it (module missing)."""
    try:
        call()
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise LogwardenError(f"not allowed to check for {feature} on Elasticsearch: {exc.message}") from None
        # Any other error comes from a handler that exists (e.g. an empty listing on some versions).
        return not (exc.status_code == 405 or "no handler found" in str(exc.body or exc.message))
    return True


def supports_ilm(client: Elasticsearch) -> bool:
    return _probe(client.ilm.get_status, "ILM")


def supports_data_streams(client: Elasticsearch) -> bool:
    return _probe(lambda: client.indices.get_data_stream(name="*"), "data streams")


# --------------------------------------------------------------------------------------------- setup
def _put_if_changed(client: Elasticsearch, kind: str, name: str, body: dict[str, Any]) -> str:
    """PUT a template or ILM policy unless the stored one carries the same fingerprint in ``_meta``."""
    meta = managed_meta(body)
    if kind == "template":
        found = client.options(ignore_status=404).indices.get_index_template(name=name)
        existing = [t["index_template"].get("_meta", {}) for t in found.body.get("index_templates", [])]
    else:
        found = client.options(ignore_status=404).ilm.get_lifecycle(name=name)
        policies = found.body.values() if found.meta.status == 200 else []
        existing = [p.get("policy", {}).get("_meta", {}) for p in policies]
    if existing and existing[0].get("fingerprint") == fingerprint(body):
        return "unchanged"
    if kind == "template":
        client.indices.put_index_template(name=name, **body, meta=meta)
    else:
        client.ilm.put_lifecycle(name=name, policy={**body, "_meta": meta})
    return "updated" if existing else "created"


def _ilm_policy(retention: str, rollover: bool) -> dict[str, Any]:
    hot: dict[str, Any] = {"actions": {}}
    if rollover:
        hot["actions"]["rollover"] = {"max_age": "1d", "max_primary_shard_size": "50gb"}
    return {"phases": {"hot": hot, "delete": {"min_age": retention, "actions": {"delete": {}}}}}


def setup_indices(
    client: Elasticsearch,
    prefix: str = DEFAULT_INDEX_PREFIX,
    *,
    shards: int = 1,
    replicas: int | str = "auto",
    use_ilm: bool = False,
    use_data_stream: bool = False,
    retention: str = "30d",
) -> dict[str, str]:
    """Create or update the anomaly layout idempotently; returns ``{resource: what happened}``.

    Safe to run repeatedly and concurrently with writers: templates are replaced only when they differ,
    existing daily indices keep their data (new mappings apply from the next daily index on).
    """
    name = check_setup(prefix, shards, retention, use_ilm)
    if use_ilm and not supports_ilm(client):
        raise LogwardenError("ILM was requested but this Elasticsearch has no ILM (module missing); run without --ilm")
    if use_data_stream and not supports_data_streams(client):
        raise LogwardenError(
            "data streams were requested but this Elasticsearch has no data stream support; run without --data-stream"
        )
    done: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if use_ilm:
        done[f"ilm policy {name}"] = _put_if_changed(client, "policy", name, _ilm_policy(retention, use_data_stream))
        extra["index.lifecycle.name"] = name
    body = template_body(prefix, shards=shards, replicas=replicas, use_data_stream=use_data_stream,
                         extra_settings=extra)
    if not use_data_stream:
        _refuse_concrete_index(client, name)
    done[f"index template {name}"] = _put_if_changed(client, "template", name, body)

    def join_alias(pattern: str, alias: str) -> int:
        try:
            client.indices.put_alias(index=pattern, name=alias)
        except ApiError as exc:
            # Adding an alias needs the broad `manage` index privilege, which a worker's role should not have;
            # the index template puts every new daily index in the alias, so only indices made before the
            # template need it. A role without it is fine as long as the alias already covers them all.
            if exc.status_code != 403:
                raise
            outside = _outside_alias(client, pattern, alias)
            if outside:
                raise LogwardenError(
                    f"daily indices {', '.join(outside[:3])} are not in the alias {alias} and this user may not "
                    "add them (the `manage` index privilege): run `logwarden es-setup` once as a user who may"
                ) from None
        return len(client.indices.get_alias(name=alias).body)

    return done | create_targets(
        prefix, use_data_stream, create_stream=lambda n: client.indices.create_data_stream(name=n),
        create_index=lambda n: client.indices.create(index=n), join_alias=join_alias,
        already_exists=lambda exc: isinstance(exc, ApiError) and exc.error in ALREADY_EXISTS)


# What the worker does on its indices (docs/security.md, deploy/elasticsearch/worker-role.yml): create the
# daily index and the catalog, index documents (overwriting on replay), read the catalog (mget), see index
# metadata (the alias and the concrete-index check); and, unless --no-es-setup, its index template.
WORKER_INDEX_PRIVILEGES = ("create_index", "index", "read", "view_index_metadata")
SETUP_CLUSTER_PRIVILEGES = ("manage_index_templates",)


def missing_privileges(client: Elasticsearch, prefix: str, *, setup: bool = True, catalog: bool = True) -> list[str]:
    """The privileges the worker needs that its user lacks, as ``privilege on names`` (empty: all there).

    Asks ``_security/user/_has_privileges``, which any user may ask about itself, so a role missing, say,
    the ``index`` privilege stops the worker before it reads a record instead of when the first anomaly is
    indexed. A cluster without security (the endpoint fails) has nothing to check.
    """
    names = [f"{alias_name(prefix)}-*"] + ([f"{prefix}-templates"] if catalog else [])
    try:
        found = client.options(ignore_status=(400, 401, 403, 404, 405, 500)).security.has_privileges(
            cluster=list(SETUP_CLUSTER_PRIVILEGES) if setup else [],
            index=[{"names": names, "privileges": list(WORKER_INDEX_PRIVILEGES)}])
    except ApiError:
        return []
    if found.meta.status != 200 or found.body.get("has_all_requested", True):
        return []
    missing = [f"cluster privilege {name}" for name, ok in (found.body.get("cluster") or {}).items() if not ok]
    for index, privileges in (found.body.get("index") or {}).items():
        lacking = sorted(name for name, ok in privileges.items() if not ok)
        if lacking:
            missing.append(f"{', '.join(lacking)} on {index}")
    return missing


def _outside_alias(client: Elasticsearch, pattern: str, alias: str) -> list[str]:
    """The indices matching ``pattern`` that ``alias`` does not cover (needs only view_index_metadata)."""
    found = client.options(ignore_status=404).indices.get_alias(index=pattern)
    if found.meta.status != 200:
        return []
    return sorted(name for name, entry in found.body.items() if alias not in (entry.get("aliases") or {}))


def _refuse_concrete_index(client: Elasticsearch, name: str) -> None:
    found = client.options(ignore_status=404).indices.get(index=name, allow_no_indices=True, expand_wildcards="all")
    if found.meta.status == 200 and name in found.body:
        raise concrete_index_error(name)

