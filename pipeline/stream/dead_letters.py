"""Dead letters: records and documents the worker cannot use go to ``<topic>.dlq``, with the reason.

Each dead letter is one Kafka record on the dead-letter topic of its source topic (``--dlq-topic``
overrides the name) with headers:

=================  ==================================================================================
``reason``         ``invalid_utf8``, ``truncated``, ``not_json``, ``stage_error`` or ``es_rejected`` (comma-joined when
                   a record has several, e.g. ``invalid_utf8,truncated``)
``source.topic``   topic of the record (for a document: of the window's first record)
``source.partition``, ``source.offset``   where it was read
``error.message``  details (the JSON error, Elasticsearch's reason); ``original.bytes`` for an oversized line
=================  ==================================================================================

What happens to the record itself:

* ``invalid_utf8``: bad bytes are replaced (U+FFFD) and the line is windowed like any other, as
  ``logwarden detect`` does on a file, so worker and detector agree; the dead letter keeps the original bytes.
* ``truncated`` (longer than ``--max-line-bytes``): windowed with its first ``--max-line-bytes`` bytes,
  as ``detect`` does; the dead letter holds those bytes (the whole line may be larger than a Kafka
  record may be) and ``original.bytes``; ``source.*`` says where the whole record is.
* ``not_json`` (``format: json`` and a line that is not a JSON object): not windowed (its time and
  fields are unknown), only dead-lettered with the original bytes.
* ``stage_error``: a stage raised on this record (see :mod:`pipeline.stages.chain`): not windowed, dead-lettered
  with the original bytes and the exception in ``error.message``; the stream goes on.
* ``es_rejected``: an anomaly document Elasticsearch refused for a reason retrying will not fix (a
  mapping error); the document JSON is the value. Outages are not rejections: those are retried.

A dead letter's value is at most :data:`MAX_VALUE_BYTES` (960 KiB), so it fits the dead-letter topic under a
broker's default ``message.max.bytes`` (1 MiB) whatever ``--max-line-bytes`` is: a longer value is cut and
``original.bytes`` gives its size. A dead letter the broker refused for its size would fail at every restart
and stop the worker on that record for ever.

Dead letters are produced with ``acks=all`` and flushed before every offset commit; a dead letter that
cannot be written stops the worker before it commits past the record (it is read again on restart).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer

from pipeline.errors import LogwardenError
from pipeline.records import Document

log = logging.getLogger(__name__)

RECORD_REASONS = ("invalid_utf8", "truncated", "not_json", "stage_error")
MAX_DETAIL = 1000
MAX_VALUE_BYTES = 960 * 1024  # under the broker's default message.max.bytes (1 MiB) with key and headers


class DeadLetterError(LogwardenError):
    """A dead letter could not be written; the worker must not commit past its record."""


def record_reasons(flags: Sequence[str]) -> list[str]:
    """The dead-letter reasons among a decoded record's flags, in a fixed order."""
    return [reason for reason in RECORD_REASONS if reason in flags]


def dlq_topic_for(topic: str, override: str | None = None) -> str:
    return override or f"{topic}.dlq"


class DeadLetters:
    """Sends dead letters through ``producer``; :meth:`flush` waits until every one is acknowledged."""

    def __init__(self, producer: KafkaProducer, override: str | None = None,
                 on_sent: Callable[[str], None] | None = None) -> None:
        self.producer = producer
        self.override = override
        self.on_sent = on_sent
        self._pending: list[tuple[Any, str]] = []

    def topic_for(self, source_topic: str) -> str:
        return dlq_topic_for(source_topic, self.override)

    def send(self, source_topic: str, partition: int, offset: int, value: bytes, reasons: Sequence[str],
             key: bytes | None = None, detail: str = "", extra: dict[str, str] | None = None) -> None:
        extra = dict(extra or {})
        if len(value) > MAX_VALUE_BYTES:
            extra.setdefault("original.bytes", str(len(value)))
            value = value[:MAX_VALUE_BYTES]
        headers = [
            ("reason", ",".join(reasons).encode()),
            ("source.topic", source_topic.encode()),
            ("source.partition", str(partition).encode()),
            ("source.offset", str(offset).encode()),
        ]
        if detail:
            headers.append(("error.message", detail[:MAX_DETAIL].encode("utf-8", "replace")))
        for name, text in extra.items():
            headers.append((name, text.encode("utf-8", "replace")))
        future = self.producer.send(self.topic_for(source_topic), key=key, value=value, headers=headers)
        self._pending.append((future, f"{source_topic}/{partition}@{offset}"))
        if self.on_sent is not None:
            for reason in reasons:
                self.on_sent(reason)

    def send_document(self, document: Document, reason: str) -> None:
        """An anomaly document Elasticsearch rejected, to the dead-letter topic of the records it came from."""
        source = document.source
        topic, partition, offset = source if source is not None else ("unknown", -1, -1)
        doc = document.body
        value = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        entity_obj = doc.get("entity") if isinstance(doc, dict) else None
        entity = str(entity_obj.get("id", "") if isinstance(entity_obj, dict) else "").encode() or None
        if source is None:
            log.warning("rejected document without a known source partition: %s", reason)
        self.send(topic, partition, offset, value, ["es_rejected"], key=entity, detail=reason)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every dead letter sent so far; DeadLetterError if any could not be written."""
        if not self._pending:
            return
        self.producer.flush(timeout=timeout)
        while self._pending:
            future, where = self._pending[0]
            try:
                future.get(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - any failure means the dead letter is not safe
                # Stays pending: a later flush fails again, so no checkpoint can ever commit past its record.
                raise DeadLetterError(f"could not write the dead letter of {where}: {exc}") from exc
            self._pending.pop(0)
