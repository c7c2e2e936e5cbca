"""Unit tests for pipeline.sinks.opensearch.client: building clients, telling OpenSearch from
Elasticsearch, one-line error descriptions, and the install hint when the extra is missing."""

from __future__ import annotations

import importlib
import sys

import pytest

from pipeline.errors import LogwardenError
from pipeline.sinks.opensearch.client import describe_error, make_os_client, server_version
from tests.fakes import FakeOpenSearch


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(LogwardenError, match="no OpenSearch URL"):
        make_os_client(" , ")
    with pytest.raises(LogwardenError, match="username and password go together"):
        make_os_client("http://os:9200", username="writer")
    with pytest.raises(LogwardenError, match="not an API key: unset LOGWARDEN_ES_API_KEY"):
        make_os_client("http://os:9200", api_key="k")
    with pytest.raises(LogwardenError, match="scheme"):
        make_os_client("ftp://os:9200")
    with pytest.raises(LogwardenError, match="timeout"):
        make_os_client("http://os:9200", timeout=0)


def test_server_version_reads_opensearch_and_refuses_elasticsearch() -> None:
    assert server_version(FakeOpenSearch(version="3.3.0").client()) == "3.3.0"
    fake = FakeOpenSearch()
    fake.version = "9.5.2"
    client = fake.client()
    client.info = lambda: {"version": {"number": "9.5.2", "build_flavor": "default"}}  # type: ignore[method-assign]
    with pytest.raises(LogwardenError, match="Elasticsearch 9.5.2, not OpenSearch: use --sink elasticsearch"):
        server_version(client)


def test_errors_are_described_in_one_line() -> None:
    fake = FakeOpenSearch()
    client = fake.client()
    from opensearchpy import TransportError  # noqa: PLC0415

    with pytest.raises(TransportError) as missing:
        client.indices.get(index="nope")
    text = describe_error(missing.value, "http://os:9200")
    assert text.startswith("OpenSearch at http://os:9200 refused the request (404 index_not_found_exception")
    fake.down = True
    with pytest.raises(TransportError) as down:
        client.indices.get(index="nope")
    assert describe_error(down.value).startswith("cannot reach OpenSearch (")
    assert "\n" not in text


def test_without_the_extra_the_import_is_a_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opensearchpy", None)  # what `import` sees when it is not installed
    monkeypatch.delitem(sys.modules, "pipeline.sinks.opensearch.client")
    with pytest.raises(LogwardenError) as info:
        importlib.import_module("pipeline.sinks.opensearch.client")
    assert str(info.value) == "OpenSearch support needs opensearch-py: pip install 'logwarden[opensearch]'"
