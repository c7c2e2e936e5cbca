"""Turns closed windows into scored, explained anomaly documents.

The document is the one contract shared by ``logwarden detect`` (JSON lines), the HTML report and
the streaming worker (Elasticsearch). Nested objects as ECS writes them (``entity.id`` is
``{"entity": {"id": ...}}``)::

    @timestamp          window end, ISO 8601 UTC
    entity.id/.field    which entity, and how it was found (regex group name, field name, "message")
    window.start/.end/.kind/.late
    anomaly.score       higher = more abnormal (see models.detector)
    anomaly.threshold   calibrated on the training windows
    anomaly.is_anomaly  score > threshold
    model.version
    templates           explanation: [{id, template, observed, expected, new}]
    log.count           lines in the window
    log.samples         a line of every explained template that the window holds, then its first lines up
                        to 5 in all

:func:`document_id` gives the deterministic Elasticsearch ``_id`` so that a replay overwrites.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from models.artifacts import ModelBundle
from models.explain import explain
from pipeline.records import Window, iso_utc

MAX_SAMPLES = 5


def document_id(doc: dict[str, Any]) -> str:
    """Stable id from entity, window start and kind, late flag and model version."""
    parts = (
        doc["entity"]["field"], doc["entity"]["id"], doc["window"]["kind"], doc["window"]["start"],
        "late" if doc["window"].get("late") else "", doc["model"]["version"],
    )
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:32]


class Scorer:
    """Scores windows with one model version. Stateless apart from the model; safe to share."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.space = bundle.features
        self.detector = bundle.detector
        self.version = bundle.version

    def score(self, windows: Sequence[Window]) -> list[dict[str, Any]]:
        """Score a batch (vectorised: one forest call per batch) and return one document per window."""
        if not windows:
            return []
        matrix = self.space.transform([w.counts for w in windows])
        scores = self.detector.score(matrix)
        threshold = float(self.detector.threshold_)
        return [self._document(w, float(s), threshold) for w, s in zip(windows, scores, strict=True)]

    def _document(self, window: Window, score: float, threshold: float) -> dict[str, Any]:
        explanation = explain(window.counts, self.space, window.templates)
        samples: list[str] = []
        for entry in explanation:
            line = window.samples.get(entry["id"])
            if line is not None and line not in samples:
                samples.append(line)
        for line in window.first_lines:
            if len(samples) >= MAX_SAMPLES:
                break
            if line not in samples:
                samples.append(line)
        return {
            "@timestamp": iso_utc(window.end),
            "entity": {"id": window.entity_id, "field": window.entity_field},
            "window": {
                "start": iso_utc(window.start),
                "end": iso_utc(window.end),
                "kind": window.kind,
                "late": window.late,
            },
            "anomaly": {"score": round(score, 6), "threshold": round(threshold, 6), "is_anomaly": score > threshold},
            "model": {"version": self.version},
            "templates": explanation,
            "log": {"count": window.count, "samples": samples},
        }
