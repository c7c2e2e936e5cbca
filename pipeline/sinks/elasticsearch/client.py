"""One way to build an Elasticsearch client, shared by ``es-setup``, the worker and tests.

Secrets (API key, password) come from the caller, which reads them from flags or environment variables
(``LOGWARDEN_ES_API_KEY``, ``LOGWARDEN_ES_USERNAME``, ``LOGWARDEN_ES_PASSWORD``) so they need not appear in
a process listing or a config file; a URL with a password in it is refused for the same reason (it would be
printed wherever the URL is). An https URL's certificate is always verified (against ``ca_certs``, else the
system's CAs, host name included); ``insecure_skip_verify`` (``--es-insecure-skip-verify``) is the one,
loudly logged, way to turn that off. Connection errors and timeouts are retried by the client's transport
with jittered exponential backoff (``retry_backoff_base``/``retry_backoff_cap``); status retries (429/5xx)
are left to the bulk helper, which resends only the failed documents.

Server majors
-------------
The 9.x Python client sends ``compatible-with=9`` media types (``Accept`` and ``Content-Type``), which
every 8.x server refuses with "Invalid media-type value on headers". Many clusters still run 8.x, so
every client built here uses :class:`CompatTransport`, which rewrites those headers on *every* request
(bulk, sniffing and raw requests included) to the server's major: given explicitly (``--es-compat 8``,
``LOGWARDEN_ES_COMPAT``) or detected once with a plain-JSON ``GET /`` before the first request. A 9.x
server needs no rewrite; a 10.x one is sent ``compatible-with=9``, which it accepts. The 8.x request and
response bodies of every API Logwarden uses (index templates, aliases, bulk, search, count) are the same.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout, HttpHeaders, TlsError, Transport, TransportError
from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, Elasticsearch
from elasticsearch import __versionstr__ as _client_version

from pipeline.config import DEFAULT_ES_URL
from pipeline.errors import LogwardenError, certificate_hint
from pipeline.sinks.bulk import api_reason
from pipeline.sinks.connection import auth_failed, check_hosts, warn_insecure

CLIENT_MAJOR = int(_client_version.partition(".")[0])
SUPPORTED_MAJORS = (8, 9)
ES_COMPAT_CHOICES = ("auto", *(str(m) for m in SUPPORTED_MAJORS))
_COMPAT_RE = re.compile(r"compatible-with=\d+")
class UnsupportedServer(LogwardenError):
    """The server is not an Elasticsearch major this client can talk to (or its major is unknown)."""


def parse_compat(value: str | int | None) -> int | None:
    """``"auto"``/None -> None (detect); ``"8"``/``9`` -> that major; anything else is a user error."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    text = str(value).strip()
    if text.isdigit() and int(text) in SUPPORTED_MAJORS:
        return int(text)
    raise LogwardenError(f"--es-compat must be one of {', '.join(ES_COMPAT_CHOICES)}, got {value!r}")


def compat_for(version: Mapping[str, Any]) -> int:
    """The ``compatible-with`` major to send to a server whose ``GET /`` ``version`` object is given."""
    number = str(version.get("number", ""))
    if version.get("distribution") == "opensearch":
        raise UnsupportedServer(f"the server is OpenSearch {number}, not Elasticsearch: use --sink opensearch")
    head = number.partition(".")[0]
    if not head.isdigit():
        raise UnsupportedServer(f"cannot read the Elasticsearch version {number!r}: give --es-compat 8 or 9")
    major = int(head)
    if major < SUPPORTED_MAJORS[0]:
        raise UnsupportedServer(f"Elasticsearch {number} is not supported (8.x and 9.x are)")
    return min(major, CLIENT_MAJOR)


# Where the server's version is read: the root endpoint (every production node), else the local node's
# info (nodes started without the rest-root module, such as the integ-test distributions, have no GET /).
_VERSION_PROBES = ("/", "/_nodes/_local?filter_path=nodes.*.version")


def _version_in(body: Any) -> dict[str, Any] | None:
    """The ``version`` object of a ``GET /`` body, or ``{"number": ...}`` from a nodes-info body."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("version"), dict):
        return body["version"]
    nodes = body.get("nodes")
    if isinstance(nodes, dict):
        for node in nodes.values():
            if isinstance(node, dict) and isinstance(node.get("version"), str):
                return {"number": node["version"]}
    return None


class CompatTransport(Transport):
    """A transport whose requests carry media types for the server's major, not the client's.

    ``compat_major`` is set by :func:`make_es_client` (an explicit ``--es-compat``) or, when None, found
    by :meth:`detect` before the first request. Clients made with ``client.options(...)`` share the
    transport, so they share what was detected.
    """

    compat_major: int | None = None
    detected_version: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._detect_lock = threading.Lock()

    def detect(self, headers: Mapping[str, str] | None = None, **kwargs: Any) -> int:
        """The major to send, asking the server with a plain-JSON ``GET /`` the first time.

        ``headers`` are the triggering request's (they carry its authentication). A connection error
        propagates and is not remembered, so the next request asks again.
        """
        with self._detect_lock:
            if self.compat_major is not None:
                return self.compat_major
            probe = HttpHeaders({k: v for k, v in (headers or {}).items()
                                 if k.lower() not in ("accept", "content-type")})
            probe["accept"] = "application/json"
            version: Any = None
            for target in _VERSION_PROBES:
                meta, body = super().perform_request("GET", target, headers=probe, **kwargs)
                if meta.status in (404, 405):  # no root endpoint (a node without the rest-root module)
                    continue
                if meta.status == 401:
                    raise UnsupportedServer(auth_failed(401, f"GET {target}"))
                if meta.status == 403:
                    raise UnsupportedServer(
                        f"cannot detect the Elasticsearch version: GET {target} answered 403; "
                        "give --es-compat 8 or 9 (or grant the monitor cluster privilege)")
                version = _version_in(body) if 200 <= meta.status < 300 else None
                if version is None:
                    raise UnsupportedServer(f"cannot detect the Elasticsearch version: GET {target} answered "
                                            f"{meta.status} without one; give --es-compat 8 or 9")
                break
            if version is None:
                raise UnsupportedServer("cannot detect the Elasticsearch version (no endpoint told it); "
                                        "give --es-compat 8 or 9")
            major = compat_for(version)
            self.detected_version = str(version.get("number"))
            self.compat_major = major
            return major

    def perform_request(self, method: str, target: str, *, headers: Any = DEFAULT, **kwargs: Any) -> Any:
        request_headers = None if headers is DEFAULT else headers
        major = self.compat_major
        if major is None:
            passed = {k: kwargs[k] for k in ("request_timeout", "max_retries", "retry_on_timeout") if k in kwargs}
            major = self.detect(request_headers, **passed)
        if major != CLIENT_MAJOR and request_headers:
            request_headers = HttpHeaders(request_headers)
            for name in ("accept", "content-type"):
                value = request_headers.get(name)
                if value:
                    request_headers[name] = _COMPAT_RE.sub(f"compatible-with={major}", value)
        return super().perform_request(
            method, target, headers=DEFAULT if request_headers is None else request_headers, **kwargs
        )


def server_major(client: Elasticsearch) -> int:
    """The major the client's requests are pinned to (detecting it now if it was not given)."""
    transport = client.transport
    if not isinstance(transport, CompatTransport):
        return CLIENT_MAJOR
    if transport.compat_major is not None:
        return transport.compat_major
    # The client's own headers carry its credentials (basic auth or API key): a secured cluster answers
    # GET / only with them.
    return transport.detect(getattr(client, "_headers", None))


def make_es_client(
    url: str = DEFAULT_ES_URL,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    *,
    timeout: float = 30.0,
    ca_certs: str | None = None,
    max_retries: int = 3,
    retry_backoff: float = 0.5,
    retry_backoff_cap: float = 10.0,
    compat: str | int | None = "auto",
    insecure_skip_verify: bool = False,
) -> Elasticsearch:
    """A client for ``url`` (comma-separated for several nodes); bad settings raise LogwardenError.

    ``compat`` is the server major the media types are pinned to (``"auto"``: detected by the first
    request). Building the client does not contact the server; the first request does.
    """
    compat_major = parse_compat(compat)
    hosts = check_hosts(url)
    if bool(username) != bool(password):
        raise LogwardenError("Elasticsearch username and password go together (--username/--password)")
    if api_key and username:
        raise LogwardenError("give either an Elasticsearch API key or a username and password, not both")
    if timeout <= 0:
        raise LogwardenError(f"Elasticsearch timeout must be positive, got {timeout}")
    kwargs: dict[str, Any] = {
        "request_timeout": timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "retry_backoff_base": retry_backoff,
        "retry_backoff_cap": retry_backoff_cap,
        "transport_class": CompatTransport,
    }
    if api_key:
        kwargs["api_key"] = api_key
    if username and password:
        kwargs["basic_auth"] = (username, password)
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    if insecure_skip_verify:
        warn_insecure("Elasticsearch", url)
        kwargs["verify_certs"] = False
        kwargs["ssl_show_warn"] = False  # one warning above, not one per request
    else:
        kwargs["verify_certs"] = True
    try:
        client = Elasticsearch(hosts, **kwargs)
    except ValueError as exc:
        raise LogwardenError(f"Elasticsearch URL {url!r}: {exc}") from None
    if compat_major is not None:
        client.transport.compat_major = compat_major  # type: ignore[attr-defined]
    return client


def describe_error(exc: Exception, url: str | None = None) -> str:
    """One line for a client error: what failed and, for API errors, Elasticsearch's own reason."""
    where = f" at {url}" if url else ""
    if isinstance(exc, TlsError):
        reason = tls_reason(exc)
        return f"TLS to Elasticsearch{where} failed ({reason}){certificate_hint(reason, TLS_CA_SETTING)}"
    if isinstance(exc, ConnectionTimeout):
        return f"Elasticsearch{where} did not answer in time ({exc.message})"
    if isinstance(exc, EsConnectionError):
        return f"cannot reach Elasticsearch{where} ({exc.message})"
    if isinstance(exc, ApiError):
        if exc.status_code in (401, 403):
            return auth_failed(exc.status_code, api_reason(exc.body, exc.message), f"Elasticsearch{where}")
        return f"Elasticsearch{where} refused the request ({exc.status_code} {api_reason(exc.body, exc.message)})"
    if isinstance(exc, TransportError):
        return f"Elasticsearch{where} transport error ({exc.message})"
    return f"Elasticsearch{where}: {exc}"


TLS_CA_SETTING = "the CA that signed the server's certificate (--ca-certs / LOGWARDEN_ES_CA_CERTS)"


def tls_reason(exc: Exception) -> str:
    """The certificate problem inside a TLS error (``certificate verify failed: ...``), else its message."""
    text = str(getattr(exc, "message", exc))
    match = re.search(r"certificate verify failed: ([^(\]')\"]+)", text)
    if match:
        return "certificate verify failed: " + match.group(1).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def is_certificate_error(exc: Exception) -> bool:
    """True for a TLS error caused by the server's certificate (untrusted, expired, wrong host name)."""
    return isinstance(exc, TlsError) and "certificate verify failed" in str(getattr(exc, "message", exc)).lower()
