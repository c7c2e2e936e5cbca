"""Media-type compatibility: every request the client sends carries the server's major.

A small HTTP server on loopback plays an Elasticsearch node of a given version and records the headers it
receives, the way a real 8.x node checks them (it refuses ``compatible-with=9``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from elasticsearch import BadRequestError, helpers

from pipeline.errors import LogwardenError
from pipeline.sinks.elasticsearch.client import (
    CLIENT_MAJOR,
    UnsupportedServer,
    compat_for,
    describe_error,
    make_es_client,
    parse_compat,
    server_major,
)

COMPAT = re.compile(r"compatible-with=(\d+)")


class FakeNode(ThreadingHTTPServer):
    """Answers like an Elasticsearch ``version`` node; ``root`` False plays a node without GET /."""

    def __init__(self, version: str, root: bool = True, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version, self.root, self.status = version, root, status
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeNode

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict[str, Any], compat: str | None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        mime = "application/json" if compat is None else f"application/vnd.elasticsearch+json;compatible-with={compat}"
        self.send_header("Content-Type", mime)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append((method, self.path, headers))
        major = self.server.version.split(".")[0]
        asked = {COMPAT.search(headers.get(h, "")) for h in ("accept", "content-type")}
        asked_versions = {m.group(1) for m in asked if m}
        if asked_versions - {major, str(int(major) - 1)}:  # what a real node accepts: its major and the one before
            self._reply(400, {"error": {"type": "media_type_header_exception",
                                        "reason": "Invalid media-type value on headers"}, "status": 400}, None)
            return
        compat = next(iter(asked_versions), None)
        if self.server.status != 200:
            self._reply(self.server.status, {"error": "denied", "status": self.server.status}, None)
        elif self.path == "/" and method == "GET":
            if self.server.root:
                self._reply(200, {"version": {"number": self.server.version}}, compat)
            else:
                self._reply(405, {"error": "Incorrect HTTP method for uri [/]", "status": 405}, compat)
        elif self.path.startswith("/_nodes/_local"):
            self._reply(200, {"nodes": {"n1": {"version": self.server.version}}}, compat)
        elif self.path.startswith("/_bulk"):
            n = sum(1 for line in body.splitlines() if b'"index"' in line)
            items = [{"index": {"_index": "i", "_id": str(i), "status": 201}} for i in range(n)]
            self._reply(200, {"took": 1, "errors": False, "items": items}, compat)
        else:
            self._reply(200, {"count": 0}, compat)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_HEAD(self) -> None:
        self.server.seen.append(("HEAD", self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(200)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def node(request: pytest.FixtureRequest) -> Iterator[FakeNode]:
    server = FakeNode(*request.param)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def versions_sent(node: FakeNode, path_prefix: str) -> set[str]:
    found = set()
    for _, path, headers in node.seen:
        if path.startswith(path_prefix):
            for h in ("accept", "content-type"):
                m = COMPAT.search(headers.get(h, ""))
                if m:
                    found.add(m.group(1))
    return found


@pytest.mark.parametrize("node", [("8.19.21",), ("8.19.21", False)], indirect=True, ids=["root", "no-root"])
def test_detects_an_8x_node_and_pins_every_request_to_8(node: FakeNode) -> None:
    client = make_es_client(node.url)
    ok, errors = helpers.bulk(client, ({"_index": "i", "_id": str(i), "n": i} for i in range(5)))
    assert (ok, errors) == (5, [])
    client.count(index="i")
    client.options(ignore_status=404).indices.exists(index="i")  # a clone shares what was detected
    assert server_major(client) == 8
    assert versions_sent(node, "/_bulk") == {"8"}
    assert versions_sent(node, "/i") == {"8"}
    bulk_type = next(h["content-type"] for _, p, h in node.seen if p.startswith("/_bulk"))
    assert bulk_type.startswith("application/vnd.elasticsearch+x-ndjson")
    probes = [p for _, p, _ in node.seen if p == "/" or p.startswith("/_nodes")]
    assert len(probes) == (1 if node.root else 2), "the version is asked once, then remembered"


@pytest.mark.parametrize("node", [("9.5.2",)], indirect=True)
def test_a_9x_node_gets_the_clients_own_media_types(node: FakeNode) -> None:
    client = make_es_client(node.url)
    client.count(index="i")
    assert server_major(client) == CLIENT_MAJOR == 9
    assert versions_sent(node, "/i") == {"9"}


@pytest.mark.parametrize("node", [("8.19.21",)], indirect=True)
def test_explicit_compat_skips_detection(node: FakeNode) -> None:
    client = make_es_client(node.url, compat="8")
    client.count(index="i")
    assert [p for _, p, _ in node.seen] == ["/i/_count"]
    assert versions_sent(node, "/i") == {"8"}


@pytest.mark.parametrize("node", [("8.19.21",)], indirect=True)
def test_a_wrong_explicit_compat_is_what_the_server_refuses(node: FakeNode) -> None:
    client = make_es_client(node.url, compat=9)
    with pytest.raises(BadRequestError, match="media_type_header_exception"):
        client.count(index="i")


@pytest.mark.parametrize("node", [("8.19.21", True, 403)], indirect=True)
def test_detection_without_privilege_says_what_to_do(node: FakeNode) -> None:
    client = make_es_client(node.url, api_key="abc")
    with pytest.raises(UnsupportedServer, match="answered 403.*--es-compat 8 or 9"):
        client.count(index="i")
    # The probe carried the request's credentials.
    assert node.seen[0][2].get("authorization") == "ApiKey abc"


@pytest.mark.parametrize("node", [("9.5.2",)], indirect=True)
def test_server_major_asks_with_the_clients_credentials(node: FakeNode) -> None:
    """es-setup asks for the major before any other request: a secured cluster answers only with credentials."""
    client = make_es_client(node.url, username="writer", password="pw")
    assert server_major(client) == 9
    assert node.seen[0][1] == "/"
    assert node.seen[0][2].get("authorization") == "Basic d3JpdGVyOnB3"  # writer:pw


@pytest.mark.parametrize("node", [("8.19.21", True, 401)], indirect=True)
def test_detection_with_wrong_credentials_says_so(node: FakeNode) -> None:
    client = make_es_client(node.url, username="writer", password="wrong")
    with pytest.raises(UnsupportedServer, match=r"refused the credentials \(401 GET /\): check LOGWARDEN_ES_USERNAME"):
        client.count(index="i")


@pytest.mark.parametrize("node", [("7.17.9",)], indirect=True)
def test_7x_is_refused_with_the_supported_range(node: FakeNode) -> None:
    with pytest.raises(UnsupportedServer, match=r"Elasticsearch 7\.17\.9 is not supported \(8\.x and 9\.x are\)"):
        make_es_client(node.url).count(index="i")


def test_compat_for_versions() -> None:
    assert compat_for({"number": "8.19.21"}) == 8
    assert compat_for({"number": "9.5.2"}) == 9
    assert compat_for({"number": "10.0.0"}) == 9  # a newer server accepts the previous major
    with pytest.raises(UnsupportedServer, match="OpenSearch 2.19.6, not Elasticsearch: use --sink opensearch"):
        compat_for({"number": "2.19.6", "distribution": "opensearch"})
    with pytest.raises(UnsupportedServer, match="cannot read"):
        compat_for({"number": "x"})


def test_parse_compat() -> None:
    assert parse_compat(None) is None and parse_compat("auto") is None and parse_compat(" AUTO ") is None
    assert parse_compat("8") == 8 and parse_compat(9) == 9
    for bad in ("7", "10", "eight"):
        with pytest.raises(LogwardenError, match="--es-compat must be one of auto, 8, 9"):
            parse_compat(bad)
    with pytest.raises(LogwardenError, match="--es-compat"):
        make_es_client("http://127.0.0.1:9200", compat="7")


def test_unreachable_server_is_not_remembered() -> None:
    client = make_es_client("http://127.0.0.1:9", timeout=1, max_retries=0)
    from elastic_transport import ConnectionError as EsConnectionError

    with pytest.raises(EsConnectionError):
        client.count(index="i")
    assert client.transport.compat_major is None  # type: ignore[attr-defined]


def test_cli_constants_match_the_client() -> None:
    """pipeline.cli.es repeats two constants so that building the CLI does not import the client."""
    import pipeline.cli.es as cli_es
    from pipeline.sinks.elasticsearch import client

    assert cli_es.DEFAULT_ES_URL == client.DEFAULT_ES_URL
    assert cli_es.ES_COMPAT_CHOICES == client.ES_COMPAT_CHOICES


@pytest.mark.parametrize(("reason", "expected", "absent"), [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain",
     "LOGWARDEN_ES_CA_CERTS", "connect with a name"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, certificate is not valid "
     "for '127.0.0.1'. (_ssl.c:1006)", "connect with a name the certificate lists (hostname checking is on)",
     "LOGWARDEN_ES_CA_CERTS"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: CA cert does not include key usage extension",
     "re-issue the CA with keyUsage", "LOGWARDEN_ES_CA_CERTS"),
])
def test_a_tls_failure_to_elasticsearch_says_what_to_change(reason: str, expected: str, absent: str) -> None:
    """Like Kafka's (tests/pipeline/sources/test_kafka_security.py): a host name the certificate does not list
    is not fixed by another CA file, and a certificate Python 3.13 finds too loose is re-issued."""
    from elastic_transport import TlsError

    line = describe_error(TlsError(reason), "https://127.0.0.1:9210")
    assert line.startswith("TLS to Elasticsearch at https://127.0.0.1:9210 failed (certificate verify failed")
    assert expected in line and absent not in line and "\n" not in line
