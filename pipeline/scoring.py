"""Turns closed windows into scored, explained anomaly documents.

The document is the one contract shared by ``logwarden detect`` (JSON lines), the HTML report and
the streaming worker (Elasticsearch). Nested objects as ECS writes them (``entity.id`` is
``{"entity": {"id": ...}}``)::

    @timestamp          window end, ISO 8601 UTC
    entity.id/.field    which entity, and how it was found (regex group name, field name, "message")
    window.start/.end/.kind/.late
    window.stream       the Kafka topic/partition the window was read from (worker documents only)
    window.offset       smallest offset (Kafka) or line number (file) of the window's records
    anomaly.score       higher = more abnormal: -log10 of the combined tail probability (see models.detector)
    anomaly.threshold   calibrated on the training windows
    anomaly.is_anomaly  score > threshold
    anomaly.components  {iforest, rarity, excess}: each component's -log10 tail probability, the score's scale
    anomaly.reason      the component that decided the score, and anomaly.reason_text says it in words
    model.version
    model.warnings      flags of a small or odd training set (few_windows, short_windows); empty when none
    templates           explanation: [{id, template, observed, expected, new}]
    log.count           lines in the window
    log.samples         a line of every explained template that the window holds, then its first lines up
                        to 5 in all

:func:`document_id` gives the deterministic Elasticsearch ``_id`` so that a replay overwrites: entity field and
id, window kind and start, the late flag, model version, and the stream (a window of the same entity in another
topic or partition is another window). A *late* window also carries its first record's offset in the id: two
late windows of one entity can start in the same bucket or second (records that kept arriving after the first
late window had closed), and each must keep its own document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from models.artifacts import ModelBundle
from models.explain import explain_batch, holds_new, reason_text
from pipeline.records import OTHER_UNSEEN_ID, Window, iso_utc_fast

MAX_SAMPLES = 5


def document_id(doc: dict[str, Any]) -> str:
    """Stable id from entity, window start and kind, late flag and model version."""
    window = doc["window"]
    late = bool(window.get("late"))
    parts = [
        doc["entity"]["field"], doc["entity"]["id"], window["kind"], window["start"],
        "late" if late else "", doc["model"]["version"],
    ]
    if window.get("stream"):
        parts.append(window["stream"])
    if late:
        parts.append(window.get("offset", ""))
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:32]


def rounded6(values: list[float]) -> list[float]:
    """``[round(value, 6) for value in values]``, each distinct value rounded once (a batch's windows share a few
    distinct rows, so a few distinct scores, and ``round`` costs more than a dict look-up). Zeros are never
    memoised: ``0.0 == -0.0`` as keys, yet they round to zeros of their own sign."""
    memo: dict[float, float] = {}
    out = []
    for value in values:
        done = memo.get(value)
        if done is None:
            done = round(value, 6)
            if value:
                memo[value] = done
        out.append(done)
    return out


WindowKey = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]
MEMO_WINDOWS = 2048  # distinct windows whose results a scorer keeps across batches


@dataclass(slots=True)
class Result:
    """What the model gives a distinct window (held by the scorer's memo, never by a document): its score, the score
    as shown (rounded), its components (rounded), the deciding component and its text, whether its explanation holds
    a new template, and the explanation's entries, made when a document first needs them (None before)."""

    value: float
    score: float
    part: dict[str, float]
    reason: str
    text: str
    new: bool
    explanation: list[dict[str, Any]] | None = None


def window_key(window: Window) -> WindowKey:
    """What the model reads of a window: its counts and template texts, item by item in their order. Windows with
    equal keys score alike; windows with the same items in another order have other keys (only scored twice)."""
    return tuple(window.counts.items()), tuple(window.templates.items())


class Scorer:
    """Scores windows with one model version. Stateless apart from the model and two bounded memos, of rendered
    times and of the model's result per distinct window (whose entries are always right, so a shared scorer stays
    correct); safe to share."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.space = bundle.features
        self.detector = bundle.detector
        self.version = bundle.version
        self.warnings = [str(flag) for flag in bundle.stats.get("flags", [])]
        # ISO text per epoch second: windows share their bounds (a tumbling bucket's, a one-line session's start
        # and end), and rendering one costs more than the rest of a window's fields. Bounded.
        self._iso: dict[float, str] = {}
        self._memo: dict[WindowKey, Result] = {}  # the model's result per distinct window (:meth:`_results`)
        self.memo_windows = MEMO_WINDOWS
        self.distinct = True  # score each distinct window once (False: every window, the general path tests compare)

    def score(self, windows: Sequence[Window]) -> list[dict[str, Any]]:
        """Score a batch and return one document per window.

        Vectorised per batch: one detector call (all trees at once, each distinct row once) and one
        explanation pass (:func:`models.explain.explain_batch`); a window costs only its document's fields.
        Windows repeat (a batch of 512 one-line HDFS sessions holds about ten distinct ones, and the next batch
        the same ten): the model's work is done once per distinct window (:func:`window_key`) and kept for later
        batches (:meth:`_results`), each window's document getting entries and components of its own.
        """
        return self.score_counted(windows)[0]

    def score_counted(self, windows: Sequence[Window],
                      every: bool = True) -> tuple[list[dict[str, Any]], list[int], int]:
        """:meth:`score`'s documents (``every=False``: only those of the anomalous windows, in order), the positions of
        the anomalous windows in ``windows`` and the number of windows whose explanation holds a new template.

        ``every=False`` is ``logwarden detect`` writing only anomalies, and the worker indexing only them: a normal
        window's document would be built to be dropped, and on one-line sessions and buckets building it is most of
        the scorer's time.
        """
        if not windows:
            return [], [], 0
        results = self._results(windows) if self.distinct else self._model(windows)
        threshold = float(self.detector.threshold_)
        unseen = sum([result.new for result in results])
        if every:
            flagged = [result.value > threshold for result in results]
            documents = self._documents(windows, results, flagged, threshold)
            return documents, [at for at, anomalous in enumerate(flagged) if anomalous], unseen
        chosen = [at for at, result in enumerate(results) if result.value > threshold]
        documents = self._documents([windows[at] for at in chosen], [results[at] for at in chosen],
                                    [True] * len(chosen), threshold)
        return documents, chosen, unseen

    def _documents(self, windows: Sequence[Window], results: Sequence[Result], flagged: Sequence[bool],
                   threshold: float) -> list[dict[str, Any]]:
        self._explain(windows, results)
        shown = round(threshold, 6)  # as the documents hold it; is_anomaly compares with the threshold itself
        iso_memo, iso = self._iso.get, self._iso_utc
        version, warnings = self.version, self.warnings
        copy = dict.copy
        documents = []
        # One window's document, written out here rather than in a method per window (on short windows, building
        # the documents is most of the scorer's time); ``tests/pipeline/test_scoring.py`` keeps the plain per-window
        # construction this must equal.
        for window, result, anomalous in zip(windows, results, flagged, strict=True):
            explanation = list(map(copy, result.explanation or ()))  # the memo's entries stay the memo's
            held = window.samples
            samples: list[str] = []
            for entry in explanation:
                line = held.get(entry["id"])
                if line is not None and line not in samples:
                    samples.append(line)
            if len(samples) < MAX_SAMPLES:
                for line in window.first_lines:
                    if line not in samples:
                        samples.append(line)
                        if len(samples) >= MAX_SAMPLES:
                            break
            start = iso_memo(window.start) or iso(window.start)
            end = iso_memo(window.end) or iso(window.end)
            fields: dict[str, Any] = {"start": start, "end": end, "kind": window.kind, "late": window.late}
            if window.stream:
                fields["stream"] = window.stream
            if window.positions:
                fields["offset"] = min(window.positions.values())
            documents.append({
                "@timestamp": end,
                "entity": {"id": window.entity_id, "field": window.entity_field},
                "window": fields,
                "anomaly": {"score": result.score, "threshold": shown, "is_anomaly": anomalous,
                            "components": copy(result.part), "reason": result.reason, "reason_text": result.text},
                "model": {"version": version, "warnings": warnings},
                "templates": explanation,
                "log": {"count": sum(window.counts.values()), "samples": samples},
            })
        return documents

    def _results(self, windows: Sequence[Window]) -> list[Result]:
        """The model's result for every window: from the memo, else from one :meth:`_model` call over the batch's
        distinct windows the memo lacks (then kept, up to ``memo_windows``; a full memo starts over).

        A window's result depends on its counts and template texts alone (every component scores a row from that
        row alone, :func:`models.explain.explain_batch` explains each window from its own counts and texts), so a
        window scored in an earlier batch gets what scoring it again would give.
        """
        memo = self._memo
        found: dict[WindowKey, Result] = {}
        wanted: dict[WindowKey, Window] = {}
        out: list[Result | None] = []
        keys = []
        for window in windows:
            key = tuple(window.counts.items()), tuple(window.templates.items())  # ``window_key``, inlined
            keys.append(key)
            result = memo.get(key)  # the memo is only added to (or cleared) after this loop
            if result is None and key not in wanted:
                wanted[key] = window
            out.append(result)
        if not wanted:
            return cast("list[Result]", out)  # every window found
        bound = self.memo_windows
        if len(memo) + len(wanted) > bound:
            memo.clear()
        for key, result in zip(wanted, self._model(list(wanted.values())), strict=True):
            found[key] = result
            if len(memo) < bound:
                memo[key] = result
        return [found[key] if result is None else result for result, key in zip(out, keys, strict=True)]

    def _model(self, windows: Sequence[Window]) -> list[Result]:
        """The model's work on ``windows``, in one batch: count matrix, feature rows, detector (explanations: when a
        document needs them, :meth:`_explain`)."""
        counts = [w.counts for w in windows]
        space = self.space
        scores, components, reasons = self.detector.score_and_reasons(space.transform(counts))
        # Each component's values as Python floats, rounded once per batch (the same round() of the same floats
        # as per window), then zipped into one dict per window.
        names = list(components)
        rounded = [rounded6(components[name].tolist()) for name in names]
        parts = [dict(zip(names, values, strict=True)) for values in zip(*rounded, strict=True)] if names else (
            [{} for _ in windows])
        texts = {reason: reason_text(reason) for reason in set(reasons)}
        values = scores.tolist()
        return [Result(value, score, part, reason, texts[reason], holds_new(window, space))
                for value, score, part, reason, window in zip(values, rounded6(values), parts, reasons, counts,
                                                              strict=True)]

    def _explain(self, windows: Sequence[Window], results: Sequence[Result]) -> None:
        """Give each of ``results`` lacking them its explanation entries, in one :func:`models.explain.explain_batch`
        pass over a window of each (alike windows are explained alike: from their counts and texts alone)."""
        todo: dict[int, tuple[Result, Window]] = {}
        for window, result in zip(windows, results, strict=True):
            if result.explanation is None:
                todo.setdefault(id(result), (result, window))
        if todo:
            pending = list(todo.values())
            explained = explain_batch([w.counts for _, w in pending], self.space, [w.templates for _, w in pending])
            for (result, _), explanation in zip(pending, explained, strict=True):
                result.explanation = explanation

    def unseen_lines(self, windows: Sequence[Window]) -> int:
        """How many lines of these windows have a template the model does not know (a metric: new code or junk)."""
        return sum(sum(self.space.unseen(w.counts).values()) for w in windows)

    @staticmethod
    def folded_lines(windows: Sequence[Window]) -> int:
        """Of those, the lines counted under a window's one "other" id (past the unseen templates it keeps)."""
        return sum(w.counts.get(OTHER_UNSEEN_ID, 0) for w in windows)

    def _iso_utc(self, ts: float) -> str:
        """:func:`pipeline.records.iso_utc`, memoised (rendered by its cheaper equal, ``iso_utc_fast``)."""
        text = self._iso.get(ts)
        if text is None:
            text = iso_utc_fast(ts)
            if len(self._iso) >= 4096:
                self._iso.clear()
            self._iso[ts] = text
        return text
