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
    refused), ``"timeout"``, an HTTP status for the whole request (``503``), ``"items:409"`` (every item
    stored, answered with a version conflict), or ``"items:429"`` (every item rejected with that status).
    ``down = True`` refuses every request until reset. A document whose
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
        self.events: list[str] | None = None  # shared event log (see FakeConsumer): "bulk" / "bulk:down"

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
        parts = [p for p in path.split("/") if p]
        is_bulk = bool(parts) and parts[-1] == "_bulk"
        if is_bulk and self.events is not None:
            self.events.append("bulk:down" if self.down or self.bulk_outcomes[:1] == ["down"] else "bulk")
        if self.down:
            raise _EsConnectionError("connection refused (fake Elasticsearch is down)")
        if is_bulk:
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
            if outcome == "items:409":  # another write of the same _id got there first (it is stored)
                self.docs.setdefault(index, {})[doc_id] = source
                error = {"type": "version_conflict_engine_exception", "reason": f"[{doc_id}]: version conflict"}
                items.append({op_type: {**base, "status": 409, "error": error}})
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


# =====================================================================================================
# OpenSearch (opensearch sink / layout / es-setup --sink opensearch tests)
# -----------------------------------------------------------------------------------------------------
# The same in-memory server behind opensearch-py's documented ``connection_class`` hook: the real client,
# transport and bulk helper run; only the HTTP connection is replaced. Imported lazily so that the rest
# of the fakes work without the optional extra.
# =====================================================================================================
class FakeOpenSearch(FakeElasticsearch):
    """In-memory OpenSearch: FakeElasticsearch's indices, templates, aliases and bulk, plus ``GET /`` with
    an OpenSearch version and, when ``ism`` is set, the ISM plugin's policy API (``ism_policies``)."""

    def __init__(self, *, ism: bool = False, data_streams: bool = True, version: str = "2.19.6") -> None:
        super().__init__(ilm=False, data_streams=data_streams)
        self.ism = ism
        self.version = version
        self.ism_policies: dict[str, dict[str, _Any]] = {}  # name -> {"policy": ..., "_seq_no": n}

    def client(self, **kwargs: _Any) -> _Any:
        from opensearchpy import OpenSearch  # noqa: PLC0415 - the optional extra, only when used

        connection_class = type("FakeOsConnection", (_fake_os_connection(),), {"server": self})
        kwargs.setdefault("max_retries", 0)
        return OpenSearch(["http://fake-os:9200"], connection_class=connection_class, **kwargs)

    def handle(self, method: str, target: str, body: bytes | None) -> tuple[int, _Any]:
        path = _unquote(_urlsplit(target).path)
        parts = [p for p in path.split("/") if p]
        if not parts and not self.down:
            self.requests.append((method, path))
            return 200, {"version": {"distribution": "opensearch", "number": self.version}, "tagline": "fake"}
        if parts[:2] == ["_plugins", "_ism"] and not self.down:
            self.requests.append((method, path))
            return self._ism(method, parts[3] if len(parts) > 3 else None, target, body) if self.ism else _NO_HANDLER
        return super().handle(method, target, body)

    def _ism(self, method: str, name: str | None, target: str, body: bytes | None) -> tuple[int, _Any]:
        if name is None:
            return 200, {"policies": [{"_id": n, **p} for n, p in self.ism_policies.items()]}
        stored = self.ism_policies.get(name)
        if method == "GET":
            if stored is None:
                return _es_error(404, "status_exception", "Policy not found")
            return 200, {"_id": name, "_primary_term": 1, **stored}
        query = dict(pair.split("=", 1) for pair in (_urlsplit(target).query or "").split("&") if "=" in pair)
        if stored is not None and query.get("if_seq_no") != str(stored["_seq_no"]):
            return _es_error(409, "version_conflict_engine_exception", f"[{name}]: version conflict")
        seq_no = 0 if stored is None else stored["_seq_no"] + 1
        self.ism_policies[name] = {"policy": _json.loads(body or b"{}")["policy"], "_seq_no": seq_no}
        return 201 if stored is None else 200, {"_id": name, "_seq_no": seq_no}


def _fake_os_connection() -> type:
    """An opensearch-py ``Connection`` that answers from a FakeOpenSearch (``server`` set per subclass)."""
    from opensearchpy import Connection  # noqa: PLC0415
    from opensearchpy.exceptions import ConnectionError as OsConnectionError  # noqa: PLC0415
    from opensearchpy.exceptions import ConnectionTimeout as OsConnectionTimeout  # noqa: PLC0415

    class FakeOsConnection(Connection):  # type: ignore[misc]
        server: FakeOpenSearch

        def perform_request(self, method: str, url: str, params: _Any = None, body: _Any = None,
                            timeout: _Any = None, ignore: _Any = (), headers: _Any = None) -> _Any:
            from urllib.parse import urlencode  # noqa: PLC0415

            target = url + (f"?{urlencode(params)}" if params else "")
            raw_body = body.encode() if isinstance(body, str) else body
            try:
                status, payload = self.server.handle(method, target, raw_body)
            except _EsTimeout as exc:
                raise OsConnectionTimeout("TIMEOUT", str(exc), exc) from exc
            except _EsConnectionError as exc:
                raise OsConnectionError("N/A", str(exc), exc) from exc
            raw = _json.dumps(payload)
            if not 200 <= status < 300 and status not in ignore:
                self._raise_error(status, raw, "application/json")
            return status, {"content-type": "application/json"}, raw

        def close(self) -> None:
            """Nothing to release: no sockets."""

    return FakeOsConnection


def anomaly_doc(entity: str = "blk_1", start: str = "2015-10-18T18:01:47.978Z", *, end: str | None = None,
                version: str = "v1", count: _Any = 3, template_ids: tuple[str, ...] = ("t-1",),
                rarity: float = 2.3, reason: str = "rarity") -> dict[str, _Any]:
    """An anomaly document shaped like ``pipeline.scoring.Scorer`` writes it."""
    return {
        "@timestamp": end or start,
        "entity": {"id": entity, "field": "block"},
        "window": {"start": start, "end": end or start, "kind": "session", "late": False},
        "anomaly": {"score": 0.71, "threshold": 0.6, "is_anomaly": True,
                    "components": {"iforest": 0.4, "rarity": rarity, "excess": 0.0},
                    "reason": reason, "reason_text": f"decided by {reason}"},
        "model": {"version": version, "warnings": []},
        "templates": [{"id": tid, "template": f"Receiving block <*> {tid}", "observed": 2, "expected": 0.5,
                       "new": i == 0} for i, tid in enumerate(template_ids)],
        "log": {"count": count, "samples": [f"081109 203615 148 INFO dfs.DataNode: {entity} received"]},
    }


def hostile_anomaly_docs() -> tuple[dict[str, _Any], dict[str, _Any], dict[str, _Any], dict[str, _Any]]:
    """Documents a sink must survive: a lone surrogate in a sample, a 64 KiB sample, a window in 2099,
    and one with neither ``window`` nor ``@timestamp`` (no index can be chosen: rejected before sending)."""
    surrogate, big, timeless = anomaly_doc("blk_s"), anomaly_doc("blk_big"), anomaly_doc("blk_none")
    surrogate["log"]["samples"] = ["name \ud800 odd"]
    big["log"]["samples"] = ["x" * 65536]
    del timeless["window"], timeless["@timestamp"]
    return surrogate, big, anomaly_doc("blk_2099", start="2099-01-01T00:00:00Z"), timeless


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

    def __init__(self, events: list[str] | None = None) -> None:
        self.sent: list[dict[str, _Any]] = []
        self.events = events  # shared event log (see FakeConsumer): "producer.flush"

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> _Future:
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or [])})
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        if self.events is not None:
            self.events.append("producer.flush")



# =====================================================================================================
# Kafka consumer and worker context (stream worker tests)
# -----------------------------------------------------------------------------------------------------
# Enough of kafka-python 3.0's KafkaConsumer for pipeline.stream.worker.Worker, without a broker: scripted
# per-partition logs, positions, pause/resume, seek, committed offsets with metadata, sync and async commits,
# and group rebalances that call the subscribed listener's coroutines the way kafka-python does inside poll
# (and inside close: kafka-python 3.0 revokes the owned partitions on close, even with autocommit=False).
# Pass one ``events`` list to FakeConsumer, RecordingProducer and FakeElasticsearch (``fake.events = ...``)
# to assert the order of side effects: "bulk", "producer.flush", "commit", "commit_async", "close".
# =====================================================================================================
import asyncio as _asyncio  # noqa: E402
from collections.abc import Callable as _Callable  # noqa: E402

from kafka import OffsetAndMetadata as _OffsetAndMetadata  # noqa: E402
from kafka import TopicPartition as _TopicPartition  # noqa: E402
from kafka.consumer.fetcher import ConsumerRecord as _ConsumerRecord  # noqa: E402
from kafka.errors import IllegalStateError as _IllegalStateError  # noqa: E402
from kafka.future import Future as _KafkaFuture  # noqa: E402

from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink as _ElasticsearchSink  # noqa: E402
from pipeline.stream.context import WorkerContext as _WorkerContext  # noqa: E402
from pipeline.stream.dead_letters import DeadLetters as _DeadLetters  # noqa: E402
from pipeline.stream.metrics import WorkerMetrics as _WorkerMetrics  # noqa: E402
from pipeline.stream.output import AnomalyOutput as _AnomalyOutput  # noqa: E402
from pipeline.stream.reload import SwitchableTag as _SwitchableTag  # noqa: E402


def consumer_record(tp: _TopicPartition, offset: int, value: bytes | None, key: bytes | None = None,
                    timestamp: int = -1, headers: list[tuple[str, bytes]] | None = None) -> _ConsumerRecord:
    """A kafka-python ConsumerRecord as ``poll`` returns it (``timestamp`` in ms, -1: unknown)."""
    return _ConsumerRecord(tp.topic, tp.partition, -1, offset, timestamp, 0, key, value, list(headers or []), None,
                           -1 if key is None else len(key), -1 if value is None else len(value), -1)


class FakeConsumer:
    """In-memory KafkaConsumer (group subscription) for the worker loop.

    ``log[tp]`` is a partition's records, offsets from 0 (:meth:`append` adds some). ``partitions`` given to
    the constructor are assigned at the first ``poll`` after ``subscribe``; :meth:`rebalance` revokes and/or
    assigns now, :meth:`rebalance_at_next_poll` inside the next ``poll``. A newly assigned partition starts at
    its committed offset, else at 0 (``auto_offset_reset="earliest"``).

    ``commits`` holds the offsets of every ``commit`` call in order (failed ones too), ``async_commits`` those
    of every ``commit_async``; ``committed_offsets`` is what the group holds. ``commit_errors`` scripts the
    next commits (sync or async): each call pops one item, an exception to raise or None for success.
    ``on_poll(n)`` is called at the start of the n-th ``poll`` (1-based): the place to stop a worker, take
    Elasticsearch down or trigger a rebalance at a chosen point of a ``run()``.
    """

    def __init__(self, partitions: _Any = (), events: list[str] | None = None) -> None:
        self.log: dict[_TopicPartition, list[_ConsumerRecord]] = {}
        self.committed_offsets: dict[_TopicPartition, _OffsetAndMetadata] = {}
        self.commits: list[dict[_TopicPartition, _OffsetAndMetadata]] = []
        self.async_commits: list[dict[_TopicPartition, _OffsetAndMetadata]] = []
        self.commit_errors: list[BaseException | None] = []
        self.events = events
        self.on_poll: _Callable[[int], None] | None = None
        self.polls = 0
        self.topics: list[str] = []
        self.listener: _Any = None
        self.closed = False
        self._assigned: set[_TopicPartition] = set()
        self._paused: set[_TopicPartition] = set()
        self._positions: dict[_TopicPartition, int] = {}
        self._rebalances: list[tuple[set[_TopicPartition], set[_TopicPartition]]] = []
        if partitions:
            self.rebalance_at_next_poll(assign=partitions)

    # ------------------------------------------------------------------------------------ the log
    def append(self, tp: _TopicPartition, *values: bytes, key: bytes | None = None, timestamp: int = -1) -> None:
        records = self.log.setdefault(tp, [])
        for value in values:
            records.append(consumer_record(tp, len(records), value, key, timestamp))

    # ------------------------------------------------------------------------------ subscription
    def subscribe(self, topics: _Any = (), pattern: str | None = None, listener: _Any = None) -> None:
        self.topics = list(topics)
        self.listener = listener

    def assignment(self) -> set[_TopicPartition]:
        return set(self._assigned)

    def rebalance(self, revoke: _Any = (), assign: _Any = ()) -> None:
        """Revoke then assign partitions now, calling the listener (its coroutines run to completion)."""
        revoked, assigned = set(revoke) & self._assigned, set(assign)
        try:
            if revoked and self.listener is not None:
                self._call("on_partitions_revoked", revoked)
        finally:
            self._assigned -= revoked
            self._paused -= revoked
            for tp in revoked:
                self._positions.pop(tp, None)
        new = assigned - self._assigned
        for tp in new:
            committed = self.committed_offsets.get(tp)
            self._positions[tp] = committed.offset if committed is not None else 0
            self.log.setdefault(tp, [])
        self._assigned |= assigned
        if assigned and self.listener is not None:
            self._call("on_partitions_assigned", assigned)

    def rebalance_at_next_poll(self, revoke: _Any = (), assign: _Any = ()) -> None:
        self._rebalances.append((set(revoke), set(assign)))

    def _call(self, method: str, partitions: set[_TopicPartition]) -> None:
        result = getattr(self.listener, method)(set(partitions))
        if _asyncio.iscoroutine(result):
            _asyncio.run(result)

    # ---------------------------------------------------------------------------------- fetching
    def poll(self, timeout_ms: int = 0, max_records: int | None = None,
             update_offsets: bool = True) -> dict[_TopicPartition, list[_ConsumerRecord]]:
        if self.closed:
            raise _IllegalStateError("consumer is closed")
        if self.listener is None and not self.topics:
            raise _IllegalStateError("not subscribed")
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self.polls)
        while self._rebalances:
            revoke, assign = self._rebalances.pop(0)
            self.rebalance(revoke, assign)
        budget = 500 if max_records is None else max_records
        batch: dict[_TopicPartition, list[_ConsumerRecord]] = {}
        for tp in sorted(self._assigned - self._paused):
            if budget <= 0:
                break
            position = self._positions[tp]
            records = self.log.get(tp, [])[position:position + budget]
            if records:
                batch[tp] = records
                budget -= len(records)
                if update_offsets:
                    self._positions[tp] = records[-1].offset + 1
        return batch

    def _owned(self, tp: _TopicPartition) -> None:
        if tp not in self._assigned:
            raise _IllegalStateError(f"partition {tp} is not assigned")

    def seek(self, partition: _TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("Offset must be int >= 0")
        if partition not in self._assigned:
            raise ValueError("Unassigned partition")
        self._positions[partition] = offset

    def position(self, partition: _TopicPartition, timeout_ms: int | None = None) -> int:
        self._owned(partition)
        return self._positions[partition]

    def highwater(self, partition: _TopicPartition) -> int:
        self._owned(partition)
        return len(self.log.get(partition, []))

    def pause(self, *partitions: _TopicPartition) -> None:
        for tp in partitions:
            if tp not in self._assigned:
                raise KeyError(tp)  # kafka-python: the subscription state has no entry for it
            self._paused.add(tp)

    def resume(self, *partitions: _TopicPartition) -> None:
        for tp in partitions:
            if tp not in self._assigned:
                raise KeyError(tp)
            self._paused.discard(tp)

    def paused(self) -> set[_TopicPartition]:
        return set(self._paused)

    # ----------------------------------------------------------------------------------- commits
    def committed(self, partition: _TopicPartition, metadata: bool = False,
                  timeout_ms: int | None = None) -> _OffsetAndMetadata | int | None:
        found = self.committed_offsets.get(partition)
        if found is None:
            return None
        return found if metadata else found.offset

    def commit(self, offsets: dict[_TopicPartition, _OffsetAndMetadata] | None = None,
               timeout_ms: int | None = None) -> None:
        if offsets is None:
            raise NotImplementedError("the worker always commits explicit offsets")
        self.commits.append(dict(offsets))
        error = self._outcome(offsets, "commit")
        if error is not None:
            raise error

    def commit_async(self, offsets: dict[_TopicPartition, _OffsetAndMetadata] | None = None,
                     callback: _Any = None) -> _KafkaFuture:
        """Returns a completed kafka-python Future (awaitable, as the worker's revocation path awaits it)."""
        if offsets is None:
            raise NotImplementedError("the worker always commits explicit offsets")
        self.async_commits.append(dict(offsets))
        error = self._outcome(offsets, "commit_async")
        future = _KafkaFuture()
        if error is not None:
            future.failure(error)
        else:
            future.success(None)
        if callback is not None:
            callback(offsets, error)
        return future

    def _outcome(self, offsets: dict[_TopicPartition, _OffsetAndMetadata], kind: str) -> BaseException | None:
        for tp, meta in offsets.items():
            if not isinstance(tp, _TopicPartition) or not isinstance(meta, _OffsetAndMetadata):
                raise TypeError(f"commit wants {{TopicPartition: OffsetAndMetadata}}, got {tp!r}: {meta!r}")
        error = self.commit_errors.pop(0) if self.commit_errors else None
        if self.events is not None:
            self.events.append(kind if error is None else kind + ":failed")
        if error is None:
            self.committed_offsets.update(offsets)
        return error

    def committed_at(self, tp: _TopicPartition) -> int | None:
        """The committed offset of ``tp`` (test helper)."""
        found = self.committed_offsets.get(tp)
        return None if found is None else found.offset

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        """Like kafka-python 3.0: revokes the owned partitions through the listener, then leaves the group."""
        if self.closed:
            return
        if self.events is not None:
            self.events.append("close")
        try:
            if self._assigned and self.listener is not None:
                self.rebalance(revoke=self._assigned)
        finally:
            self.closed = True


def worker_context(options: _Any, scorer: _Any, tag: _Callable[[str], _Any], es: FakeElasticsearch,
                   producer: RecordingProducer | None = None, metrics: _WorkerMetrics | None = None) -> _WorkerContext:
    """A :class:`pipeline.stream.context.WorkerContext` built from parts, without servers.

    ``WorkerContext.__init__`` makes its own Elasticsearch client and Kafka producer; this builds the same
    attributes around the fake server's real client and a RecordingProducer (``tag`` replaces the trained
    miner's ``match``). The sink does not retry inside a flush, so an outage shows on the first attempt.
    """
    ctx = object.__new__(_WorkerContext)
    ctx.options = options.check()
    ctx.bundle = scorer.bundle
    ctx.metrics = metrics or _WorkerMetrics()
    ctx.tag = tag if isinstance(tag, _SwitchableTag) else _SwitchableTag(tag)
    ctx.scorer = scorer
    ctx.sink = _ElasticsearchSink(es.client(), options.index_prefix, max_retries=0, initial_backoff=0.0)
    ctx.producer = producer if producer is not None else RecordingProducer()
    ctx.dead_letters = _DeadLetters(ctx.producer, options.dlq_topic,
                                   on_sent=lambda reason: ctx.metrics.dead_letters.labels(reason).inc())
    ctx.output = _AnomalyOutput(ctx.scorer, ctx.sink, ctx.dead_letters, ctx.metrics)
    return ctx
