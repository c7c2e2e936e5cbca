"""One way to build an Elasticsearch client, shared by ``es-setup``, the worker and tests.

Secrets (API key, password) come from the caller, which reads them from flags or environment variables
(``LOGWARDEN_ES_API_KEY``, ``LOGWARDEN_ES_USERNAME``, ``LOGWARDEN_ES_PASSWORD``) so they need not appear in
a process listing or a config file. Connection errors and timeouts are retried by the client's transport
with jittered exponential backoff (``retry_backoff_base``/``retry_backoff_cap``); status retries (429/5xx)
are left to the bulk helper, which resends only the failed documents.
"""

from __future__ import annotations

from typing import Any

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch

from pipeline.config import DEFAULT_ES_URL
from pipeline.errors import LogwardenError


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
) -> Elasticsearch:
    """A client for ``url`` (comma-separated for several nodes); bad settings raise LogwardenError.

    Building the client does not contact the server; the first request does.
    """
    hosts = [part.strip() for part in url.split(",") if part.strip()]
    if not hosts:
        raise LogwardenError("no Elasticsearch URL given (--es-url or LOGWARDEN_ES_URL)")
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
    }
    if api_key:
        kwargs["api_key"] = api_key
    if username and password:
        kwargs["basic_auth"] = (username, password)
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    try:
        return Elasticsearch(hosts, **kwargs)
    except ValueError as exc:
        raise LogwardenError(f"Elasticsearch URL {url!r}: {exc}") from None


def describe_error(exc: Exception, url: str | None = None) -> str:
    """One line for a client error: what failed and, for API errors, Elasticsearch's own reason."""
    where = f" at {url}" if url else ""
    if isinstance(exc, ConnectionTimeout):
        return f"Elasticsearch{where} did not answer in time ({exc.message})"
    if isinstance(exc, EsConnectionError):
        return f"cannot reach Elasticsearch{where} ({exc.message})"
    if isinstance(exc, ApiError):
        reason = exc.message
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        if isinstance(error, dict) and error.get("reason"):
            reason = f"{error.get('type', exc.message)}: {error['reason']}"
        elif isinstance(error, str):
            reason = error
        return f"Elasticsearch{where} refused the request ({exc.status_code} {reason})"
    if isinstance(exc, TransportError):
        return f"Elasticsearch{where} transport error ({exc.message})"
    return f"Elasticsearch{where}: {exc}"
