"""One small HTTP server per worker: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

* ``/healthz``: 200 while the consume loop makes progress (it completed a poll within ``--liveness-timeout``),
  else 503 with the reason (liveness: restart the pod when the loop is stuck, not only when the process died).
* ``/readyz``: 200 when the worker owns partitions and Elasticsearch takes documents, else 503 with the
  reason (readiness: an SRE sees "sink down" or "no partitions assigned" without reading logs).
* anything else: the Prometheus exposition of the worker's registry.

Served from a daemon thread (``ThreadingMixIn``), so a slow scrape never blocks the consume loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

Readiness = Callable[[], tuple[bool, str]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return


def _always_alive() -> tuple[bool, str]:
    return True, "ok"


def make_app(registry: CollectorRegistry, ready: Readiness,
             alive: Readiness = _always_alive) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            ok, reason = alive()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else reason.encode() + b"\n"]
        if path == "/readyz":
            ok, reason = ready()
            body = json.dumps({"ready": ok, "reason": reason}).encode() + b"\n"
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [body]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


class HealthServer:
    """Serves the app on ``host:port`` (port 0 picks a free one; see :attr:`port`) until :meth:`close`."""

    def __init__(self, registry: CollectorRegistry, ready: Readiness, port: int, host: str = "0.0.0.0",
                 alive: Readiness = _always_alive) -> None:
        self._server = make_server(host, port, make_app(registry, ready, alive), server_class=_Server,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="logwarden-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
