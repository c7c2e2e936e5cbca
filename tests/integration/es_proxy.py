"""A small HTTP proxy in front of the real Elasticsearch that rewrites per-item bulk results, or delays bulks.

Everything is forwarded unchanged except bulk requests (``PUT``/``POST .../_bulk``): for each item,
:attr:`BulkProxy.plan` (``_id`` and
how many times this ``_id`` was sent before -> ``None`` to forward, or a status) decides. An item answered
429/5xx/400 is *not* forwarded (Elasticsearch never sees it) and gets an error item like Elasticsearch's; a
409 item is forwarded (so it is indexed) and answered with a version conflict (another write of the same
``_id`` got there first). ``delay`` holds every bulk request that long first (a slow or stalled cluster).
Only items of anomaly indices are planned; the template catalog's bulks pass through. Every bulk item is
recorded with its time and the status it got (:attr:`BulkProxy.attempts`).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

ERRORS = {
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation (proxy)"),
    500: ("internal_server_error", "shard failure (proxy)"),
    502: ("bad_gateway", "upstream (proxy)"),
    503: ("unavailable_shards_exception", "primary shard is not active (proxy)"),
    400: ("document_parsing_exception", "[1:2] failed to parse field [anomaly.score] of type [float] (proxy)"),
    409: ("version_conflict_engine_exception", "version conflict, document already exists (proxy)"),
}
Plan = Callable[[str, int], int | None]


class BulkProxy:
    def __init__(self, upstream: str, plan: Plan | None = None, delay: float = 0.0,
                 only: str = "-anomalies") -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 9200
        self.plan: Plan = plan or (lambda _id, _n: None)
        self.delay = delay
        self.only = only  # items of other indices (the template catalog) are always forwarded
        self.attempts: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.bulks = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if self.command in ("POST", "PUT") and path.rstrip("/").endswith("/_bulk"):
                    status, headers, data = proxy._bulk(self.command, self.path, dict(self.headers), body)
                else:
                    status, headers, data = proxy._forward(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length")}
            conn.request(method, path, body=body or None, headers=keep)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _bulk(self, method: str, path: str, headers: dict[str, str], body: bytes
              ) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.delay:
            time.sleep(self.delay)
        lines = [line for line in body.split(b"\n") if line.strip()]
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        fates: list[tuple[str, str, int | None]] = []
        with self.lock:
            self.bulks += 1
            for action, _ in pairs:
                op, meta = next(iter(json.loads(action).items()))
                doc_id = str(meta.get("_id"))
                planned = self.only in str(meta.get("_index", ""))
                fates.append((op, doc_id, self.plan(doc_id, len(self.attempts[doc_id])) if planned else None))
        forward = [pair for pair, (_, _, fate) in zip(pairs, fates, strict=True) if fate in (None, 409)]
        upstream: list[dict[str, Any]] = []
        # What the client checks on every answer: the product header and a media type it asked for.
        status, response_headers = 200, [("Content-Type", headers.get("Accept", "application/json")),
                                         ("X-Elastic-Product", "Elasticsearch")]
        if forward:
            status, response_headers, data = self._forward(method, path, headers,
                                                           b"\n".join(a + b"\n" + s for a, s in forward) + b"\n")
            if status != 200:
                return status, response_headers, data
            upstream = list(json.loads(data)["items"])
        items = []
        now = time.monotonic()
        for op, doc_id, fate in fates:
            item = upstream.pop(0) if fate in (None, 409) else {op: {"_id": doc_id, "_index": "?"}}
            if fate is not None:
                kind, reason = ERRORS[fate]
                body_of = item[next(iter(item))]
                body_of.update({"status": fate, "error": {"type": kind, "reason": reason}})
                body_of.pop("result", None)
            got = int(item[next(iter(item))]["status"])
            with self.lock:
                self.attempts[doc_id].append((now, got))
            items.append(item)
        errors = any(int(i[next(iter(i))]["status"]) >= 300 for i in items)
        reply = json.dumps({"took": 1, "errors": errors, "items": items}).encode()
        headers_out = [(k, v) for k, v in response_headers if k.lower().startswith("content-type")
                       or k.lower().startswith("x-elastic")]
        return 200, headers_out, reply


@contextmanager
def bulk_proxy(upstream: str, plan: Plan | None = None, delay: float = 0.0) -> Iterator[BulkProxy]:
    """A running :class:`BulkProxy` for the body of the ``with``; ``plan`` applies to anomaly documents only."""
    proxy = BulkProxy(upstream, plan, delay)
    proxy._thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
