"""Elasticsearch layout for anomaly documents: index template, daily indices, alias (``logwarden es-setup``).

Default layout (works on any Elasticsearch 9.x, including a bare server without the ingest, ILM,
data-stream or analysis-common modules)::

    index template  <prefix>-anomalies          matches <prefix>-anomalies-*, explicit mappings, adds the alias
    daily indices   <prefix>-anomalies-YYYY.MM.DD   one per UTC day of the window start
    alias           <prefix>-anomalies          reads (Kibana data view, alert rules) span every day

Why the window *start* picks the day: the document ``_id`` (:func:`pipeline.scoring.document_id`) is built
from the window start, so "same ``_id`` -> same index" holds by construction and a replay overwrites
instead of duplicating. ``@timestamp`` (the window end) can fall on the next day for a window that spans
midnight; the alias hides that from readers.

Why ``templates`` is an ``object`` array, not ``nested``: Kibana's KQL filter ``templates.id: "abc"``, filter
pills, and Lens/terms aggregations on ``templates.id`` work directly on object arrays, while nested fields
need nested query syntax and are not aggregatable in Lens. The price: a query combining two template
fields (``templates.id: X and templates.new: true``) can match across different entries of one document.

``dynamic: false``: unknown fields stay in ``_source`` but are not indexed, so a newer worker that adds a
field never gets its documents rejected (``strict`` would send them to dead letters).

ILM and data streams are opt-in and only when the server has them (detected by probing their REST
endpoints, which works with or without ``_nodes`` privileges); asking for them on a server without them
is a :class:`~pipeline.errors.LogwardenError`. With ``use_ilm`` the daily indices get a delete-after-
``retention`` policy. With ``use_data_stream`` documents go to the data stream ``<prefix>-anomalies``
(``op_type: create``; a replay that hits the same backing index is a harmless 409, but after a rollover a
replay can duplicate: daily indices are the layout with effectively-once documents).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError

MAPPING_VERSION = 3  # 3: anomaly.components / reason, model.warnings
TEMPLATE_PRIORITY = 200
_BAD_PREFIX = re.compile(r'[\\/*?"<>|,# :A-Z]')
_ES_DURATION = re.compile(r"^\d+(d|h|m|s|ms)$")

KEYWORD = {"type": "keyword", "ignore_above": 1024}
DATE = {"type": "date"}

ANOMALY_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "dynamic_templates": [
        {"anomaly_components": {"path_match": "anomaly.components.*", "mapping": {"type": "float"}}},
    ],
    "properties": {
        "@timestamp": DATE,
        "entity": {"properties": {"id": KEYWORD, "field": KEYWORD}},
        "window": {
            "properties": {"start": DATE, "end": DATE, "kind": KEYWORD, "late": {"type": "boolean"},
                           "stream": KEYWORD, "offset": {"type": "long"}},
        },
        "anomaly": {
            "properties": {
                "score": {"type": "float"},
                "threshold": {"type": "float"},
                "is_anomaly": {"type": "boolean"},
                # Each component's -log10 tail probability (the score's scale): filter or chart by component.
                # Names may grow with the model: the object stays dynamic and the template below maps any
                # other component as float too.
                "components": {"type": "object", "dynamic": True,
                               "properties": {"iforest": {"type": "float"}, "rarity": {"type": "float"},
                                              "excess": {"type": "float"}}},
                "reason": KEYWORD,
                "reason_text": {"type": "text"},
            },
        },
        "model": {"properties": {"version": KEYWORD, "warnings": KEYWORD}},
        "templates": {
            "type": "object",
            "properties": {
                "id": KEYWORD,
                # The standard analyzer is built in (no analysis-common module needed).
                "template": {"type": "text", "fields": {"keyword": KEYWORD}},
                "observed": {"type": "integer"},
                "expected": {"type": "float"},
                "new": {"type": "boolean"},
                # Share of training windows that held the template: filter on rare reasons.
                "share": {"type": "float"},
            },
        },
        # Samples are searchable text ("anomalies whose lines mention OutOfMemory"), never aggregated.
        "log": {"properties": {"count": {"type": "integer"}, "samples": {"type": "text"}}},
    },
}


def check_prefix(prefix: str) -> str:
    """The prefix if Elasticsearch accepts it in index names, else a LogwardenError saying why."""
    if not prefix or prefix[0] in "-_+." or _BAD_PREFIX.search(prefix) or len(prefix.encode()) > 200:
        raise LogwardenError(
            f"index prefix {prefix!r} is not valid: use lower case letters, digits, '-', '_' or '.', "
            "not starting with '-', '_', '+' or '.', at most 200 bytes"
        )
    return prefix


def alias_name(prefix: str) -> str:
    """Read alias (daily layout) or data stream name: what Kibana and alert rules query."""
    return f"{prefix}-anomalies"


def _utc_day(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value / 1000.0 if value > 1e11 else value, tz=UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y.%m.%d")


def index_for(doc: dict[str, Any], prefix: str = DEFAULT_INDEX_PREFIX) -> str:
    """Concrete daily index ``<prefix>-anomalies-YYYY.MM.DD`` for a document (UTC day of its window start).

    Falls back to ``@timestamp`` for a document without ``window.start``. Raises ValueError/KeyError for a
    document with neither or an unparsable one (the sink turns that into a rejected document).
    """
    window = doc.get("window")
    value = window.get("start") if isinstance(window, dict) else None
    if value is None:
        value = doc["@timestamp"]
    return f"{alias_name(prefix)}-{_utc_day(value)}"


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
def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _put_if_changed(client: Elasticsearch, kind: str, name: str, body: dict[str, Any]) -> str:
    """PUT a template or ILM policy unless the stored one carries the same fingerprint in ``_meta``."""
    fingerprint = _fingerprint(body)
    meta = {"managed_by": "logwarden", "mapping_version": MAPPING_VERSION, "fingerprint": fingerprint}
    if kind == "template":
        found = client.options(ignore_status=404).indices.get_index_template(name=name)
        existing = [t["index_template"].get("_meta", {}) for t in found.body.get("index_templates", [])]
    else:
        found = client.options(ignore_status=404).ilm.get_lifecycle(name=name)
        policies = found.body.values() if found.meta.status == 200 else []
        existing = [p.get("policy", {}).get("_meta", {}) for p in policies]
    if existing and existing[0].get("fingerprint") == fingerprint:
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

    ``replicas="auto"`` means ``auto_expand_replicas: 0-1``: green on one node, one replica on a cluster.
    Safe to run repeatedly and concurrently with writers: templates are replaced only when they differ,
    existing daily indices keep their data (new mappings apply from the next daily index on).
    """
    check_prefix(prefix)
    if shards < 1:
        raise LogwardenError(f"shards must be at least 1, got {shards}")
    if use_ilm and not _ES_DURATION.match(retention):
        raise LogwardenError(f"retention {retention!r} is not an Elasticsearch time unit (examples: 30d, 12h)")
    if use_ilm and not supports_ilm(client):
        raise LogwardenError("ILM was requested but this Elasticsearch has no ILM (module missing); run without --ilm")
    if use_data_stream and not supports_data_streams(client):
        raise LogwardenError(
            "data streams were requested but this Elasticsearch has no data stream support; run without --data-stream"
        )
    name = alias_name(prefix)
    done: dict[str, str] = {}
    settings: dict[str, Any] = {"number_of_shards": shards}
    if replicas == "auto":
        settings["auto_expand_replicas"] = "0-1"
    else:
        settings["number_of_replicas"] = int(replicas)
    if use_ilm:
        done[f"ilm policy {name}"] = _put_if_changed(client, "policy", name, _ilm_policy(retention, use_data_stream))
        settings["index.lifecycle.name"] = name
    template: dict[str, Any] = {"settings": settings, "mappings": ANOMALY_MAPPINGS}
    body: dict[str, Any] = {"priority": TEMPLATE_PRIORITY}
    if use_data_stream:
        body |= {"index_patterns": [name], "data_stream": {}, "template": template}
    else:
        body |= {"index_patterns": [f"{name}-*"], "template": {**template, "aliases": {name: {}}}}
    if not use_data_stream:
        _refuse_concrete_index(client, name)
    done[f"index template {name}"] = _put_if_changed(client, "template", name, body)
    if use_data_stream:
        done[f"data stream {name}"] = _ensure(lambda: client.indices.create_data_stream(name=name))
    else:
        today = f"{name}-{datetime.now(UTC).strftime('%Y.%m.%d')}"
        done[f"index {today}"] = _ensure(lambda: client.indices.create(index=today))
        # Daily indices made before the template existed (auto-created by an early writer) join the alias too.
        client.indices.put_alias(index=f"{name}-*", name=name)
        count = len(client.indices.get_alias(name=name).body)
        done[f"alias {name}"] = f"covers {count} daily ind{'ex' if count == 1 else 'ices'}"
    return done


def _refuse_concrete_index(client: Elasticsearch, name: str) -> None:
    """An index named like the alias (auto-created by writing to it) would block the alias: say so."""
    found = client.options(ignore_status=404).indices.get(index=name, allow_no_indices=True, expand_wildcards="all")
    if found.meta.status == 200 and name in found.body:
        raise LogwardenError(
            f"an index named {name!r} exists where the alias must go; reindex or delete it, then run es-setup again"
        )


def _ensure(create: Any) -> str:
    try:
        create()
    except ApiError as exc:
        if exc.error in ("resource_already_exists_exception", "index_already_exists_exception"):
            return "exists"
        raise
    return "created"
