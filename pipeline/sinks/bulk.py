"""Buffering and bulk-result sorting shared by the Elasticsearch and OpenSearch sinks.

Delivery contract with the worker (which owns Kafka offsets): ``flush()`` either returns a
:class:`FlushResult` (every buffered document is now indexed or handed back in ``rejected`` for the
dead-letter topic) or raises :class:`SinkError` and keeps every document it could not account for, so
the worker can pause, not commit, and call ``flush()`` again later (the worker's commit order flushes the
sink first). Documents arrive as :class:`~pipeline.records.Document` with a deterministic ``_id`` and go
to the daily index of their window start (:func:`~pipeline.sinks.anomaly_index.index_for`) with
``op_type: index``, so a replay after a crash overwrites.

Per item of a bulk response (:meth:`BulkSink._sort`), whichever server answered:

* 429 and 5xx (overload, a shard relocating) still failing after the client's bulk helper retried:
  :class:`SinkUnavailable`, documents kept.
* 401/403 (credentials, privileges) and 404 (index missing and auto-create disabled): a configuration
  problem, not a document problem: :class:`SinkError`, documents kept.
* any other 4xx (``document_parsing_exception``, ``mapper_parsing_exception``, ``illegal_argument``...):
  the document itself is bad and will never index: returned in ``FlushResult.rejected`` with the reason,
  never retried.
* 409 on ``create`` (data streams): a replay of a document already indexed, counted as indexed; on ``index``
  (a version conflict: another write of the same deterministic ``_id``, e.g. two owners of a partition around
  a rebalance) likewise: the window's document is there, so it is neither retried nor dead-lettered.

A subclass supplies the client: :meth:`BulkSink._stream` (the client's ``streaming_bulk`` with
``yield_ok=True`` and errors not raised), :attr:`BulkSink.transport_errors` (connection errors and
timeouts, which become :class:`SinkUnavailable`) and :meth:`BulkSink._describe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, ClassVar

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError
from pipeline.records import Document
from pipeline.sinks.anomaly_index import alias_name, check_prefix, index_for

RETRYABLE_STATUS = (429, 500, 502, 503, 504)
CONFIG_STATUS = (401, 403, 404)

Doc = dict[str, Any]
Entry = tuple[str, tuple[str, Document]]  # (_id, (index, document))


class SinkError(LogwardenError):
    """The server did not take the buffered documents; they are kept for the next ``flush()``."""


class SinkUnavailable(SinkError):
    """The server is unreachable or overloaded past the retry budget (transient: retry later)."""


class SinkBufferFull(SinkError):
    """``add()`` on a full buffer: flush first (or pause the input until the server is back)."""


@dataclass
class FlushResult:
    """What one ``flush()`` accomplished (including work from earlier flushes that raised)."""

    indexed: int = 0
    rejected: list[tuple[Document, str]] = field(default_factory=list)
    seconds: float = 0.0


def item_reason(status: Any, info: dict[str, Any]) -> str:
    """One-line reason for a failed bulk item, with the server's error type and cause."""
    error = info.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    else:
        text = str(error or "unknown error")
    return " ".join(f"{status} {text}".split())


def api_reason(body: Any, fallback: str) -> str:
    """``type: reason`` from an API error body (both servers send ``{"error": {"type", "reason"}}``, older
    handlers a plain string), else ``fallback``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("reason"):
        return f"{error.get('type', fallback)}: {error['reason']}"
    if isinstance(error, str):
        return error
    return fallback


class BulkSink:
    """Buffers anomaly documents and bulk-indexes them on ``flush()``; see the module docstring.

    Not thread-safe: one sink per worker loop (the loop that also commits offsets).
    """

    server: ClassVar[str] = "the search server"  # for messages: "Elasticsearch", "OpenSearch"
    transport_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(
        self,
        prefix: str = DEFAULT_INDEX_PREFIX,
        *,
        data_stream: bool = False,
        max_buffer: int = 10_000,
        chunk_size: int = 500,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        max_retries: int = 5,
        initial_backoff: float = 0.5,
        max_backoff: float = 10.0,
        on_bulk: Callable[[FlushResult], None] | None = None,
    ) -> None:
        if max_buffer < 1 or chunk_size < 1 or max_retries < 0:
            raise LogwardenError("max_buffer and chunk_size must be at least 1, max_retries at least 0")
        self.prefix = check_prefix(prefix)
        self.data_stream = data_stream
        self.max_buffer = max_buffer
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.on_bulk = on_bulk
        self._buffer: dict[str, tuple[str, Document]] = {}
        self._carry = FlushResult()

    # ------------------------------------------------------------------------------ client-specific
    def _stream(self, actions: list[dict[str, Any]], timeout: float | None) -> Iterable[tuple[bool, Any]]:
        """``(ok, {op_type: item})`` per document, as the client's ``streaming_bulk`` yields them."""
        raise NotImplementedError

    def _describe(self, exc: Exception) -> str:
        return f"{self.server}: {exc}"

    def setup_layout(self) -> dict[str, str]:
        """Create the index template and alias for :attr:`prefix` (the worker's start-up step).

        Raises :class:`SinkUnavailable` while the server cannot be reached (the caller waits and retries)
        and :class:`~pipeline.errors.LogwardenError` for what waiting will not fix.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the client if this sink created it. Does not flush: the worker flushes, then commits."""

    # ------------------------------------------------------------------------------------ buffering
    @property
    def pending(self) -> int:
        """Documents not yet accounted for: buffered, or rejected but not yet returned by a flush."""
        return len(self._buffer) + len(self._carry.rejected)

    @property
    def is_full(self) -> bool:
        return self.pending >= self.max_buffer

    def target(self, doc: Doc) -> str:
        """Index (or data stream) a document is written to."""
        return alias_name(self.prefix) if self.data_stream else index_for(doc, self.prefix)

    def add(self, document: Document) -> None:
        """Buffer one document. A document without the fields its index needs is rejected at once
        (returned by the next flush). The same ``_id`` added twice is indexed once, latest version."""
        try:
            index = self.target(document.body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._carry.rejected.append((document, f"invalid document: {type(exc).__name__}: {exc}"))
            return
        if document.id not in self._buffer and self.is_full:
            raise SinkBufferFull(f"{self.server} sink buffer is full ({self.max_buffer} documents): flush first")
        self._buffer[document.id] = (index, document)

    # -------------------------------------------------------------------------------------- flushing
    def _actions(self, entries: list[Entry]) -> list[dict[str, Any]]:
        op_type = "create" if self.data_stream else "index"
        return [{"_op_type": op_type, "_index": index, "_id": doc_id, "_source": document.body}
                for doc_id, (index, document) in entries]

    def flush(self, timeout: float | None = None, limit: int | None = None) -> FlushResult:
        """Index everything buffered (with ``limit``: the first ``limit`` documents, e.g. one chunk, so that a
        caller can watch the time between chunks); see the module docstring for what raises and is returned.

        ``timeout``: a bound for this flush instead of the retry budget (each request gets at most that long
        and nothing is retried), for callers that must answer in time (a rebalance).
        """
        started = time.perf_counter()
        if self._buffer:
            entries = list(self._buffer.items()) if limit is None else list(islice(self._buffer.items(), limit))
            self._bulk(entries, timeout)
        result, self._carry = self._carry, FlushResult()
        result.seconds = time.perf_counter() - started
        if self.on_bulk is not None:
            self.on_bulk(result)
        return result

    def _bulk(self, entries: list[Entry], timeout: float | None = None) -> None:
        """One pass over ``entries``; indexed and rejected documents leave the buffer as results arrive."""
        stream = self._stream(self._actions(entries), timeout)
        try:
            self._sort(stream)
        except self.transport_errors as exc:
            raise SinkUnavailable(
                f"{self._describe(exc)} after {self.max_retries} retries; "
                f"{len(self._buffer)} documents kept for the next flush"
            ) from exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _sort(self, stream: Iterable[tuple[bool, Any]]) -> None:
        """Sort per-item results into indexed / rejected, or raise for the whole batch (module docstring)."""
        for ok, item in stream:
            _, info = next(iter(item.items()))
            status = info.get("status", "N/A")
            doc_id = str(info.get("_id"))
            if ok or status == 409:  # a replay (create) or a concurrent write of the same _id (index): it is there
                if self._buffer.pop(doc_id, None) is not None:
                    self._carry.indexed += 1
                continue
            reason = item_reason(status, info)
            if status in RETRYABLE_STATUS or not isinstance(status, int):
                raise SinkUnavailable(
                    f"{self.server} kept failing after {self.max_retries} retries ({reason}); "
                    f"{len(self._buffer)} documents kept for the next flush"
                )
            if status in CONFIG_STATUS:
                raise SinkError(f"{self.server} refused the documents ({reason}); check credentials, "
                                "privileges and that es-setup ran; documents kept")
            entry = self._buffer.pop(doc_id, None)
            if entry is not None:
                self._carry.rejected.append((entry[1], reason))
