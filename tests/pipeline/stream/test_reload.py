"""Hot reload without servers: a real directory registry, real bundles, the worker loop over a FakeConsumer.

A promotion is picked up between batches (later documents carry the new ``model.version``, the info metric
follows, the reload counter counts); a corrupted or incompatible version is refused with a log line and a
metric while the old model keeps serving; a rollback swaps back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from models.artifacts import ModelBundle
from models.detector import WindowDetector
from models.features import FeatureSpace
from models.registry import ModelRegistry
from pipeline.config import PipelineSettings, WorkerOptions
from pipeline.scoring import Scorer
from pipeline.stages.templates import TemplateMiner
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.reload import ModelWatcher, SwitchableTag, incompatibility, prepare
from pipeline.stream.worker import Worker, _Rebalance
from tests.fakes import FakeConsumer, FakeElasticsearch, RecordingProducer, worker_context

TP0 = TopicPartition("logs", 0)
SETTINGS = PipelineSettings(entity_regex=r"user (?P<user>\w+)", window="session", session_gap=10.0,
                            max_session=1000.0, allowed_lateness=3.0)
USERS = [f"u{i}x" for i in range(12)]


def make_bundle(seed: int, settings: PipelineSettings = SETTINGS) -> ModelBundle:
    """A real model over ``user NAME did VERB`` lines whose windows hold login/read/logout only."""
    miner = TemplateMiner()
    messages = [f"user {u} did {v}" for u in USERS for v in ("login", "read", "logout")]
    for message in messages:
        miner.learn(message)
    ids = {v: miner.match(f"user zz did {v}").template_id for v in ("login", "read", "logout")}
    train = [{ids["login"]: 1, ids["logout"]: 1}, {ids["login"]: 1, ids["read"]: 2, ids["logout"]: 1},
             {ids["login"]: 1}, {ids["login"]: 1, ids["read"]: 1}] * 15
    space = FeatureSpace().fit(train, miner.templates())
    detector = WindowDetector(n_estimators=30, random_state=seed).fit(space.transform(train))
    return ModelBundle(miner_state=miner.to_state(), features=space, detector=detector, settings=settings.to_dict())


def line(ts: float, user: str, verb: str) -> bytes:
    return json.dumps({"@timestamp": ts, "message": f"user {user} did {verb}"}).encode()


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.registry = ModelRegistry(tmp_path / "models")
        self.v1 = self.registry.publish(make_bundle(1))
        bundle = self.registry.load()
        self.es = FakeElasticsearch()
        self.consumer = FakeConsumer((TP0,), [])
        opts = WorkerOptions(topics=("logs",), settings=SETTINGS, commit_interval=0.0, model_poll_interval=3600.0)
        miner = TemplateMiner.from_state(bundle.miner_state)
        ctx = worker_context(opts, Scorer(bundle), SwitchableTag(miner.match), self.es, RecordingProducer())
        ctx.metrics.set_model(bundle.version, bundle.created)
        self.metrics: WorkerMetrics = ctx.metrics
        self.worker = Worker(ctx, consumer=self.consumer, models=self.registry)
        self.consumer.subscribe(topics=["logs"], listener=_Rebalance(self.worker))
        self.worker.step()  # assignment
        self.t = 1000.0

    def session(self, user: str) -> None:
        """An anomalous session for ``user`` (a crash), closed by the next record's watermark."""
        self.consumer.append(TP0, line(self.t, user, "login"), line(self.t + 1, user, "crash"),
                             line(self.t + 1, user, "crash"), line(self.t + 30, "closer" + user, "login"))
        self.t += 40
        self.worker.step()

    def versions_of(self) -> dict[str, str]:
        return {d["entity"]["id"]: d["model"]["version"] for d in self.es.all_docs().values()}

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def test_a_promoted_model_is_swapped_in_between_batches(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.session("alice")
    assert rig.versions_of() == {"alice": rig.v1}
    v2 = rig.registry.publish(make_bundle(2))  # promoted
    prepared = rig.worker.watcher.check()  # what the watcher thread does, off the loop
    assert prepared is not None and prepared.bundle.version == v2
    assert rig.worker.ctx.bundle.version == rig.v1  # not before the next step
    rig.session("bob")
    assert rig.versions_of() == {"alice": rig.v1, "bob": v2}
    assert rig.sample("logwarden_worker_model_info", version=v2) == 1
    assert rig.sample("logwarden_worker_model_reloads_total") == 1
    assert rig.worker.watcher.check() is None  # already serving: nothing to do


def test_a_corrupted_version_is_refused_and_the_old_model_keeps_serving(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path)
    assert rig.sample("logwarden_worker_model_reloads_refused_total", reason="checksum") == 0  # pre-created
    assert rig.sample("logwarden_worker_model_reloads_refused_total", reason="incompatible_settings") == 0
    bad = rig.registry.publish(make_bundle(3), make_current=False)
    forest = rig.registry.path_of(bad) / "forest.skops"
    forest.write_bytes(forest.read_bytes()[:-10])
    (rig.registry.root / "CURRENT").write_text(bad + "\n")  # a pointer switched behind the registry's back
    with caplog.at_level(logging.ERROR, logger="pipeline.stream.reload"):
        assert rig.worker.watcher.check() is None
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"refusing model {bad} (checksum)" in record.getMessage() and "checksum mismatch" in record.getMessage()
    assert rig.sample("logwarden_worker_model_reloads_refused_total", reason="checksum") == 1
    assert rig.worker.watcher.check() is None  # not retried while the pointer stays
    assert rig.sample("logwarden_worker_model_reloads_refused_total", reason="checksum") == 1
    rig.session("carol")
    assert rig.versions_of() == {"carol": rig.v1}

    from_, to = rig.registry.rollback()  # back to v1, which is serving: nothing to swap
    assert (from_, to) == (bad, rig.v1) and rig.worker.watcher.check() is None


def test_rollback_swaps_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    v2 = rig.registry.publish(make_bundle(2))
    rig.worker.watcher.check()
    rig.session("alice")
    rig.registry.rollback()
    assert rig.worker.watcher.check() is not None
    rig.session("bob")
    assert rig.versions_of() == {"alice": v2, "bob": rig.v1}
    assert rig.sample("logwarden_worker_model_reloads_total") == 2


def test_a_model_with_other_window_settings_is_incompatible(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    other = make_bundle(4, PipelineSettings(**{**SETTINGS.to_dict(), "session_gap": 99.0}))
    rig.registry.publish(other)
    assert rig.worker.watcher.check() is None
    assert rig.sample("logwarden_worker_model_reloads_refused_total", reason="incompatible_settings") == 1
    rig.session("dan")
    assert rig.versions_of() == {"dan": rig.v1}


def test_incompatibility_rules() -> None:
    old = SETTINGS.to_dict()
    assert incompatibility(old, old, SETTINGS, frozenset()) is None
    assert incompatibility({**old, "contamination": 0.1}, old, SETTINGS, frozenset()) is None  # model-only
    new = {**old, "entity_regex": "host=(\\w+)"}
    assert "entity_regex" in (incompatibility(new, old, SETTINGS, frozenset()) or "")
    assert incompatibility(new, old, SETTINGS, frozenset({"entity_regex"})) is None  # the flag wins anyway


def test_a_miner_state_of_other_masking_rules_fails_preparation() -> None:
    bundle = make_bundle(1)
    bundle.miner_state = {**bundle.miner_state, "masking_version": -1}
    with pytest.raises(Exception, match="masking rules"):
        prepare(bundle)


def test_the_watcher_thread_prepares_off_the_loop(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.publish(make_bundle(1))
    serving = registry.load()
    metrics = WorkerMetrics()
    watcher = ModelWatcher(registry, serving, SETTINGS, metrics, interval=0.05)
    v2 = registry.publish(make_bundle(2))
    watcher.start()
    try:
        import time  # noqa: PLC0415

        deadline = time.monotonic() + 20
        prepared: Any = None
        while prepared is None and time.monotonic() < deadline:
            prepared = watcher.take()
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert prepared is not None and prepared.bundle.version == v2 and watcher.serving_version == v2


class FlakySource:
    """A registry that cannot be reached, then serves ``bundle`` as current."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.down = True

    def current_version(self) -> str | None:
        from pipeline.errors import LogwardenError  # noqa: PLC0415

        if self.down:
            raise LogwardenError("cannot connect to Kafka (scripted)")
        return self.bundle.version

    def load(self, version: str | None = None) -> ModelBundle:
        return self.bundle


def test_an_unreachable_registry_is_retried_not_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.publish(make_bundle(1))
    serving = registry.load()
    new = make_bundle(2)
    new.version = "v-new"
    source = FlakySource(new)
    metrics = WorkerMetrics()
    watcher = ModelWatcher(source, serving, SETTINGS, metrics)
    assert watcher.check() is None
    assert metrics.registry.get_sample_value("logwarden_worker_model_reloads_refused_total",
                                             {"reason": "load_error"}) == 0
    source.down = False
    assert watcher.check() is not None


def test_refusal_reasons_name_what_failed(tmp_path: Path) -> None:
    import hashlib  # noqa: PLC0415

    from models.errors import ModelError  # noqa: PLC0415
    from pipeline.stream.reload import refusal_reason  # noqa: PLC0415

    registry = ModelRegistry(tmp_path)
    version = registry.publish(make_bundle(1))
    directory = registry.path_of(version)

    def reason() -> str:
        with pytest.raises(ModelError) as caught:
            prepare(ModelRegistry(tmp_path).load(version))
        return refusal_reason(caught.value)

    features = directory / "features.json"
    original = features.read_bytes()
    features.write_bytes(original + b" ")
    assert reason() == "checksum"
    features.write_bytes(b"{not json")  # a malformed file whose manifest checksum was rewritten to match
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["features.json"] = hashlib.sha256(b"{not json").hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert reason() == "load_error"
    assert refusal_reason(ModelError("x.skops holds types Logwarden does not trust: ['os.system']")) == "untrusted_type"
    assert refusal_reason(ModelError("built with masking rules v0, this version uses v3")) == "incompatible_settings"


def test_a_version_refused_at_start_is_not_tried_again_until_the_pointer_moves(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The worker started on the last good version because the current one is damaged (one error line then,
    ``WorkerContext.refuse_current``): the watcher must not log the same refusal at every poll."""
    registry = ModelRegistry(tmp_path / "reg")
    good = registry.publish(make_bundle(1))
    bad = registry.publish(make_bundle(2))
    (registry.path_of(bad) / "features.json").write_bytes(b"")
    serving, refused = registry.load_last_good()
    assert serving.version == good and [v for v, _ in refused] == [bad]
    watcher = ModelWatcher(registry, serving, SETTINGS, WorkerMetrics(), refused=bad)
    with caplog.at_level(logging.ERROR, logger="pipeline.stream.reload"):
        assert watcher.check() is None and watcher.check() is None
    assert not caplog.records
    fixed = registry.publish(make_bundle(3))  # a good version promoted: taken as usual
    prepared = watcher.check()
    assert prepared is not None and prepared.bundle.version == fixed
