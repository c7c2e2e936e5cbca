"""Historical raw logs in Elasticsearch as training input: ``logwarden train --source es:INDEX``.

Where an ELK stack already keeps the logs, training reads them from there: a **point in time** over the index
(or alias, or pattern) and ``search_after`` pages sorted by the time field then ``_shard_doc`` — a consistent
snapshot, each page as cheap as the first, unlike ``from``/``size`` deep pagination, which Elasticsearch caps
at 10,000 hits. The point in time is closed at the end, also after an error.

What each hit becomes (a :class:`~pipeline.records.RawLine` for the one record chain):

* with ``--log-format`` the text of ``--message-field`` as it stands: the raw line, parsed by the layout exactly
  as from a file (its own timestamp, fields and entity);
* otherwise a JSON object with ``@timestamp`` (from ``--time-field``), ``message`` and, when given,
  ``--entity-field``, which the JSON decoder reads by their ECS names.

Defaults are ECS: ``message``, ``@timestamp``. Fields are read from ``_source`` by dotted path, flat
(``"host.name": ...``) or nested (``{"host": {"name": ...}}``). A hit without the message field is skipped
and counted. The client is built by the caller (:mod:`pipeline.cli.train` uses the sink's client factory,
which speaks to 8.x and 9.x servers); sources know nothing of sinks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from pipeline.errors import LogwardenError
from pipeline.records import RawLine

PAGE_SIZE = 2_000
KEEP_ALIVE = "5m"


def field_value(source: dict[str, Any], path: str) -> Any:
    """``source[path]`` by dotted path, flat or nested; None when absent."""
    if path in source:
        return source[path]
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def build_query(time_field: str, since: float | None, until: float | None, query: str | None) -> dict[str, Any]:
    """The time range (epoch millis, half-open) and the user's query string or JSON query DSL."""
    clauses: list[dict[str, Any]] = []
    bounds: dict[str, Any] = {}
    if since is not None:
        bounds["gte"] = int(since * 1000)
    if until is not None:
        bounds["lt"] = int(until * 1000)
    if bounds:
        clauses.append({"range": {time_field: {**bounds, "format": "epoch_millis"}}})
    if query:
        text = query.strip()
        if text.startswith("{"):
            try:
                dsl = json.loads(text)
            except ValueError as exc:
                raise LogwardenError(f"--query looks like JSON query DSL but is not JSON: {exc}") from None
            if not isinstance(dsl, dict):
                raise LogwardenError("--query: the query DSL must be a JSON object")
            clauses.append(dsl.get("query", dsl) if isinstance(dsl.get("query"), dict) else dsl)
        else:
            clauses.append({"query_string": {"query": text}})
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


class EsRange:
    """The documents of ``index`` in ``[since, until)`` of ``time_field``, oldest first, as RawLines."""

    def __init__(self, client: Any, index: str, since: float | None, until: float | None, *, query: str | None = None,
                 message_field: str = "message", time_field: str = "@timestamp", entity_field: str | None = None,
                 raw: bool = True, max_line_bytes: int = 65536, page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.index = index
        self.message_field = message_field
        self.time_field = time_field
        self.entity_field = entity_field
        self.raw = raw
        self.max_line_bytes = max_line_bytes
        self.page_size = page_size
        self.query = build_query(time_field, since, until, query)
        self.read = 0
        self.no_message = 0
        self.total = self._count()

    def _count(self) -> int:
        from elastic_transport import TransportError  # noqa: PLC0415
        from elasticsearch import ApiError  # noqa: PLC0415 - the client is only needed with this source

        try:
            return int(self.client.count(index=self.index, query=self.query)["count"])
        except ApiError as exc:
            if exc.status_code == 404:
                raise LogwardenError(f"Elasticsearch index {self.index!r} does not exist") from None
            raise LogwardenError(f"Elasticsearch refused the query on {self.index}: {_reason(exc)}") from None
        except TransportError as exc:
            raise LogwardenError(f"cannot reach Elasticsearch: {exc}") from None

    def __iter__(self) -> Iterator[RawLine]:
        from elastic_transport import TransportError  # noqa: PLC0415
        from elasticsearch import ApiError  # noqa: PLC0415

        try:
            pit = self.client.open_point_in_time(index=self.index, keep_alive=KEEP_ALIVE)["id"]
        except (ApiError, TransportError) as exc:
            raise LogwardenError(f"cannot open a point in time on {self.index}: {_reason(exc)}") from None
        fields = [self.message_field, self.time_field] + ([self.entity_field] if self.entity_field else [])
        after: list[Any] | None = None
        number = 0
        try:
            while True:
                page = self.client.search(
                    pit={"id": pit, "keep_alive": KEEP_ALIVE}, query=self.query, size=self.page_size,
                    sort=[{self.time_field: {"order": "asc"}}, {"_shard_doc": "asc"}], search_after=after,
                    source=fields, track_total_hits=False)
                pit = page.get("pit_id", pit)
                hits = page["hits"]["hits"]
                if not hits:
                    return
                for hit in hits:
                    number += 1
                    line = self._line(hit.get("_source") or {}, number)
                    if line is not None:
                        yield line
                after = hits[-1]["sort"]
        except (ApiError, TransportError) as exc:
            raise LogwardenError(f"reading {self.index} from Elasticsearch failed: {_reason(exc)}") from None
        finally:
            with contextlib.suppress(ApiError, TransportError):  # else it expires after KEEP_ALIVE
                self.client.close_point_in_time(id=pit)

    def _line(self, source: dict[str, Any], number: int) -> RawLine | None:
        message = field_value(source, self.message_field)
        if message is None:
            self.no_message += 1
            return None
        self.read += 1
        if self.raw:
            data = str(message).encode("utf-8", "surrogatepass")
        else:
            record: dict[str, Any] = {"@timestamp": field_value(source, self.time_field), "message": str(message)}
            if self.entity_field:
                record[self.entity_field] = field_value(source, self.entity_field)
            data = json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")
        truncated = len(data) > self.max_line_bytes
        return RawLine(data[: self.max_line_bytes] if truncated else data, self.index, number, None, 0.0, truncated)


def _reason(exc: Exception) -> str:
    info = getattr(exc, "info", None) or getattr(exc, "body", None)
    if isinstance(info, dict):
        error = info.get("error")
        if isinstance(error, dict):
            return str(error.get("reason") or error.get("type") or exc)
    return str(exc).splitlines()[0][:300]
