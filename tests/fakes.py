"""Fakes and small builders shared by unit tests (one place, as the developers' guide asks).

Add a fake here rather than in a test module when a second test file could use it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime

from pipeline.records import LogRecord, RawLine


def raw_line(
    data: str | bytes, origin: str = "test.log", offset: int = 1, *, arrival: float = 0.0, truncated: bool = False
) -> RawLine:
    """A RawLine as a source would yield it (``str`` data is UTF-8 encoded)."""
    payload = data.encode() if isinstance(data, str) else data
    return RawLine(payload, origin, offset, None, arrival, truncated)


def raw_lines(lines: Iterable[str | bytes], origin: str = "test.log") -> list[RawLine]:
    """RawLines numbered from 1, as one file would give them."""
    return [raw_line(line, origin, number) for number, line in enumerate(lines, start=1)]


def log_record(message: str, timestamp: float | None = None, **fields: object) -> LogRecord:
    """A decoded record with the given message, event time and fields."""
    return LogRecord(message=message, timestamp=timestamp, fields=dict(fields))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of a UTC wall-clock time (the pipeline's time unit)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


class FakeStdin(io.BufferedReader):
    """A binary stdin stand-in (``read_lines(['-'], stdin=FakeStdin(b'...'))``); never closed by sources."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))


class NoPeekStdin(io.RawIOBase):
    """A stdin without ``peek`` (like a test runner's captured stream): sources must wrap it themselves."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# =====================================================================================================
# Elasticsearch (es_sink / es_setup / cli_es tests)
# -----------------------------------------------------------------------------------------------------
# A fake *server*, not a fake client: tests talk through the real elasticsearch-py client, transport and
# bulk helpers (retries, chunking, error handling are theirs); only the HTTP node is replaced, through
# the transport's documented ``node_class`` hook.
# =====================================================================================================
import json as _json  # noqa: E402
from typing import Any as _Any  # noqa: E402
from urllib.parse import unquote as _unquote  # noqa: E402
from urllib.parse import urlsplit as _urlsplit  # noqa: E402

from elastic_transport import ApiResponseMeta as _Meta  # noqa: E402
from elastic_transport import BaseNode as _BaseNode  # noqa: E402
from elastic_transport import ConnectionError as _EsConnectionError  # noqa: E402
from elastic_transport import ConnectionTimeout as _EsTimeout  # noqa: E402
from elastic_transport import HttpHeaders as _HttpHeaders  # noqa: E402
from elastic_transport._node import NodeApiResponse as _NodeApiResponse  # noqa: E402
from elasticsearch import Elasticsearch as _Elasticsearch  # noqa: E402

from pipeline.records import Document as _Document  # noqa: E402

_NO_HANDLER = (400, {"error": "no handler found for uri and method (fake: module missing)"})


def _es_error(status: int, kind: str, reason: str) -> tuple[int, dict[str, _Any]]:
    return status, {"error": {"type": kind, "reason": reason, "root_cause": [{"type": kind, "reason": reason}]},
                    "status": status}


class FakeElasticsearch:
    """In-memory Elasticsearch for unit tests; ``fake.client()`` returns a real client wired to it.

    Script failures for the next bulk requests by appending to ``bulk_outcomes``: ``"down"`` (connection
    refused), ``"timeout"``, an HTTP status for the whole request (``503``), or ``"items:429"`` (every item
    rejected with that status). ``down = True`` refuses every request until reset. A document whose
    ``log.count`` is not an integer is rejected like a mapping error (``document_parsing_exception``).
    ``ilm``/``data_streams`` say which optional modules the fake server has.
    """

    def __init__(self, *, ilm: bool = False, data_streams: bool = False) -> None:
        self.ilm = ilm
        self.data_streams = data_streams
        self.down = False
        self.bulk_outcomes: list[str | int] = []
        self.docs: dict[str, dict[str, dict[str, _Any]]] = {}  # index -> _id -> source
        self.templates: dict[str, dict[str, _Any]] = {}
        self.policies: dict[str, dict[str, _Any]] = {}
        self.aliases: dict[str, set[str]] = {}  # alias -> indices
        self.streams: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path), including failed ones

    @property
    def bulk_requests(self) -> int:
        return sum(1 for _, path in self.requests if path.endswith("/_bulk"))

    def all_docs(self) -> dict[str, dict[str, _Any]]:
        """``_id -> source`` over every index."""
        return {doc_id: src for index in self.docs.values() for doc_id, src in index.items()}

    def client(self, **kwargs: _Any) -> _Elasticsearch:
        server = self
        node_class = type("FakeNode", (_FakeEsNode,), {"server": server})
        kwargs.setdefault("max_retries", 0)
        return _Elasticsearch("http://fake-es:9200", node_class=node_class, **kwargs)

    # ----------------------------------------------------------------------------------- dispatch
    def handle(self, method: str, target: str, body: bytes | None) -> tuple[int, _Any]:
        path = _unquote(_urlsplit(target).path)
        self.requests.append((method, path))
        if self.down:
            raise _EsConnectionError("connection refused (fake Elasticsearch is down)")
        parts = [p for p in path.split("/") if p]
        if parts and parts[-1] == "_bulk":
            return self._bulk(body or b"")
        if parts[:1] == ["_ilm"]:
            return self._ilm(method, parts, body) if self.ilm else _NO_HANDLER
        if parts[:1] == ["_data_stream"]:
            if not self.data_streams:
                return _NO_HANDLER
            if method == "PUT":
                self.streams.add(parts[1])
            return 200, {"acknowledged": True, "data_streams": [{"name": s} for s in sorted(self.streams)]}
        if parts[:1] == ["_index_template"]:
            return self._template(method, parts[1], body)
        if parts[:1] == ["_alias"]:
            members = self.aliases.get(parts[1], set())
            return (200, {i: {"aliases": {parts[1]: {}}} for i in members}) if members else (404, {})
        if len(parts) == 3 and parts[1] == "_alias" and method == "PUT":
            for index in self._match(parts[0]):
                self.aliases.setdefault(parts[2], set()).add(index)
            return 200, {"acknowledged": True}
        if len(parts) == 1 and method == "PUT":
            return self._create_index(parts[0])
        if len(parts) == 1 and method == "GET":
            found = self._match(parts[0])
            return (200, {i: {} for i in found}) if found else _es_error(404, "index_not_found_exception", parts[0])
        return _es_error(400, "fake_unsupported", f"{method} {path} is not faked")

    def _match(self, pattern: str) -> list[str]:
        if pattern.endswith("*"):
            return sorted(i for i in self.docs if i.startswith(pattern[:-1]))
        return [pattern] if pattern in self.docs else []

    def _create_index(self, index: str) -> tuple[int, _Any]:
        if index in self.docs:
            return _es_error(400, "resource_already_exists_exception", f"index [{index}] already exists")
        self.docs[index] = {}
        for template in self.templates.values():
            patterns = template.get("index_patterns", [])
            if any(index.startswith(p.rstrip("*")) if p.endswith("*") else index == p for p in patterns):
                for alias in template.get("template", {}).get("aliases", {}):
                    self.aliases.setdefault(alias, set()).add(index)
        return 200, {"acknowledged": True, "index": index}

    def _template(self, method: str, name: str, body: bytes | None) -> tuple[int, _Any]:
        if method == "PUT":
            self.templates[name] = _json.loads(body or b"{}")
            return 200, {"acknowledged": True}
        if name not in self.templates:
            return 404, {"index_templates": []}
        return 200, {"index_templates": [{"name": name, "index_template": self.templates[name]}]}

    def _ilm(self, method: str, parts: list[str], body: bytes | None) -> tuple[int, _Any]:
        if parts[1] == "status":
            return 200, {"operation_mode": "RUNNING"}
        name = parts[2]
        if method == "PUT":
            self.policies[name] = _json.loads(body or b"{}")["policy"]
            return 200, {"acknowledged": True}
        if name not in self.policies:
            return _es_error(404, "resource_not_found_exception", f"policy [{name}] not found")
        return 200, {name: {"policy": self.policies[name]}}

    def _bulk(self, body: bytes) -> tuple[int, _Any]:
        outcome = self.bulk_outcomes.pop(0) if self.bulk_outcomes else None
        if outcome == "down":
            raise _EsConnectionError("connection refused (scripted)")
        if outcome == "timeout":
            raise _EsTimeout("read timed out (scripted)")
        if isinstance(outcome, int):
            kind = "unavailable_shards_exception" if outcome >= 500 else "es_rejected_execution_exception"
            return _es_error(outcome, kind, f"scripted {outcome}")
        lines = [_json.loads(line) for line in body.splitlines() if line.strip()]
        items = []
        for header, source in zip(lines[::2], lines[1::2], strict=True):
            op_type, meta = next(iter(header.items()))
            index, doc_id = meta["_index"], meta["_id"]
            base = {"_index": index, "_id": doc_id}
            if outcome == "items:429":
                status, error = _es_error(429, "es_rejected_execution_exception", "rejected execution (scripted)")
                items.append({op_type: {**base, "status": status, **error}})
                continue
            count = source.get("log", {}).get("count", 0)
            if not isinstance(count, int) or isinstance(count, bool):
                error = {"type": "document_parsing_exception",
                         "reason": f"[1:2] failed to parse field [log.count] of type [integer] in document with id "
                                   f"'{doc_id}'. Preview of field's value: '{count}'",
                         "caused_by": {"type": "number_format_exception", "reason": f'For input string: "{count}"'}}
                items.append({op_type: {**base, "status": 400, "error": error}})
                continue
            if op_type == "create" and doc_id in self.docs.get(index, {}):
                error = {"type": "version_conflict_engine_exception", "reason": f"[{doc_id}]: document already exists"}
                items.append({op_type: {**base, "status": 409, "error": error}})
                continue
            if index not in self.docs:
                self._create_index(index)
            created = doc_id not in self.docs[index]
            self.docs[index][doc_id] = source
            items.append({op_type: {**base, "status": 201 if created else 200,
                                    "result": "created" if created else "updated"}})
        return 200, {"errors": any(next(iter(i.values()))["status"] >= 300 for i in items), "items": items}


class _FakeEsNode(_BaseNode):
    """HTTP node that answers from a FakeElasticsearch (``server`` is set on a per-fake subclass)."""

    server: FakeElasticsearch

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: _Any = None, request_timeout: _Any = None) -> _NodeApiResponse:
        status, payload = self.server.handle(method, target, body)
        headers_out = _HttpHeaders({"content-type": "application/json", "x-elastic-product": "Elasticsearch"})
        meta = _Meta(status=status, http_version="1.1", headers=headers_out, duration=0.0, node=self.config)
        return _NodeApiResponse(meta, _json.dumps(payload).encode())


def anomaly_doc(entity: str = "blk_1", start: str = "2015-10-18T18:01:47.978Z", *, end: str | None = None,
                version: str = "v1", count: _Any = 3, template_ids: tuple[str, ...] = ("t-1",)) -> dict[str, _Any]:
    """An anomaly document shaped like ``pipeline.scoring.Scorer`` writes it."""
    return {
        "@timestamp": end or start,
        "entity": {"id": entity, "field": "block"},
        "window": {"start": start, "end": end or start, "kind": "session", "late": False},
        "anomaly": {"score": 0.71, "threshold": 0.6, "is_anomaly": True},
        "model": {"version": version},
        "templates": [{"id": tid, "template": f"Receiving block <*> {tid}", "observed": 2, "expected": 0.5,
                       "new": i == 0} for i, tid in enumerate(template_ids)],
        "log": {"count": count, "samples": [f"081109 203615 148 INFO dfs.DataNode: {entity} received"]},
    }


def as_document(doc: dict[str, _Any], doc_id: str | None = None) -> _Document:
    """A document as the worker hands it to a sink: with its deterministic ``_id`` (or the one given)."""
    from pipeline.scoring import document_id

    return _Document(doc_id if doc_id is not None else document_id(doc), doc)


# --- Kafka producer ----------------------------------------------------------------------------------
class _Future:
    """What KafkaProducer.send returns, reduced to what our code calls."""

    def get(self, timeout: float | None = None) -> None:
        return None


class RecordingProducer:
    """Just enough of KafkaProducer for DeadLetters: remembers what was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, _Any]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> _Future:
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or [])})
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        return None
