"""``logwarden kibana import`` against a small local HTTP stand-in for Kibana's saved objects ``_import`` API.

Kibana cannot run here; the stand-in checks what Kibana checks of the request (method, path with the space and
``overwrite=true``, the ``kbn-xsrf`` header, credentials, a multipart body whose ``file`` part is NDJSON) and
answers as Kibana does.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli.app import cli
from pipeline.sinks.kibana import DEFAULT_OBJECTS, load_objects


class StandIn:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: dict[str, Any] | None = None


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart()
    parts = {}
    for part in message.iter_parts():
        parts[part.get_param("name", header="content-disposition")] = (part.get_filename(),
                                                                      part.get_payload(decode=True))
    return parts


@pytest.fixture
def kibana() -> Iterator[tuple[str, StandIn]]:
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            record = {"method": "POST", "path": self.path, "headers": self.headers, "body": body}
            state.requests.append(record)
            problems = []
            if self.headers.get("kbn-xsrf") is None:
                problems.append("missing kbn-xsrf")
            parts = _parse_multipart(self.headers["Content-Type"], body)
            filename, payload = parts.get("file", (None, b""))
            if not filename or not filename.endswith(".ndjson"):
                problems.append("no .ndjson file part")
            objects = [json.loads(line) for line in payload.decode().splitlines() if line.strip()]
            record["objects"] = objects
            status, answer = state.status, state.answer
            if problems:
                status, answer = 400, {"statusCode": 400, "error": "Bad Request", "message": "; ".join(problems)}
            elif answer is None:
                answer = {"success": True, "successCount": len(objects),
                          "successResults": [{"type": o["type"], "id": o["id"],
                                              "meta": {"title": o["attributes"].get("title")}} for o in objects]}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append({"method": "GET", "path": self.path})
            self.send_response(405)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    base = {"LOGWARDEN_KIBANA_API_KEY": "", "LOGWARDEN_KIBANA_USERNAME": "", "LOGWARDEN_KIBANA_PASSWORD": ""}
    return CliRunner().invoke(cli, ["kibana", "import", *args], env={**base, **(env or {})}, catch_exceptions=False)


def test_import_posts_every_object_with_overwrite_xsrf_and_the_api_key(kibana: tuple[str, StandIn]) -> None:
    url, state = kibana
    result = run("--url", url, env={"LOGWARDEN_KIBANA_API_KEY": "aWQ6a2V5"})
    assert result.exit_code == 0, result.output
    (request,) = state.requests
    assert request["method"] == "POST"
    assert request["path"] == "/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["kbn-xsrf"]
    assert request["headers"]["Authorization"] == "ApiKey aWQ6a2V5"
    assert request["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    shipped = load_objects(DEFAULT_OBJECTS)
    assert [(o["type"], o["id"]) for o in request["objects"]] == [(o["type"], o["id"]) for o in shipped]
    assert "Kibana imported 10 objects into space default" in result.output


def test_import_into_a_space_with_basic_auth_and_another_prefix(kibana: tuple[str, StandIn]) -> None:
    url, state = kibana
    result = run("--url", url + "/", "--space", "sre", "--index-prefix", "acme", "--min-score", "0.9",
                 env={"LOGWARDEN_KIBANA_USERNAME": "elastic", "LOGWARDEN_KIBANA_PASSWORD": "s3cret"})
    assert result.exit_code == 0, result.output
    (request,) = state.requests
    assert request["path"] == "/s/sre/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["Authorization"] == "Basic ZWxhc3RpYzpzM2NyZXQ="
    view = next(o for o in request["objects"] if o["id"] == "logwarden-anomalies")
    rule = next(o for o in request["objects"] if o["type"] == "alert")
    assert view["attributes"]["title"] == "acme-anomalies"
    assert rule["attributes"]["params"]["index"] == ["acme-anomalies"]
    assert '"gte": 0.9' in rule["attributes"]["params"]["esQuery"]


def test_without_credentials_no_authorization_header(kibana: tuple[str, StandIn]) -> None:
    url, state = kibana
    assert run("--url", url).exit_code == 0
    assert "Authorization" not in state.requests[0]["headers"]


def test_a_partial_import_is_one_error_line_naming_the_objects(kibana: tuple[str, StandIn]) -> None:
    url, state = kibana
    state.answer = {"success": False, "successCount": 9, "errors": [
        {"type": "alert", "id": "logwarden-anomaly-rule", "error": {"type": "unsupported_type"}}]}
    result = CliRunner().invoke(cli, ["kibana", "import", "--url", url])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "logwarden: error: Kibana imported 9 of 10 objects: alert/logwarden-anomaly-rule: unsupported_type"]


def test_http_errors_and_bad_input_are_one_line(kibana: tuple[str, StandIn], tmp_path: Path) -> None:
    url, state = kibana
    state.status, state.answer = 401, {"statusCode": 401, "message": "unauthorized"}
    result = CliRunner().invoke(cli, ["kibana", "import", "--url", url])
    assert result.exit_code == 2 and "HTTP 401" in result.output and "Traceback" not in result.output
    for args in (["--url", "ftp://x"], ["--url", url, "--space", "Not A Space"], ["--url", url, "--index-prefix", "A"],
                 ["--url", "http://127.0.0.1:9"]):
        result = CliRunner().invoke(cli, ["kibana", "import", *args])
        assert result.exit_code == 2, args
        assert result.output.startswith("logwarden: error: ") and len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"\xff\xfe not json\n")
    result = CliRunner().invoke(cli, ["kibana", "import", "--url", url, "--file", str(bad)])
    assert result.exit_code == 2 and "bad.ndjson" in result.output
