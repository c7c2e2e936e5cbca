"""What the Elasticsearch and OpenSearch clients share about connecting: URLs, credentials, TLS warnings.

Both sinks take the same ``--es-*`` options and ``LOGWARDEN_ES_*`` secrets, so they refuse the same mistakes
with the same words: a password inside the URL (it would be printed wherever the URL is: logs, errors,
``ps``), and they log the same loud warning when certificate checks are turned off.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from pipeline.errors import LogwardenError

log = logging.getLogger("logwarden.security")
INSECURE_WARNING = ("TLS certificate verification is OFF for %s at %s (--es-insecure-skip-verify): any server, "
                    "or anyone on the network path, can read the credentials and the documents sent")


def check_hosts(url: str, product: str = "Elasticsearch") -> list[str]:
    """The hosts of a comma-separated ``url``; a user name or password inside a URL is refused."""
    hosts = [part.strip() for part in url.split(",") if part.strip()]
    if not hosts:
        raise LogwardenError(f"no {product} URL given (--es-url or LOGWARDEN_ES_URL)")
    for host in hosts:
        try:
            userinfo = urlsplit(host if "//" in host else f"//{host}").password
        except ValueError:
            continue  # the client names what is wrong with it
        if userinfo is not None:
            raise LogwardenError(f"the {product} URL must not hold a password (it would show in logs and process "
                                 "listings): give LOGWARDEN_ES_USERNAME / LOGWARDEN_ES_PASSWORD or "
                                 "LOGWARDEN_ES_API_KEY")
    return hosts


def auth_failed(status: int, reason: str, product: str = "Elasticsearch") -> str:
    """The one line for a 401 (credentials) or 403 (privileges) answer."""
    if status == 401:
        return (f"{product} refused the credentials (401 {reason}): check LOGWARDEN_ES_USERNAME / "
                "LOGWARDEN_ES_PASSWORD or LOGWARDEN_ES_API_KEY")
    return (f"{product} denied the request (403 {reason}): the worker's role lacks a privilege "
            "(docs/security.md lists the ones it needs)")


def warn_insecure(product: str, url: str) -> None:
    """The one warning for ``--es-insecure-skip-verify`` (the URL never holds a secret: check_hosts)."""
    log.warning(INSECURE_WARNING, product, url)
