"""The template catalog index ``<prefix>-templates``: one document per template id, so that a template id in an
anomaly (``templates.id``) can be looked up in Kibana.

Each document (``_id`` = the template id)::

    template_id     T + 10 hex digits (stable across processes, see pipeline.stages.templates)
    template        the template text (text, with a .keyword)
    first_seen      when a worker first saw a line of it (processing time, UTC)
    last_seen       when a worker last saw one
    count           lines the workers tagged with it (at-least-once: a replay after a restart counts again)
    model_versions  the model versions that know it (trained with it)
    known           whether the model of the latest writer knows it (``train`` sets it for the new model's
                    vocabulary and clears it for the templates the new model dropped)
    updated         when the document was last written

Why read-merge-write with ``if_seq_no``/``if_primary_term`` and not a scripted upsert: scripts need the
``lang-painless`` module, which the bare Elasticsearch distributions Logwarden supports may lack (the tests run
one). Optimistic concurrency gives the same result with several workers writing: a conflicting write is re-read,
merged again and retried. Bounded rate: the worker keeps its observations in memory (one entry per template id)
and flushes at most :data:`MAX_BATCH` templates every ``--template-catalog-interval`` (two requests per flush).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from pipeline.records import TemplateMatch

log = logging.getLogger(__name__)

MAX_BATCH = 500
MAX_PENDING = 10_000
MAX_PENDING_CHARS = 4_000_000
MAX_RETRIES = 10
KEYWORD = {"type": "keyword", "ignore_above": 1024}
CATALOG_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "template_id": KEYWORD,
        "template": {"type": "text", "fields": {"keyword": KEYWORD}},
        "first_seen": {"type": "date"},
        "last_seen": {"type": "date"},
        "count": {"type": "long"},
        "model_versions": KEYWORD,
        "known": {"type": "boolean"},
        "updated": {"type": "date"},
    },
}


def catalog_index(prefix: str) -> str:
    return f"{prefix}-templates"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def setup_catalog(client: Elasticsearch, prefix: str) -> str:
    """Create the catalog index (one index: templates are few) unless it exists; what happened."""
    name = catalog_index(prefix)
    try:
        client.indices.create(index=name, mappings=CATALOG_MAPPINGS,
                              settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"})
    except ApiError as exc:
        if exc.error in ("resource_already_exists_exception", "index_already_exists_exception"):
            return "exists"
        raise
    return "created"


@dataclass
class Seen:
    """What this process saw of one template since the last flush."""

    template: str
    count: int = 0
    first: float | None = None
    last: float | None = None
    known: bool | None = None
    charged: int = field(default=0, compare=False)  # characters counted against the unknown-template budget

    def add(self, other: Seen) -> None:
        self.count += other.count
        self.template = other.template or self.template
        firsts = [x for x in (self.first, other.first) if x is not None]
        lasts = [x for x in (self.last, other.last) if x is not None]
        self.first = min(firsts) if firsts else None
        self.last = max(lasts) if lasts else None
        if other.known is not None:
            self.known = other.known


def merged(existing: Mapping[str, Any] | None, template_id: str, seen: Seen, version: str | None,
           now: float) -> dict[str, Any]:
    """The document after adding ``seen`` (and the model ``version`` if it knows the template) to ``existing``."""
    doc = dict(existing or {})
    doc["template_id"] = template_id
    doc["template"] = seen.template or doc.get("template", "")
    doc["count"] = int(doc.get("count", 0)) + seen.count
    if seen.first is not None:
        first = _iso(seen.first)
        doc["first_seen"] = min(doc.get("first_seen") or first, first)
    if seen.last is not None:
        last = _iso(seen.last)
        doc["last_seen"] = max(doc.get("last_seen") or last, last)
    versions = list(doc.get("model_versions") or [])
    if seen.known and version and version not in versions:
        versions.append(version)
    doc["model_versions"] = versions
    if seen.known is not None:
        doc["known"] = seen.known
    doc["updated"] = _iso(now)
    return doc


class TemplateCatalog:
    """Observations of one process, upserted into ``<prefix>-templates`` by :meth:`flush`."""

    def __init__(self, client: Elasticsearch, prefix: str, model_version: str | None,
                 clock: Callable[[], float] = time.time, max_pending: int = MAX_PENDING,
                 max_pending_chars: int = MAX_PENDING_CHARS, on_dropped: Callable[[], object] | None = None) -> None:
        """``on_dropped`` is called for each line not recorded because the pending set is full (a metric)."""
        self.client = client
        self.index = catalog_index(prefix)
        self.model_version = model_version
        self.clock = clock
        self.max_pending = max_pending
        self.max_pending_chars = max_pending_chars
        self.dropped = 0  # lines of unknown templates not recorded because the pending set was full
        self.on_dropped = on_dropped
        self._pending: dict[str, Seen] = {}
        self._unknown_pending = 0  # entries and characters of unknown templates in _pending
        self._unknown_chars = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------- observing
    def observe(self, match: TemplateMatch) -> None:
        now = self.clock()
        with self._lock:
            seen = self._pending.get(match.template_id)
            if seen is None:
                if not match.known:
                    size = max(len(match.template), 1)
                    if (self._unknown_pending >= self.max_pending
                            or self._unknown_chars + size > self.max_pending_chars):
                        self.dropped += 1
                        if self.on_dropped is not None:
                            self.on_dropped()
                        return
                    self._charge(size)
                self._pending[match.template_id] = Seen(match.template, 1, now, now, match.known,
                                                        charged=0 if match.known else size)
            else:
                seen.count += 1
                seen.last = now
                seen.known = match.known

    def observing(self, tag: Callable[[str], TemplateMatch]) -> Callable[[str], TemplateMatch]:
        """``tag`` that also records every match it returns."""

        def observed(message: str) -> TemplateMatch:
            match = tag(message)
            self.observe(match)
            return match

        return observed

    @property
    def pending(self) -> int:
        return len(self._pending)

    # --------------------------------------------------------------------------------------- writing
    def flush(self, max_batch: int = MAX_BATCH) -> int:
        """Upsert up to ``max_batch`` pending templates; how many were written. What was not stays pending."""
        with self._lock:
            ids = sorted(self._pending, key=lambda tid: -self._pending[tid].count)[:max_batch]
            batch = {tid: self._take(tid) for tid in ids}
        if not batch:
            return 0
        unwritten = dict(batch)
        try:
            unwritten = self.upsert(batch, self.model_version)
        finally:
            self._requeue(unwritten)
        return len(batch) - len(unwritten)

    def _charge(self, size: int, sign: int = 1) -> None:
        self._unknown_pending += sign
        self._unknown_chars += sign * size

    def _take(self, tid: str) -> Seen:
        """Remove a pending entry and give back its place in the budget (its ``charged`` stays on it)."""
        seen = self._pending.pop(tid)
        if seen.charged:
            self._charge(seen.charged, -1)
        return seen

    def _requeue(self, unwritten: Mapping[str, Seen]) -> None:
        """Put back what a flush did not write (merged with what came meanwhile); bounds are not applied to
        it: it was admitted once, and dropping it now would lose lines already counted."""
        with self._lock:
            for tid, seen in unwritten.items():
                if tid in self._pending:
                    newer = self._take(tid)
                    seen.add(newer)
                    seen.charged = seen.charged or newer.charged
                if seen.charged:
                    self._charge(seen.charged)
                self._pending[tid] = seen

    def upsert(self, batch: Mapping[str, Seen], version: str | None) -> dict[str, Seen]:
        """Read, merge and write ``batch``, retrying the documents another writer changed in between.

        Returns what could not be written (still conflicting after :data:`MAX_RETRIES` rounds, or refused); a
        request that fails raises, and its whole remainder counts as unwritten for the caller.
        """
        todo = dict(batch)
        refused: dict[str, Seen] = {}
        for attempt in range(MAX_RETRIES + 1):
            if not todo:
                break
            if attempt:
                time.sleep(random.uniform(0, 0.05 * attempt))  # writers that collided spread out
            found = self.client.mget(index=self.index, ids=list(todo), source=True)
            now = self.clock()
            operations: list[dict[str, Any]] = []
            for entry in found["docs"]:
                tid = entry["_id"]
                action: dict[str, Any] = {"_index": self.index, "_id": tid}
                if entry.get("found"):
                    action |= {"if_seq_no": entry["_seq_no"], "if_primary_term": entry["_primary_term"]}
                    operations += [{"index": action}, merged(entry["_source"], tid, todo[tid], version, now)]
                else:
                    operations += [{"create": action}, merged(None, tid, todo[tid], version, now)]
            answer = self.client.bulk(operations=operations, refresh=False)
            conflicts = {}
            for item in answer["items"]:
                (result,) = item.values()
                tid = result["_id"]
                if result.get("status") == 409:
                    conflicts[tid] = todo[tid]
                elif result.get("status", 200) >= 300:
                    log.warning("template catalog refused %s: %s", tid, result.get("error"))
                    refused[tid] = todo[tid]
            todo = conflicts
        return {**todo, **refused}

    def publish_model(self, vocabulary: Mapping[str, str], version: str) -> dict[str, int]:
        """After ``train``: the new model's templates are known by ``version``; the others are no longer known."""
        batch = {tid: Seen(text, known=True) for tid, text in vocabulary.items()}
        for start in range(0, len(batch), MAX_BATCH):
            ids = list(batch)[start:start + MAX_BATCH]
            self._must(self.upsert({tid: batch[tid] for tid in ids}, version))
        dropped = [tid for tid in self._known_ids() if tid not in vocabulary]
        for start in range(0, len(dropped), MAX_BATCH):
            ids = dropped[start:start + MAX_BATCH]
            self._must(self.upsert({tid: Seen("", known=False) for tid in ids}, None))
        self.client.indices.refresh(index=self.index)
        return {"known": len(batch), "no_longer_known": len(dropped)}

    @staticmethod
    def _must(unwritten: Mapping[str, Seen]) -> None:
        if unwritten:
            raise RuntimeError(f"template catalog: {len(unwritten)} templates could not be written "
                               f"(e.g. {next(iter(unwritten))})")

    def _known_ids(self) -> Iterable[str]:
        after: list[Any] | None = None
        while True:
            page = self.client.search(index=self.index, query={"term": {"known": True}}, size=1000,
                                      sort=[{"template_id": "asc"}], source=False, search_after=after)
            hits = page["hits"]["hits"]
            if not hits:
                return
            yield from (hit["_id"] for hit in hits)
            after = hits[-1]["sort"]


class CatalogFlusher:
    """Flushes a catalog every ``interval`` seconds from a daemon thread (never blocks the consume loop)."""

    def __init__(self, catalog: TemplateCatalog, interval: float) -> None:
        self.catalog = catalog
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logwarden-template-catalog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._flush_once()

    def _flush_once(self) -> None:
        try:
            self.catalog.flush()
        except Exception as exc:  # noqa: BLE001 - the catalog is best effort: log, keep the observations, go on
            log.warning("template catalog not updated (%s); retrying in %.0f s", exc, self.interval)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is left (best effort, bounded by ``timeout`` per request)."""
        self._stop.set()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.catalog.pending and time.monotonic() < deadline:
            try:
                self.catalog.flush()
            except Exception as exc:  # noqa: BLE001
                log.warning("template catalog: %d templates not written at exit (%s)", self.catalog.pending, exc)
                return
