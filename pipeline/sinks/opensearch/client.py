"""One way to build an OpenSearch client (``es-setup --sink opensearch``, the worker, tests).

opensearch-py is an optional extra: importing this module without it raises a
:class:`~pipeline.errors.LogwardenError` with the install command, which the CLI prints as one line
(``logwarden: error: OpenSearch support needs opensearch-py: pip install 'logwarden[opensearch]'``).

The connection settings are the Elasticsearch ones (``--es-url``, ``--es-timeout``, the
``LOGWARDEN_ES_API_KEY``/``_USERNAME``/``_PASSWORD``/``_CA_CERTS`` secrets): one set of flags for "the search
cluster", whichever product it is. OpenSearch's security plugin authenticates users (basic auth), not
Elasticsearch API keys, so an API key is refused with a one-line error rather than sent and rejected later.

Retries: connection errors and timeouts are retried by opensearch-py's transport (``max_retries``, without
backoff); status retries are left to the bulk helper, which retries only 429 items (5xx items make the sink
raise :class:`~pipeline.sinks.bulk.SinkUnavailable`; the worker backs off and flushes again).
"""

from __future__ import annotations

from typing import Any

from pipeline.config import DEFAULT_ES_URL
from pipeline.errors import LogwardenError
from pipeline.sinks.bulk import api_reason
from pipeline.sinks.connection import check_hosts, warn_insecure

INSTALL_HINT = "OpenSearch support needs opensearch-py: pip install 'logwarden[opensearch]'"

try:
    from opensearchpy import ConnectionError as OsConnectionError
    from opensearchpy import ConnectionTimeout, OpenSearch, TransportError, helpers
except ImportError:  # pragma: no cover - exercised by a test that hides the module
    raise LogwardenError(INSTALL_HINT) from None

__all__ = ["ConnectionTimeout", "OpenSearch", "OsConnectionError", "TransportError", "describe_error",
           "helpers", "make_os_client", "server_version"]


def make_os_client(
    url: str = DEFAULT_ES_URL,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    *,
    timeout: float = 30.0,
    ca_certs: str | None = None,
    max_retries: int = 3,
    insecure_skip_verify: bool = False,
) -> OpenSearch:
    """A client for ``url`` (comma-separated for several nodes); bad settings raise LogwardenError.

    Building the client does not contact the server; the first request does. Certificates are verified
    unless ``insecure_skip_verify`` (logged as a warning).
    """
    hosts = check_hosts(url, "OpenSearch")
    if bool(username) != bool(password):
        raise LogwardenError("OpenSearch username and password go together (LOGWARDEN_ES_USERNAME/_PASSWORD)")
    if api_key:
        raise LogwardenError("OpenSearch takes a username and password (LOGWARDEN_ES_USERNAME/_PASSWORD), "
                             "not an API key: unset LOGWARDEN_ES_API_KEY / --api-key")
    if timeout <= 0:
        raise LogwardenError(f"OpenSearch timeout must be positive, got {timeout}")
    for host in hosts:
        if "://" in host and host.split("://", 1)[0] not in ("http", "https"):
            raise LogwardenError(f"OpenSearch URL {host!r}: the scheme must be http or https")
    kwargs: dict[str, Any] = {
        "timeout": timeout,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "retry_on_status": (),
    }
    if username and password:
        kwargs["http_auth"] = (username, password)
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    kwargs["verify_certs"] = not insecure_skip_verify
    if insecure_skip_verify:
        warn_insecure("OpenSearch", url)
        kwargs["ssl_show_warn"] = False
    try:
        return OpenSearch(hosts, **kwargs)
    except (ValueError, TypeError) as exc:
        raise LogwardenError(f"OpenSearch URL {url!r}: {exc}") from None


def server_version(client: OpenSearch) -> str:
    """The server's version from ``GET /``; a LogwardenError when it is not OpenSearch.

    Every OpenSearch node answers ``GET /``; a server without that endpoint (Elasticsearch's bare
    integ-test node) is not one.
    """
    try:
        info = client.info()
    except TransportError as exc:
        if exc.status_code in (404, 405):
            raise LogwardenError(f"the server does not answer GET / as OpenSearch does (HTTP {exc.status_code}): "
                                 "it is not OpenSearch; for Elasticsearch use --sink elasticsearch") from None
        raise
    version = info.get("version", {}) if isinstance(info, dict) else {}
    number = str(version.get("number", "?"))
    if version.get("distribution") != "opensearch":
        raise LogwardenError(f"the server is Elasticsearch {number}, not OpenSearch: use --sink elasticsearch")
    return number


def describe_error(exc: Exception, url: str | None = None) -> str:
    """One line for a client error: what failed and, for API errors, OpenSearch's own reason."""
    where = f" at {url}" if url else ""
    if isinstance(exc, ConnectionTimeout):
        return f"OpenSearch{where} did not answer in time ({exc.error})"
    if isinstance(exc, OsConnectionError):
        return f"cannot reach OpenSearch{where} ({exc.error})"
    if isinstance(exc, TransportError):
        return f"OpenSearch{where} refused the request ({exc.status_code} {api_reason(exc.info, str(exc.error))})"
    return f"OpenSearch{where}: {exc}"
