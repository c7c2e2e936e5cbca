"""Unit tests for pipeline.sinks.opensearch.layout against FakeOpenSearch: the same layout as on
Elasticsearch, an ISM policy instead of ILM, and one-line errors for what the server lacks."""

from __future__ import annotations

import pytest

from pipeline.errors import LogwardenError
from pipeline.sinks.anomaly_index import ANOMALY_MAPPINGS, fingerprint
from pipeline.sinks.elasticsearch.layout import setup_indices as es_setup_indices
from pipeline.sinks.opensearch.layout import setup_indices
from tests.fakes import FakeElasticsearch, FakeOpenSearch


def test_creates_template_today_index_and_alias_idempotently() -> None:
    fake = FakeOpenSearch()
    first = setup_indices(fake.client(), "demo")
    assert first["index template demo-anomalies"] == "created"
    assert first["alias demo-anomalies"] == "covers 1 daily index"
    template = fake.templates["demo-anomalies"]
    assert template["index_patterns"] == ["demo-anomalies-*"]
    assert template["template"]["mappings"] == ANOMALY_MAPPINGS
    assert template["_meta"]["managed_by"] == "logwarden"
    again = setup_indices(fake.client(), "demo")
    assert again["index template demo-anomalies"] == "unchanged"
    assert next(v for k, v in again.items() if k.startswith("index demo-anomalies-")) == "exists"


def test_the_template_is_the_one_elasticsearch_gets() -> None:
    """One layout, two servers: dashboards and alert rules read the same fields from either."""
    es, os_ = FakeElasticsearch(), FakeOpenSearch()
    es_setup_indices(es.client(), "demo", shards=2, replicas=1)
    setup_indices(os_.client(), "demo", shards=2, replicas=1)
    assert os_.templates["demo-anomalies"] == es.templates["demo-anomalies"]


def test_lifecycle_is_an_ism_policy_attached_to_new_daily_indices() -> None:
    fake = FakeOpenSearch(ism=True)
    done = setup_indices(fake.client(), "demo", use_ilm=True, retention="7d")
    assert done["ism policy demo-anomalies"] == "created"
    policy = fake.ism_policies["demo-anomalies"]["policy"]
    hot, delete = policy["states"]
    assert hot["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}]
    assert delete["actions"] == [{"delete": {}}]
    assert policy["ism_template"][0]["index_patterns"] == ["demo-anomalies-*"]
    # No ILM setting leaks into the OpenSearch template (OpenSearch would refuse index.lifecycle.name).
    assert "index.lifecycle.name" not in fake.templates["demo-anomalies"]["template"]["settings"]


def test_an_unchanged_policy_is_left_alone_and_a_changed_one_updated_with_its_seq_no() -> None:
    fake = FakeOpenSearch(ism=True)
    setup_indices(fake.client(), "demo", use_ilm=True, retention="7d")
    again = setup_indices(fake.client(), "demo", use_ilm=True, retention="7d")
    assert again["ism policy demo-anomalies"] == "unchanged"
    assert fake.ism_policies["demo-anomalies"]["_seq_no"] == 0
    done = setup_indices(fake.client(), "demo", use_ilm=True, retention="14d")
    assert done["ism policy demo-anomalies"] == "updated"
    stored = fake.ism_policies["demo-anomalies"]
    assert stored["_seq_no"] == 1  # the fake refuses an update without the current if_seq_no
    assert stored["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"] == "14d"


def test_data_streams_roll_over_daily_and_delete_backing_indices() -> None:
    fake = FakeOpenSearch(ism=True)
    done = setup_indices(fake.client(), "demo", use_ilm=True, use_data_stream=True)
    assert done["data stream demo-anomalies"] == "created"
    assert fake.templates["demo-anomalies"]["data_stream"] == {}
    policy = fake.ism_policies["demo-anomalies"]["policy"]
    assert policy["states"][0]["actions"][0]["rollover"]["min_index_age"] == "1d"
    assert policy["ism_template"][0]["index_patterns"] == [".ds-demo-anomalies-*"]


def test_lifecycle_without_the_ism_plugin_is_a_one_line_error_before_anything_is_created() -> None:
    fake = FakeOpenSearch(ism=False)
    with pytest.raises(LogwardenError, match="no Index State Management plugin") as info:
        setup_indices(fake.client(), "demo", use_ilm=True)
    assert "\n" not in str(info.value)
    assert fake.templates == {}


def test_bad_arguments_are_user_errors() -> None:
    fake = FakeOpenSearch(ism=True)
    with pytest.raises(LogwardenError, match="retention"):
        setup_indices(fake.client(), "demo", use_ilm=True, retention="a month")
    with pytest.raises(LogwardenError, match="index prefix"):
        setup_indices(fake.client(), "Demo")
    with pytest.raises(LogwardenError, match="data stream"):
        setup_indices(FakeOpenSearch(data_streams=False).client(), "demo", use_data_stream=True)


def test_an_index_where_the_alias_must_go_is_refused() -> None:
    fake = FakeOpenSearch()
    fake.docs["demo-anomalies"] = {}
    with pytest.raises(LogwardenError, match="exists where the alias must go"):
        setup_indices(fake.client(), "demo")


def test_fingerprints_ignore_key_order() -> None:
    assert fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint({"b": {"d": 3, "c": 2}, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
