"""Elasticsearch sink for anomaly documents: :class:`~pipeline.sinks.bulk.BulkSink` over elasticsearch-py.

The buffer, the delivery contract and how per-item results are sorted into indexed / rejected / retry
later are shared with OpenSearch and documented in :mod:`pipeline.sinks.bulk`. What is Elasticsearch's:

* 429 and 5xx items are retried by ``elasticsearch.helpers.streaming_bulk``
  (``max_retries``/``initial_backoff``/``max_backoff``, only the failed documents are resent).
* connection refused, timeouts: retried by the client transport with jittered exponential backoff
  (same budget); then :class:`SinkUnavailable`, documents kept.

A flush stops at the first chunk that stays unavailable, so one flush blocks for at most about one
chunk's retry budget: ``(max_retries + 1) * request_timeout`` plus the backoff sleeps (at most
``max_backoff`` each). Keep that below Kafka's ``max.poll.interval.ms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, helpers

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError
from pipeline.sinks.bulk import (
    CONFIG_STATUS,
    RETRYABLE_STATUS,
    BulkSink,
    FlushResult,
    SinkBufferFull,
    SinkError,
    SinkUnavailable,
    item_reason,
)
from pipeline.sinks.elasticsearch.catalog import catalog_index, setup_catalog
from pipeline.sinks.elasticsearch.client import describe_error, is_certificate_error
from pipeline.sinks.elasticsearch.layout import missing_privileges, setup_indices

# Re-exported: the worker and the tests import the sink's errors from here.
__all__ = ["CONFIG_STATUS", "RETRYABLE_STATUS", "ElasticsearchSink", "FlushResult", "SinkBufferFull", "SinkError",
           "SinkUnavailable", "item_reason"]


class ElasticsearchSink(BulkSink):
    """Buffers anomaly documents and bulk-indexes them into Elasticsearch on ``flush()``."""

    server = "Elasticsearch"
    transport_errors = (TransportError,)

    def __init__(
        self,
        client: Elasticsearch,
        prefix: str = DEFAULT_INDEX_PREFIX,
        *,
        request_timeout: float | None = None,
        owns_client: bool = False,
        **options: Any,
    ) -> None:
        """``options``: the buffer and retry settings of :class:`~pipeline.sinks.bulk.BulkSink`."""
        super().__init__(prefix, **options)
        self._owned = client if owns_client else None
        # Connection errors/timeouts: the transport retries with backoff. Status codes: not the transport
        # (it would retry at once, without backoff, and resend the whole request) but the bulk helper.
        transport: dict[str, Any] = {
            "max_retries": self.max_retries,
            "retry_on_timeout": True,
            "retry_on_status": (),
            "retry_backoff_base": self.initial_backoff,
            "retry_backoff_cap": self.max_backoff,
        }
        if request_timeout is not None:
            transport["request_timeout"] = request_timeout
        self.client = client.options(**transport)

    def _stream(self, actions: list[dict[str, Any]], timeout: float | None) -> Iterable[tuple[bool, Any]]:
        client = self.client if timeout is None else self.client.options(request_timeout=timeout, max_retries=0)
        return helpers.streaming_bulk(
            client,
            actions,
            chunk_size=self.chunk_size,
            max_chunk_bytes=self.max_chunk_bytes,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=self.max_retries if timeout is None else 0,
            initial_backoff=self.initial_backoff,
            max_backoff=self.max_backoff,
            retry_on_status=RETRYABLE_STATUS,
            yield_ok=True,
        )

    def _describe(self, exc: Exception) -> str:
        return describe_error(exc)

    def setup_layout(self, *, catalog: bool = False) -> dict[str, str]:
        """Index template, alias/data stream (and with ``catalog`` the ``<prefix>-templates`` index).

        A configuration problem (400/401/403/404, a certificate that does not verify) is a
        :class:`LogwardenError`; anything else is
        :class:`SinkUnavailable` (the caller waits and retries).
        """
        try:
            done = setup_indices(self.client, self.prefix)
            if catalog:
                done[f"index {catalog_index(self.prefix)}"] = setup_catalog(self.client, self.prefix)
            return done
        except ApiError as exc:
            if exc.status_code in (400, 401, 403, 404):
                raise LogwardenError(describe_error(exc)) from None
            raise SinkUnavailable(describe_error(exc)) from exc
        except TransportError as exc:
            if is_certificate_error(exc):  # a configuration problem too: waiting would never fix it
                raise LogwardenError(describe_error(exc)) from None
            raise SinkUnavailable(describe_error(exc)) from exc

    def check_privileges(self, *, setup: bool, catalog: bool) -> None:
        """LogwardenError naming what the user may not do that the worker needs (see ``missing_privileges``)."""
        try:
            missing = missing_privileges(self.client, self.prefix, setup=setup, catalog=catalog)
        except TransportError as exc:
            raise SinkUnavailable(describe_error(exc)) from exc
        if missing:
            raise LogwardenError(f"the Elasticsearch user lacks privileges the worker needs: {'; '.join(missing)} "
                                 "(docs/security.md, deploy/elasticsearch/worker-role.yml)")

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
