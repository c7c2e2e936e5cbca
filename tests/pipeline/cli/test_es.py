"""Unit tests for ``logwarden es-setup`` (pipeline.cli.es), invoked on the command object with CliRunner."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import pipeline.cli.es as cli_es
from pipeline.errors import LogwardenError
from tests.fakes import FakeElasticsearch


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeElasticsearch, list[dict[str, Any]]]:
    """Route es-setup to a FakeElasticsearch and record how the client was built."""
    server = FakeElasticsearch()
    calls: list[dict[str, Any]] = []

    def make(url: str, api_key: str | None, username: str | None, password: str | None, **kw: Any) -> Any:
        calls.append({"url": url, "api_key": api_key, "username": username, "password": password, **kw})
        return server.client()

    monkeypatch.setattr(cli_es, "make_es_client", make)
    for var in ("LOGWARDEN_ES_URL", "LOGWARDEN_ES_API_KEY", "LOGWARDEN_ES_USERNAME", "LOGWARDEN_ES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return server, calls


def test_prints_what_it_created(fake: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> None:
    server, calls = fake
    result = CliRunner().invoke(cli_es.es_setup, ["--index-prefix", "demo"])
    assert result.exit_code == 0, result.output
    assert "index template demo-anomalies: created" in result.output
    assert "alias demo-anomalies: covers 1 daily index" in result.output
    assert calls[0]["url"] == "http://127.0.0.1:9200"
    assert "demo-anomalies" in server.templates


def test_secrets_and_url_come_from_the_environment(fake: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> None:
    _, calls = fake
    env = {"LOGWARDEN_ES_URL": "http://es.example:9200", "LOGWARDEN_ES_USERNAME": "writer",
           "LOGWARDEN_ES_PASSWORD": "s3cret"}
    result = CliRunner().invoke(cli_es.es_setup, [], env=env)
    assert result.exit_code == 0, result.output
    built = calls[0]
    assert (built["url"], built["username"], built["password"]) == ("http://es.example:9200", "writer", "s3cret")
    assert "s3cret" not in result.output
    result = CliRunner().invoke(cli_es.es_setup, ["--api-key", "flag-key"], env={"LOGWARDEN_ES_API_KEY": "env-key"})
    assert calls[1]["api_key"] == "flag-key"  # a flag wins over the environment


def test_unreachable_is_one_line_user_error(fake: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> None:
    server, _ = fake
    server.down = True
    result = CliRunner().invoke(cli_es.es_setup, [])
    assert isinstance(result.exception, LogwardenError)
    message = str(result.exception)
    assert "\n" not in message
    assert message.startswith("es-setup: cannot reach Elasticsearch at http://127.0.0.1:9200")


def test_ilm_on_a_server_without_it_is_a_user_error(fake: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> None:
    result = CliRunner().invoke(cli_es.es_setup, ["--ilm"])
    assert isinstance(result.exception, LogwardenError)
    assert "no ILM" in str(result.exception)


def test_bad_replicas_is_a_usage_error(fake: tuple[FakeElasticsearch, list[dict[str, Any]]]) -> None:
    result = CliRunner().invoke(cli_es.es_setup, ["--replicas", "many"])
    assert result.exit_code == 2
    assert "replicas" in result.output


def test_real_client_against_a_closed_port_is_one_line() -> None:
    """No fake: the real client and transport, a loopback port nobody listens on."""
    result = CliRunner().invoke(cli_es.es_setup, ["--es-url", "http://127.0.0.1:9", "--timeout", "2"])
    assert isinstance(result.exception, LogwardenError)
    assert str(result.exception).startswith("es-setup: cannot reach Elasticsearch at http://127.0.0.1:9 (")


def test_es_compat_reaches_the_client(
    fake: tuple[FakeElasticsearch, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, calls = fake
    monkeypatch.delenv("LOGWARDEN_ES_COMPAT", raising=False)
    assert CliRunner().invoke(cli_es.es_setup, []).exit_code == 0
    assert CliRunner().invoke(cli_es.es_setup, ["--es-compat", "8"]).exit_code == 0
    monkeypatch.setenv("LOGWARDEN_ES_COMPAT", "9")
    assert CliRunner().invoke(cli_es.es_setup, []).exit_code == 0
    assert [c["compat"] for c in calls] == ["auto", "8", "9"]
    bad = CliRunner().invoke(cli_es.es_setup, ["--es-compat", "7"])
    assert bad.exit_code == 2 and "'7' is not one of 'auto', '8', '9'" in bad.output


# ------------------------------------------------------------------------------------------- OpenSearch
@pytest.fixture
def fake_os(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]]]:
    """Route ``es-setup --sink opensearch`` to a FakeOpenSearch and record how the client was built."""
    from tests.fakes import FakeOpenSearch  # noqa: PLC0415

    server = FakeOpenSearch(ism=True)
    calls: list[dict[str, Any]] = []

    def make(url: str, api_key: str | None, username: str | None, password: str | None, **kw: Any) -> Any:
        calls.append({"url": url, "api_key": api_key, "username": username, "password": password, **kw})
        return server.client()

    monkeypatch.setattr(cli_es, "make_os_client", make)
    for var in ("LOGWARDEN_ES_URL", "LOGWARDEN_SINK", "LOGWARDEN_ES_USERNAME", "LOGWARDEN_ES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return server, calls


def test_opensearch_setup_uses_the_same_flags_and_creates_the_same_layout(fake_os: tuple[Any, list[Any]]) -> None:
    server, calls = fake_os
    env = {"LOGWARDEN_ES_USERNAME": "writer", "LOGWARDEN_ES_PASSWORD": "s3cret"}
    result = CliRunner().invoke(cli_es.es_setup, ["--sink", "opensearch", "--es-url", "http://os:9200",
                                                  "--index-prefix", "demo", "--ilm", "--retention", "7d"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "OpenSearch 2.19.6"
    assert "ism policy demo-anomalies: created" in result.output
    assert "index template demo-anomalies: created" in result.output
    assert (calls[0]["url"], calls[0]["username"], calls[0]["password"]) == ("http://os:9200", "writer", "s3cret")
    assert "demo-anomalies" in server.ism_policies and "demo-anomalies" in server.templates


def test_the_sink_comes_from_the_environment_too(fake_os: tuple[Any, list[Any]]) -> None:
    result = CliRunner().invoke(cli_es.es_setup, [], env={"LOGWARDEN_SINK": "opensearch"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OpenSearch ")


def test_opensearch_unreachable_is_one_line_user_error(fake_os: tuple[Any, list[Any]]) -> None:
    server, _ = fake_os
    server.down = True
    result = CliRunner().invoke(cli_es.es_setup, ["--sink", "opensearch"])
    assert isinstance(result.exception, LogwardenError)
    assert str(result.exception).startswith("es-setup: cannot reach OpenSearch at http://127.0.0.1:9200")
    assert "\n" not in str(result.exception)


def test_opensearch_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys  # noqa: PLC0415

    from pipeline.cli.app import cli  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "opensearchpy", None)
    monkeypatch.delitem(sys.modules, "pipeline.sinks.opensearch.client", raising=False)
    result = CliRunner().invoke(cli, ["es-setup", "--sink", "opensearch"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "logwarden: error: OpenSearch support needs opensearch-py: pip install 'logwarden[opensearch]'")
