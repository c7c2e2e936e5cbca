"""The anomaly index layout both search sinks share: mappings, names, daily indices, template bodies.

Elasticsearch (:mod:`pipeline.sinks.elasticsearch.layout`) and OpenSearch
(:mod:`pipeline.sinks.opensearch.layout`) create the same layout through their own clients; what the
layout *is* lives here once, so a mapping change reaches both and a document indexed by either looks the
same to readers::

    index template  <prefix>-anomalies          matches <prefix>-anomalies-*, explicit mappings, adds the alias
    daily indices   <prefix>-anomalies-YYYY.MM.DD   one per UTC day of the window start
    alias           <prefix>-anomalies          reads (Kibana/Dashboards, alert rules) span every day

Why the window *start* picks the day: the document ``_id`` (:func:`pipeline.scoring.document_id`) is built
from the window start, so "same ``_id`` -> same index" holds by construction and a replay overwrites
instead of duplicating. ``@timestamp`` (the window end) can fall on the next day for a window that spans
midnight; the alias hides that from readers.

Why ``templates`` is an ``object`` array, not ``nested``: KQL/DQL filters ``templates.id: "abc"``, filter
pills and terms aggregations on ``templates.id`` work directly on object arrays, while nested fields need
nested query syntax and are not aggregatable in Lens. The price: a query combining two template fields
(``templates.id: X and templates.new: true``) can match across different entries of one document.

``dynamic: false``: unknown fields stay in ``_source`` but are not indexed, so a newer worker that adds a
field never gets its documents rejected (``strict`` would send them to dead letters).

Only core mapping types are used (keyword, text with the built-in standard analyzer, date, numbers,
boolean), which every Elasticsearch 8/9 and OpenSearch 1/2/3 has without optional modules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError

MAPPING_VERSION = 3  # 3: anomaly.components / reason, model.warnings
TEMPLATE_PRIORITY = 200
_BAD_PREFIX = re.compile(r'[\\/*?"<>|,# :A-Z]')
_DURATION = re.compile(r"^\d+(d|h|m|s|ms)$")

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
    """The prefix if Elasticsearch and OpenSearch accept it in index names, else a LogwardenError saying why."""
    if not prefix or prefix[0] in "-_+." or _BAD_PREFIX.search(prefix) or len(prefix.encode()) > 200:
        raise LogwardenError(
            f"index prefix {prefix!r} is not valid: use lower case letters, digits, '-', '_' or '.', "
            "not starting with '-', '_', '+' or '.', at most 200 bytes"
        )
    return prefix


def alias_name(prefix: str) -> str:
    """Read alias (daily layout) or data stream name: what dashboards and alert rules query."""
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


def today_index(prefix: str) -> str:
    """Today's daily index (created by setup so the alias has a member before the first document)."""
    return f"{alias_name(prefix)}-{datetime.now(UTC).strftime('%Y.%m.%d')}"


# ------------------------------------------------------------------------------------ setup bodies
def check_setup(prefix: str, shards: int, retention: str, lifecycle: bool) -> str:
    """Validate the setup arguments both servers share; returns the alias / data stream name."""
    check_prefix(prefix)
    if shards < 1:
        raise LogwardenError(f"shards must be at least 1, got {shards}")
    if lifecycle and not _DURATION.match(retention):
        raise LogwardenError(f"retention {retention!r} is not a time unit (examples: 30d, 12h)")
    return alias_name(prefix)


def fingerprint(body: dict[str, Any]) -> str:
    """Short stable hash of a template or policy body: setup rewrites a resource only when it changed."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def managed_meta(body: dict[str, Any]) -> dict[str, Any]:
    """The ``_meta`` Logwarden stores on what it manages (read back to skip unchanged PUTs)."""
    return {"managed_by": "logwarden", "mapping_version": MAPPING_VERSION, "fingerprint": fingerprint(body)}


def template_body(prefix: str, *, shards: int = 1, replicas: int | str = "auto", use_data_stream: bool = False,
                  extra_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The composable index template (``index_patterns``, ``priority``, ``template``; no ``_meta``).

    ``replicas="auto"`` means ``auto_expand_replicas: 0-1``: green on one node, one replica on a cluster.
    ``extra_settings``: server-specific index settings (Elasticsearch's ILM policy name).
    """
    name = alias_name(prefix)
    settings: dict[str, Any] = {"number_of_shards": shards}
    if replicas == "auto":
        settings["auto_expand_replicas"] = "0-1"
    else:
        settings["number_of_replicas"] = int(replicas)
    settings |= extra_settings or {}
    template: dict[str, Any] = {"settings": settings, "mappings": ANOMALY_MAPPINGS}
    body: dict[str, Any] = {"priority": TEMPLATE_PRIORITY}
    if use_data_stream:
        body |= {"index_patterns": [name], "data_stream": {}, "template": template}
    else:
        body |= {"index_patterns": [f"{name}-*"], "template": {**template, "aliases": {name: {}}}}
    return body


def ensure(create: Callable[[], Any], already_exists: Callable[[Exception], bool]) -> str:
    """``"created"``, or ``"exists"`` when ``create`` raised what ``already_exists`` recognises."""
    try:
        create()
    except Exception as exc:
        if already_exists(exc):
            return "exists"
        raise
    return "created"


def create_targets(prefix: str, use_data_stream: bool, *, create_stream: Callable[[str], Any],
                   create_index: Callable[[str], Any], join_alias: Callable[[str, str], int],
                   already_exists: Callable[[Exception], bool]) -> dict[str, str]:
    """Create what documents are written to, through one server's client: the data stream, or today's
    daily index plus the alias over every daily index (``join_alias(pattern, alias)`` returns its size)."""
    name = alias_name(prefix)
    if use_data_stream:
        return {f"data stream {name}": ensure(lambda: create_stream(name), already_exists)}
    today = today_index(prefix)
    done = {f"index {today}": ensure(lambda: create_index(today), already_exists)}
    # Daily indices made before the template existed (auto-created by an early writer) join the alias too.
    count = join_alias(f"{name}-*", name)
    done[f"alias {name}"] = f"covers {count} daily ind{'ex' if count == 1 else 'ices'}"
    return done


ALREADY_EXISTS = ("resource_already_exists_exception", "index_already_exists_exception")


def concrete_index_error(name: str) -> LogwardenError:
    """An index named like the alias (auto-created by writing to it) would block the alias: say so."""
    return LogwardenError(
        f"an index named {name!r} exists where the alias must go; reindex or delete it, then run es-setup again"
    )
