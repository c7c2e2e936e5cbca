"""The shipped Kibana saved objects: they parse, their references resolve, and every field they use exists in the
index template with a type that supports the use. Also the prefix rewrite and the multipart body."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import LogwardenError
from pipeline.sinks.elasticsearch.catalog import CATALOG_MAPPINGS
from pipeline.sinks.elasticsearch.layout import ANOMALY_MAPPINGS
from pipeline.sinks.kibana import (
    DEFAULT_OBJECTS,
    TEMPLATES_VIEW,
    KibanaAuth,
    for_prefix,
    import_url,
    load_objects,
    multipart,
    to_ndjson,
)

OBJECTS = load_objects(DEFAULT_OBJECTS)
BY_KEY = {(o["type"], o["id"]): o for o in OBJECTS}
NUMERIC = {"float", "double", "long", "integer", "short", "half_float", "scaled_float"}
AGGREGATABLE = NUMERIC | {"keyword", "boolean", "date"}
# Uses -> the field types that support them.
USES = {"terms": {"keyword", "boolean"} | NUMERIC, "date_histogram": {"date"}, "range": NUMERIC,
        "max": NUMERIC, "min": NUMERIC, "average": NUMERIC, "median": NUMERIC, "sum": NUMERIC,
        "column": {"keyword", "text", "boolean", "date", "long", "float", "integer", "object"} | NUMERIC,
        "query": {"keyword", "text", "boolean", "date"} | NUMERIC, "time": {"date"}}


def field_types(mappings: dict[str, Any]) -> dict[str, str]:
    """Flattened field name -> type from the index template, multi-fields and dynamic templates included."""
    found: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = prefix + name
            found[path] = spec.get("type", "object")
            for sub, sub_spec in spec.get("fields", {}).items():
                found[f"{path}.{sub}"] = sub_spec["type"]
            walk(spec.get("properties", {}), path + ".")

    walk(mappings["properties"], "")
    return found


FIELDS = field_types(ANOMALY_MAPPINGS)


def type_of(field: str) -> str | None:
    if field in FIELDS:
        return FIELDS[field]
    for entry in ANOMALY_MAPPINGS.get("dynamic_templates", []):
        (spec,) = entry.values()
        pattern = re.escape(spec["path_match"]).replace(r"\*", "[^.]+")
        parent = spec["path_match"].rsplit(".", 1)[0]
        if re.fullmatch(pattern, field) and FIELDS.get(parent) == "object":
            return str(spec["mapping"]["type"])
    return None


def lucene_fields(query: str) -> list[str]:
    return re.findall(r"([A-Za-z@][\w.@]*):", query)


def used_fields() -> list[tuple[str, str, str]]:
    """(object, field, use) for every field a saved object reads."""
    uses: list[tuple[str, str, str]] = []
    for obj in OBJECTS:
        name, attrs = f"{obj['type']}/{obj['id']}", obj["attributes"]
        if obj["type"] == "index-pattern" and obj["id"] != TEMPLATES_VIEW:
            uses.append((name, attrs["timeFieldName"], "time"))
        if obj["type"] == "search":
            uses += [(name, column, "column") for column in attrs["columns"]]
            uses += [(name, field, "time") for field, _ in attrs["sort"]]
            source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
            uses += [(name, f, "query") for f in lucene_fields(source["query"]["query"])]
        if obj["type"] == "lens":
            for layer in attrs["state"]["datasourceStates"]["formBased"]["layers"].values():
                for column in layer["columns"].values():
                    if column["operationType"] != "count":
                        uses.append((name, column["sourceField"], column["operationType"]))
                    for f in lucene_fields(column.get("filter", {}).get("query", "")):
                        uses.append((name, f, "query"))
        if obj["type"] == "alert":
            params = attrs["params"]
            uses += [(name, params["timeField"], "time"), (name, params["termField"], "terms")]
            for clause in json.loads(params["esQuery"])["query"]["bool"]["filter"]:
                (kind,) = clause
                (field,) = clause[kind]
                uses.append((name, field, "query"))
    return uses


def test_every_line_is_a_saved_object_of_ours() -> None:
    lines = DEFAULT_OBJECTS.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(OBJECTS) >= 8
    for line in lines:
        obj = json.loads(line)
        assert obj["id"].startswith("logwarden-"), "ids must be ours: import overwrites by id"
        assert isinstance(obj["attributes"], dict) and isinstance(obj["references"], list)
    assert len(BY_KEY) == len(OBJECTS), "two objects with one type and id"
    assert {o["type"] for o in OBJECTS} == {"index-pattern", "search", "lens", "dashboard", "alert"}


def test_every_reference_resolves() -> None:
    for obj in OBJECTS:
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in BY_KEY, (obj["id"], reference)
    dashboard = BY_KEY[("dashboard", "logwarden-anomalies-dashboard")]
    names = {r["name"] for r in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert len(panels) == 6
    for panel in panels:
        assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names
    # Lens layers and the saved search name their data view reference the way Kibana looks it up.
    for obj in OBJECTS:
        if obj["type"] == "lens":
            layers = obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
            assert {f"indexpattern-datasource-layer-{lid}" for lid in layers} == {r["name"] for r in obj["references"]}
            for layer in layers.values():
                assert set(layer["columnOrder"]) == set(layer["columns"])
        if obj["type"] == "search":
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in {r["name"] for r in obj["references"]}


def test_data_view_is_the_alias_with_its_time_field() -> None:
    view = BY_KEY[("index-pattern", "logwarden-anomalies")]["attributes"]
    assert view["title"] == "logwarden-anomalies" and view["timeFieldName"] == "@timestamp"


def test_templates_data_view_is_the_catalog_with_a_date_time_field() -> None:
    view = BY_KEY[("index-pattern", TEMPLATES_VIEW)]["attributes"]
    assert view["title"] == "logwarden-templates"
    assert field_types(CATALOG_MAPPINGS)[view["timeFieldName"]] == "date"
    assert field_types(CATALOG_MAPPINGS)["template_id"] == "keyword"  # `template_id: T...` finds one template


def test_every_field_used_exists_with_a_type_that_supports_the_use() -> None:
    uses = used_fields()
    assert len(uses) > 20  # the walk really found the fields
    bad = [(obj, field, use, type_of(field)) for obj, field, use in uses if type_of(field) not in USES[use]]
    assert not bad, bad


def test_the_field_check_catches_a_wrong_field() -> None:
    assert type_of("entity.id") == "keyword" and type_of("anomaly.components.iforest") == "float"
    assert type_of("templates.template") == "text" and type_of("templates.template") not in USES["terms"]
    assert type_of("entity.name") is None and type_of("anomaly.components") == "object"


def test_for_prefix_points_the_data_view_and_rule_at_the_prefix_and_sets_the_score() -> None:
    objects = for_prefix(OBJECTS, "acme-prod", 0.8)
    view = next(o for o in objects if o["id"] == "logwarden-anomalies")
    templates_view = next(o for o in objects if o["id"] == TEMPLATES_VIEW)
    assert templates_view["attributes"]["title"] == "acme-prod-templates"
    rule = next(o for o in objects if o["type"] == "alert")
    assert view["attributes"]["title"] == "acme-prod-anomalies"
    assert rule["attributes"]["params"]["index"] == ["acme-prod-anomalies"]
    query = json.loads(rule["attributes"]["params"]["esQuery"])
    assert {"range": {"anomaly.score": {"gte": 0.8}}} in query["query"]["bool"]["filter"]
    assert [o["id"] for o in objects] == [o["id"] for o in OBJECTS]
    assert BY_KEY[("index-pattern", "logwarden-anomalies")]["attributes"]["title"] == "logwarden-anomalies"


def test_multipart_body_holds_the_ndjson_as_the_file_part() -> None:
    data = to_ndjson(OBJECTS)
    body, content_type = multipart(data)
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert b'name="file"; filename="logwarden.ndjson"' in body and data in body


def test_import_url_and_auth() -> None:
    assert import_url("http://k:5601/", None) == "http://k:5601/api/saved_objects/_import?overwrite=true"
    assert import_url("https://k/kb", "sre") == "https://k/kb/s/sre/api/saved_objects/_import?overwrite=true"
    with pytest.raises(LogwardenError, match="space"):
        import_url("http://k", "Bad Space")
    with pytest.raises(LogwardenError, match="http"):
        import_url("k:5601", None)
    assert KibanaAuth(api_key="abc").header() == "ApiKey abc"
    assert KibanaAuth(username="u", password="p").header() == "Basic dTpw"
    assert KibanaAuth().header() is None


def test_load_objects_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text('{"type": "search", "id": "a", "attributes": {}}\n{oops\n')
    with pytest.raises(LogwardenError, match=r"x.ndjson:2: not JSON"):
        load_objects(path)
