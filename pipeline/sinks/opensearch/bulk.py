"""OpenSearch sink for anomaly documents: :class:`~pipeline.sinks.bulk.BulkSink` over opensearch-py.

The buffer, the delivery contract and the sorting of per-item results into indexed / rejected / retry
later are shared with Elasticsearch (:mod:`pipeline.sinks.bulk`). What is OpenSearch's:

* ``opensearchpy.helpers.streaming_bulk`` retries 429 items (``max_retries``, exponential backoff from
  ``initial_backoff`` up to ``max_backoff``); 5xx items are not retried inside the flush: the sink raises
  :class:`~pipeline.sinks.bulk.SinkUnavailable` and keeps them, and the worker backs off and flushes again.
* connection refused, timeouts: retried by the client transport (``max_retries``, without backoff); then
  :class:`~pipeline.sinks.bulk.SinkUnavailable`, documents kept.
* ``flush(timeout)`` bounds each request by ``timeout`` and turns both kinds of retries off.
* Sources are serialized with ASCII escapes (:func:`_ascii_source`): opensearch-py's serializer writes
  raw UTF-8 and its bulk helper raises ``UnicodeEncodeError`` on a lone surrogate, which would end the
  flush without accounting for any document; escaped, the surrogate reaches the server as ``\\ud800``, as
  with the Elasticsearch client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError
from pipeline.sinks.bulk import BulkSink, SinkUnavailable
from pipeline.sinks.opensearch.client import OpenSearch, TransportError, describe_error, helpers, server_version
from pipeline.sinks.opensearch.layout import setup_indices


class OpenSearchSink(BulkSink):
    """Buffers anomaly documents and bulk-indexes them into OpenSearch on ``flush()``."""

    server = "OpenSearch"
    transport_errors = (TransportError,)

    def __init__(
        self,
        client: OpenSearch,
        prefix: str = DEFAULT_INDEX_PREFIX,
        *,
        request_timeout: float | None = None,
        owns_client: bool = False,
        **options: Any,
    ) -> None:
        """``options``: the buffer and retry settings of :class:`~pipeline.sinks.bulk.BulkSink`."""
        super().__init__(prefix, **options)
        self.client = client
        self.request_timeout = request_timeout
        self._owned = client if owns_client else None

    def _stream(self, actions: list[dict[str, Any]], timeout: float | None) -> Iterable[tuple[bool, Any]]:
        transport = self.client.transport
        kwargs: dict[str, Any] = {}
        if timeout is not None or self.request_timeout is not None:
            kwargs["request_timeout"] = timeout if timeout is not None else self.request_timeout
        stream = helpers.streaming_bulk(
            self.client,
            actions,
            chunk_size=self.chunk_size,
            max_chunk_bytes=self.max_chunk_bytes,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=self.max_retries if timeout is None else 0,
            # Annotated int upstream, but only ever passed to time.sleep: fractions work.
            initial_backoff=self.initial_backoff,  # type: ignore[arg-type]
            max_backoff=self.max_backoff,  # type: ignore[arg-type]
            yield_ok=True,
            expand_action_callback=lambda action: _ascii_source(self.client, action),
            **kwargs,
        )
        if timeout is None:
            return stream  # type: ignore[no-any-return]
        return _without_transport_retries(transport, stream)

    def _describe(self, exc: Exception) -> str:
        return describe_error(exc)

    def setup_layout(self) -> dict[str, str]:
        try:
            server_version(self.client)
            return setup_indices(self.client, self.prefix)
        except TransportError as exc:
            if isinstance(exc.status_code, int) and exc.status_code in (400, 401, 403, 404):
                raise LogwardenError(describe_error(exc)) from None
            raise SinkUnavailable(describe_error(exc)) from exc

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None


def _ascii_source(client: OpenSearch, action: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The bulk helper's action expansion, with the source already JSON text (ASCII only; the helper
    passes text through unchanged, including on its 429 retries)."""
    header, source = helpers.expand_action(action)
    if source is None or isinstance(source, str | bytes):
        return header, source
    # Datetimes, decimals, ... as opensearch-py writes them (its JSONSerializer.default).
    default = getattr(client.transport.serializer, "default", None)
    return header, json.dumps(source, ensure_ascii=True, separators=(",", ":"), default=default)


def _without_transport_retries(transport: Any, stream: Iterable[tuple[bool, Any]]) -> Iterator[tuple[bool, Any]]:
    """``stream`` with the transport's retries off while it runs (opensearch-py has no per-call setting)."""
    saved = transport.max_retries
    transport.max_retries = 0
    try:
        yield from stream
    finally:
        transport.max_retries = saved
