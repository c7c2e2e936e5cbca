"""OpenSearch layout for anomaly documents: the shared index template, daily indices and alias.

The layout (mappings, names, template body) is :mod:`pipeline.sinks.anomaly_index`, the same as on
Elasticsearch, so dashboards and alert rules read the same fields from either. What differs:

* **Lifecycle**: OpenSearch has no ILM; its Index State Management plugin (ISM, in every OpenSearch
  distribution and on Amazon OpenSearch Service, absent from the bare integ-test node) takes its place.
  ``use_ilm`` creates the ISM policy ``<prefix>-anomalies`` (hot, then delete at ``min_index_age:
  retention``; a daily rollover first for data streams) with an ``ism_template`` that attaches it to every
  new daily (or backing) index. Indices that existed before the policy keep no policy: ISM attaches
  policies at index creation. Without the ISM plugin, ``use_ilm`` is a LogwardenError, as on an
  Elasticsearch without ILM.
* **Data streams** are core OpenSearch (1.0+); ``use_data_stream`` works as on Elasticsearch.
* The fingerprint that makes setup idempotent sits in the template's ``_meta`` and, for the ISM policy,
  in its ``description`` (ISM policies have no ``_meta``); changed policies are updated with the
  ``if_seq_no``/``if_primary_term`` ISM requires.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError
from pipeline.sinks.anomaly_index import (
    ALREADY_EXISTS,
    TEMPLATE_PRIORITY,
    check_setup,
    concrete_index_error,
    create_targets,
    fingerprint,
    managed_meta,
    template_body,
)
from pipeline.sinks.opensearch.client import OpenSearch, TransportError

ISM_POLICIES = "/_plugins/_ism/policies"


def _has_handler(client: OpenSearch, path: str, feature: str) -> bool:
    """True when ``GET path`` has a handler (the plugin or module is there), False when it has none."""
    try:
        client.transport.perform_request("GET", path)
    except TransportError as exc:
        if exc.status_code in (401, 403):
            raise LogwardenError(f"not allowed to check for {feature} on OpenSearch: {exc.error}") from None
        return not (exc.status_code == 405 or "no handler found" in str(exc.info or exc.error))
    return True


def supports_ism(client: OpenSearch) -> bool:
    return _has_handler(client, ISM_POLICIES, "ISM")


def supports_data_streams(client: OpenSearch) -> bool:
    return _has_handler(client, "/_data_stream/*", "data streams")


def ism_policy(name: str, retention: str, rollover: bool) -> dict[str, Any]:
    """ISM policy body: hot, then delete after ``retention``; attached to new indices of the layout."""
    hot_actions: list[dict[str, Any]] = []
    if rollover:
        hot_actions.append({"rollover": {"min_index_age": "1d", "min_size": "50gb"}})
    pattern = f".ds-{name}-*" if rollover else f"{name}-*"
    return {
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": hot_actions,
             "transitions": [{"state_name": "delete", "conditions": {"min_index_age": retention}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [pattern], "priority": TEMPLATE_PRIORITY}],
    }


def _put_template(client: OpenSearch, name: str, body: dict[str, Any]) -> str:
    found = client.indices.get_index_template(name=name, ignore=404)
    existing = [t["index_template"].get("_meta", {}) for t in found.get("index_templates", [])]
    if existing and existing[0].get("fingerprint") == fingerprint(body):
        return "unchanged"
    client.indices.put_index_template(name=name, body={**body, "_meta": managed_meta(body)})
    return "updated" if existing else "created"


def _put_policy(client: OpenSearch, name: str, body: dict[str, Any]) -> str:
    tag = f"managed by logwarden, fingerprint {fingerprint(body)}"
    path = f"{ISM_POLICIES}/{name}"
    found = client.transport.perform_request("GET", path, params={"ignore": 404})
    stored = found.get("policy") if isinstance(found, dict) else None
    if isinstance(stored, dict) and tag in str(stored.get("description", "")):
        return "unchanged"
    params: dict[str, Any] = {}
    if isinstance(stored, dict):
        params = {"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"]}
    client.transport.perform_request("PUT", path, params=params,
                                     body={"policy": {"description": f"Logwarden anomalies ({tag})", **body}})
    return "updated" if stored else "created"


def setup_indices(
    client: OpenSearch,
    prefix: str = DEFAULT_INDEX_PREFIX,
    *,
    shards: int = 1,
    replicas: int | str = "auto",
    use_ilm: bool = False,
    use_data_stream: bool = False,
    retention: str = "30d",
) -> dict[str, str]:
    """Create or update the anomaly layout idempotently; returns ``{resource: what happened}``.

    ``use_ilm`` means "a lifecycle policy": an ISM policy here (see the module docstring).
    """
    name = check_setup(prefix, shards, retention, use_ilm)
    if use_ilm and not supports_ism(client):
        raise LogwardenError("a lifecycle policy (--ilm) was requested but this OpenSearch has no Index State "
                             "Management plugin; install opensearch-index-management or run without --ilm")
    if use_data_stream and not supports_data_streams(client):
        raise LogwardenError("data streams were requested but this OpenSearch has no data stream support; "
                             "run without --data-stream")
    done: dict[str, str] = {}
    if use_ilm:
        done[f"ism policy {name}"] = _put_policy(client, name, ism_policy(name, retention, use_data_stream))
    body = template_body(prefix, shards=shards, replicas=replicas, use_data_stream=use_data_stream)
    if not use_data_stream:
        found = client.indices.get(index=name, allow_no_indices=True, expand_wildcards="all", ignore=404)
        if isinstance(found, dict) and name in found:
            raise concrete_index_error(name)
    done[f"index template {name}"] = _put_template(client, name, body)

    def join_alias(pattern: str, alias: str) -> int:
        client.indices.put_alias(index=pattern, name=alias)
        return len(client.indices.get_alias(name=alias))

    return done | create_targets(
        prefix, use_data_stream, create_stream=lambda n: client.indices.create_data_stream(name=n),
        create_index=lambda n: client.indices.create(index=n), join_alias=join_alias,
        already_exists=lambda exc: isinstance(exc, TransportError) and exc.error in ALREADY_EXISTS)
