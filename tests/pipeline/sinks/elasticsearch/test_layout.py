"""Unit tests for pipeline.sinks.elasticsearch.layout against FakeElasticsearch (optional modules on and off)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import LogwardenError
from pipeline.sinks.elasticsearch.layout import ANOMALY_MAPPINGS, alias_name, check_prefix, setup_indices
from tests.fakes import FakeElasticsearch


def today(prefix: str) -> str:
    return f"{prefix}-anomalies-{datetime.now(UTC):%Y.%m.%d}"


def test_default_layout_template_index_and_alias() -> None:
    fake = FakeElasticsearch()
    done = setup_indices(fake.client(), "lw")
    assert done == {
        "index template lw-anomalies": "created",
        f"index {today('lw')}": "created",
        "alias lw-anomalies": "covers 1 daily index",
    }
    template = fake.templates["lw-anomalies"]
    assert template["index_patterns"] == ["lw-anomalies-*"]
    assert template["template"]["aliases"] == {"lw-anomalies": {}}
    assert template["template"]["settings"] == {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] is False
    assert mappings["properties"]["templates"]["type"] == "object"  # KQL `templates.id: X` works on Kibana
    assert mappings["properties"]["templates"]["properties"]["id"]["type"] == "keyword"
    assert template["_meta"]["managed_by"] == "logwarden"
    assert fake.aliases["lw-anomalies"] == {today("lw")}
    assert "lifecycle" not in str(template)


def test_setup_is_idempotent_and_updates_only_on_change() -> None:
    fake = FakeElasticsearch()
    client = fake.client()
    setup_indices(client, "lw")
    again = setup_indices(client, "lw")
    assert again["index template lw-anomalies"] == "unchanged"
    assert again[f"index {today('lw')}"] == "exists"
    changed = setup_indices(client, "lw", replicas=2)
    assert changed["index template lw-anomalies"] == "updated"
    assert fake.templates["lw-anomalies"]["template"]["settings"]["number_of_replicas"] == 2


def test_daily_indices_made_before_setup_join_the_alias() -> None:
    fake = FakeElasticsearch()
    fake.docs["lw-anomalies-2015.10.18"] = {}
    done = setup_indices(fake.client(), "lw")
    assert done["alias lw-anomalies"] == "covers 2 daily indices"
    assert fake.aliases["lw-anomalies"] == {"lw-anomalies-2015.10.18", today("lw")}


def test_ilm_only_when_supported() -> None:
    with pytest.raises(LogwardenError, match="no ILM"):
        setup_indices(FakeElasticsearch(ilm=False).client(), "lw", use_ilm=True)
    fake = FakeElasticsearch(ilm=True)
    done = setup_indices(fake.client(), "lw", use_ilm=True, retention="7d")
    assert done["ilm policy lw-anomalies"] == "created"
    assert fake.policies["lw-anomalies"]["phases"]["delete"]["min_age"] == "7d"
    assert "rollover" not in fake.policies["lw-anomalies"]["phases"]["hot"]["actions"]  # daily indices
    assert fake.templates["lw-anomalies"]["template"]["settings"]["index.lifecycle.name"] == "lw-anomalies"
    assert setup_indices(fake.client(), "lw", use_ilm=True, retention="7d")["ilm policy lw-anomalies"] == "unchanged"
    with pytest.raises(LogwardenError, match="retention"):
        setup_indices(fake.client(), "lw", use_ilm=True, retention="a week")


def test_data_stream_only_when_supported() -> None:
    with pytest.raises(LogwardenError, match="data stream"):
        setup_indices(FakeElasticsearch().client(), "lw", use_data_stream=True)
    fake = FakeElasticsearch(data_streams=True, ilm=True)
    done = setup_indices(fake.client(), "lw", use_data_stream=True, use_ilm=True)
    template = fake.templates["lw-anomalies"]
    assert template["data_stream"] == {}
    assert template["index_patterns"] == ["lw-anomalies"]
    assert "aliases" not in template["template"]
    assert fake.streams == {"lw-anomalies"}
    assert done["data stream lw-anomalies"] == "created"
    assert "rollover" in fake.policies["lw-anomalies"]["phases"]["hot"]["actions"]


def test_unsupported_request_changes_nothing() -> None:
    fake = FakeElasticsearch()
    with pytest.raises(LogwardenError):
        setup_indices(fake.client(), "lw", use_ilm=True)
    assert fake.templates == {} and fake.docs == {}


def test_concrete_index_in_the_alias_place_is_refused() -> None:
    fake = FakeElasticsearch()
    fake.docs["lw-anomalies"] = {}  # someone wrote to the alias name before setup
    with pytest.raises(LogwardenError, match="exists where the alias must go"):
        setup_indices(fake.client(), "lw")


@pytest.mark.parametrize("prefix", ["", "Logwarden", "a*b", "_x", "-x", "a b", "a,b", "a/b"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(LogwardenError, match="index prefix"):
        check_prefix(prefix)


def test_mapping_covers_every_document_field() -> None:
    props = ANOMALY_MAPPINGS["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert {k: v["type"] for k, v in props["window"]["properties"].items()} == {
        "start": "date", "end": "date", "kind": "keyword", "late": "boolean", "stream": "keyword", "offset": "long"}
    anomaly = dict(props["anomaly"]["properties"])
    components = anomaly.pop("components")["properties"]
    assert {k: v["type"] for k, v in anomaly.items()} == {
        "score": "float", "threshold": "float", "is_anomaly": "boolean", "reason": "keyword", "reason_text": "text"}
    assert {k: v["type"] for k, v in components.items()} == {"iforest": "float", "rarity": "float", "excess": "float"}
    assert {k: v["type"] for k, v in props["model"]["properties"].items()} == {"version": "keyword",
                                                                            "warnings": "keyword"}
    assert props["anomaly"]["properties"]["components"]["dynamic"] is True
    assert ANOMALY_MAPPINGS["dynamic_templates"] == [
        {"anomaly_components": {"path_match": "anomaly.components.*", "mapping": {"type": "float"}}}]
    assert props["templates"]["properties"]["template"]["fields"]["keyword"]["type"] == "keyword"
    assert props["log"]["properties"]["count"]["type"] == "integer"
    assert alias_name("x") == "x-anomalies"


# -- the worker's privileges, asked before it reads a record ----------------------------------------------------
class _Answer:
    def __init__(self, status: int, body: dict) -> None:
        self.meta = type("Meta", (), {"status": status})()
        self.body = body


class _PrivilegeClient:
    """Answers ``_has_privileges`` like Elasticsearch; records what was asked."""

    def __init__(self, status: int, body: dict) -> None:
        self.answer = _Answer(status, body)
        self.asked: dict = {}
        self.security = self

    def options(self, **_: object) -> _PrivilegeClient:
        return self

    def has_privileges(self, **request: object) -> _Answer:
        self.asked = request
        return self.answer


def test_missing_privileges_names_each_one_and_its_indices() -> None:
    from pipeline.sinks.elasticsearch.layout import missing_privileges  # noqa: PLC0415

    body = {"has_all_requested": False, "cluster": {"manage_index_templates": True},
            "index": {"lw-anomalies-*": {"create_index": True, "index": False, "read": True,
                                         "view_index_metadata": True},
                      "lw-templates": {"create_index": True, "index": False, "read": False,
                                       "view_index_metadata": True}}}
    client = _PrivilegeClient(200, body)
    assert missing_privileges(client, "lw") == ["index on lw-anomalies-*", "index, read on lw-templates"]  # type: ignore[arg-type]
    assert client.asked["cluster"] == ["manage_index_templates"]
    assert client.asked["index"] == [{"names": ["lw-anomalies-*", "lw-templates"],
                                      "privileges": ["create_index", "index", "read", "view_index_metadata"]}]
    missing_privileges(client, "lw", setup=False, catalog=False)  # type: ignore[arg-type]
    assert client.asked["cluster"] == [] and client.asked["index"][0]["names"] == ["lw-anomalies-*"]


def test_a_cluster_without_security_has_nothing_to_check() -> None:
    from pipeline.sinks.elasticsearch.layout import missing_privileges  # noqa: PLC0415

    assert missing_privileges(_PrivilegeClient(500, {"error": "security is disabled"}), "lw") == []  # type: ignore[arg-type]
    assert missing_privileges(_PrivilegeClient(200, {"has_all_requested": True}), "lw") == []  # type: ignore[arg-type]
