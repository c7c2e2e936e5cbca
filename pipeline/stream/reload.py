"""Hot model reload: watch the registry's current pointer, prepare the new model off the poll thread, swap
between batches.

A :class:`ModelWatcher` thread reads the pointer (``CURRENT`` of a directory registry) every
``--model-poll-interval``. When it names a version other than the one serving, the thread loads it — which
verifies every sha256 and refuses untrusted skops types (:func:`models.artifacts.load_bundle`) — rebuilds its
template miner and scorer, and checks that it fits the running worker (:func:`incompatibility`). The result
waits in one slot; the worker loop takes it between two polls (:meth:`pipeline.stream.worker.Worker.step`),
so a batch is always scored by one model, and every window scored after the swap carries the new
``model.version`` (windows open at the swap are scored by the new model when they close).

A version that fails is **refused**: one error log line, ``logwarden_worker_model_reloads_refused_total``
by reason (``checksum``: a file differs from its manifest sha256 or is missing; ``untrusted_type``: the forest
holds a type skops is not allowed to load; ``incompatible_settings``: other decoding, entity or window
settings, or another masking-rules version; ``load_error``: anything else, e.g. a malformed file or manifest),
and the old model keeps serving. A refused version is not retried until the pointer moves (versions are immutable).

Settings that cut windows (layout, entity rule, window kind and timing...) cannot change under open windows:
a new model whose stored value differs from the serving model's is incompatible, unless the worker runs with
that option set explicitly (flag or config file), which then wins over both models anyway. Such a model needs
a worker restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from models.artifacts import ModelBundle
from models.errors import ModelError
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import TemplateMatch
from pipeline.scoring import Scorer
from pipeline.stages.chain import Tagger
from pipeline.stages.templates import TemplateMiner
from pipeline.stream.metrics import RELOAD_REFUSALS

log = logging.getLogger(__name__)

# ``reason`` label values of ``logwarden_worker_model_reloads_refused_total`` (alert rules match on them).
REFUSAL_REASONS = RELOAD_REFUSALS
# Settings the record chain uses to decode, find entities and cut windows (everything but contamination).
CHAIN_SETTINGS = tuple(name for name in PipelineSettings.__dataclass_fields__ if name != "contamination")


class ModelSource(Protocol):
    """What the watcher needs of a registry (a directory, or the Kafka-topic registry)."""

    def current_version(self) -> str | None: ...

    def load(self, version: str | None = None) -> ModelBundle: ...


class SwitchableTag:
    """The tagger every partition's chain calls; points at the serving model's miner, swapped in place."""

    def __init__(self, target: Tagger) -> None:
        self.target = target

    def __call__(self, message: str) -> TemplateMatch:
        return self.target(message)


@dataclass
class Prepared:
    """A verified model, ready to serve: built off the poll thread."""

    bundle: ModelBundle
    tag: Tagger
    scorer: Scorer


def prepare(bundle: ModelBundle) -> Prepared:
    """Miner and scorer of ``bundle``; ModelError when its miner state cannot be used."""
    try:
        miner = TemplateMiner.from_state(bundle.miner_state)
    except ValueError as exc:
        raise ModelError(f"model {bundle.version}: {exc}") from None
    return Prepared(bundle, miner.match, Scorer(bundle))


def refusal_reason(exc: Exception) -> str:
    """The metric's reason for a version that failed to load (see :data:`REFUSAL_REASONS`)."""
    text = str(exc)
    if "checksum mismatch" in text or "model file missing" in text or "does not list" in text:
        return "checksum"
    if "does not trust" in text:
        return "untrusted_type"
    if "masking rules" in text:
        return "incompatible_settings"  # another masking-rules version: template ids would not match
    return "load_error"


def incompatibility(new: Mapping[str, Any], old: Mapping[str, Any], effective: PipelineSettings,
                    explicit: frozenset[str]) -> str | None:
    """Why a model with stored settings ``new`` cannot replace one with ``old`` in a running worker, or None."""
    running = effective.to_dict()
    for name in CHAIN_SETTINGS:
        if name in explicit:
            continue
        if new.get(name, running[name]) != old.get(name, running[name]):
            return (f"its {name} is {new.get(name)!r}, the serving model's is {old.get(name)!r}; restart the worker "
                    "to change it")
    return None


class ModelWatcher:
    """Polls ``source`` for a new current version and prepares it; :meth:`take` hands it to the loop."""

    def __init__(self, source: ModelSource, serving: ModelBundle, settings: PipelineSettings, metrics: Any,
                 interval: float = 10.0, explicit: frozenset[str] = frozenset(), refused: str | None = None) -> None:
        """``refused``: a version already refused (the current one, when it failed to load at start)."""
        self.source = source
        self.interval = interval
        self.settings = settings
        self.explicit = explicit
        self.metrics = metrics
        self.serving_version = serving.version
        self._serving_settings = dict(serving.settings)
        self._refused: str | None = refused
        self._ready: Prepared | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for reason in REFUSAL_REASONS:  # the series exist at 0 before the first refusal
            metrics.model_reloads_refused.labels(reason)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="logwarden-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then release the source's connections (the topic registry's tail consumer)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                return  # still inside a read: leave the source to the daemon thread
        close = getattr(self.source, "close", None)
        if callable(close):
            close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must never take the worker down
                log.exception("model watcher: unexpected error; the serving model stays")

    def check(self) -> Prepared | None:
        """One poll: prepare the current version when it is new; returns what it prepared (None otherwise)."""
        try:
            version = self.source.current_version()
        except (OSError, ModelError, LogwardenError) as exc:
            log.warning("cannot read the current model pointer (retrying at the next poll): %s", exc)
            return None
        with self._lock:
            pending = self._ready.bundle.version if self._ready is not None else None
        if version is None or version in (self.serving_version, pending, self._refused):
            if version == self.serving_version:
                self._refused = None
            return None
        try:
            bundle = self.source.load(version)
            prepared = prepare(bundle)
        except (ModelError, OSError) as exc:
            self._refuse(version, refusal_reason(exc), str(exc))
            return None
        except LogwardenError as exc:  # the registry could not be read (Kafka away): not the model's fault
            log.warning("cannot load model %s yet (retrying at the next poll): %s", version, exc)
            return None
        problem = incompatibility(bundle.settings, self._serving_settings, self.settings, self.explicit)
        if problem is not None:
            self._refuse(version, "incompatible_settings", problem)
            return None
        with self._lock:
            self._ready = prepared
        log.info("model %s verified and ready; switching from %s between batches", version, self.serving_version)
        return prepared

    def _refuse(self, version: str, reason: str, detail: str) -> None:
        self._refused = version
        self.metrics.model_reloads_refused.labels(reason).inc()
        log.error("refusing model %s (%s): %s; model %s keeps serving", version, reason, detail,
                  self.serving_version)

    def take(self) -> Prepared | None:
        """The prepared model, once; the caller swaps it in and it becomes the serving one."""
        with self._lock:
            prepared, self._ready = self._ready, None
        if prepared is not None:
            self.serving_version = prepared.bundle.version
            self._serving_settings = dict(prepared.bundle.settings)
        return prepared
