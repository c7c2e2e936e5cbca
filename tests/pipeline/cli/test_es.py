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
