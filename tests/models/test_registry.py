from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import ModelBundle, load_bundle
from models.detector import WindowDetector
from models.errors import ModelError
from models.features import FeatureSpace
from models.registry import ModelRegistry


def bundle() -> ModelBundle:
    windows = [{"A": i % 3 + 1, "B": 1} for i in range(50)]
    space = FeatureSpace().fit(windows, {"A": "a", "B": "b"})
    det = WindowDetector(n_estimators=20).fit(space.transform(windows))
    return ModelBundle(miner_state={"clusters": []}, features=space, detector=det,
                       settings={"window": "session"}, stats={"lines": 100, "windows": 50})


def test_publish_load_roundtrip(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "m")
    b = bundle()
    v1 = reg.publish(b)
    assert reg.current_version() == v1 and reg.versions() == [v1]
    loaded = reg.load()
    assert loaded.version == v1 and loaded.settings == {"window": "session"}
    X = b.features.transform([{"A": 1, "B": 1}, {"A": 9}])
    assert np.allclose(loaded.detector.score(X), b.detector.score(X))
    manifest = json.loads((reg.path_of(v1) / "manifest.json").read_text())
    assert set(manifest["files"]) == {"miner.json", "features.json", "detector.json", "forest.skops", "settings.json"}
    assert manifest["stats"]["lines"] == 100 and "scikit-learn" in manifest["libraries"]


def test_second_version_switches_current_and_can_roll_back(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    v2 = reg.publish(bundle())
    assert v1 != v2 and reg.current_version() == v2
    reg.set_current(v1)
    assert reg.load().version == v1
    with pytest.raises(ModelError, match="no model version"):
        reg.set_current("nope")


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.publish(bundle())
    path = reg.path_of(v) / "features.json"
    path.write_text(path.read_text().replace("\"a\"", "\"evil\""))
    with pytest.raises(ModelError, match="checksum mismatch"):
        reg.load()


def test_missing_and_empty_registry(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        ModelRegistry(tmp_path / "none").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no current model"):
        ModelRegistry(tmp_path / "empty").load()
    with pytest.raises(ModelError, match="no manifest"):
        load_bundle(tmp_path / "empty")


def test_history_rollback_walks_back_and_skips_deleted(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1, v2, v3 = (reg.publish(bundle()) for _ in range(3))
    assert reg.history() == [v1, v2, v3]
    assert reg.rollback() == (v3, v2)
    assert reg.current_version() == v2 and reg.load().version == v2
    reg.promote(v3)
    reg.delete(v2)
    assert set(reg.versions()) == {v1, v3}
    assert reg.rollback() == (v3, v1)  # v2 is gone: the one before it
    with pytest.raises(ModelError, match="nothing to roll back to"):
        reg.rollback()


def test_publish_without_promotion_keeps_current(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    v2 = reg.publish(bundle(), make_current=False)
    assert reg.current_version() == v1 and set(reg.versions()) == {v1, v2}
    assert reg.history() == [v1]


def test_current_version_cannot_be_deleted(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    with pytest.raises(ModelError, match="is the current model"):
        reg.delete(v1)
    with pytest.raises(ModelError, match="not a model version id"):
        reg.delete("../etc")
    assert reg.versions() == [v1]


def test_a_version_that_fails_verification_is_never_promoted(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    v2 = reg.publish(bundle(), make_current=False)
    (reg.path_of(v2) / "forest.skops").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="checksum mismatch"):
        reg.promote(v2)
    assert reg.current_version() == v1


def test_manifest_records_source_model_and_evaluation(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    b = bundle()
    b.source = {"kind": "kafka", "name": "logs", "since": "2026-01-01T00:00:00+00:00", "until": None}
    b.evaluation = {"precision": 0.5, "recall": 1.0, "f1": 0.667, "pr_auc": 0.7}
    v = reg.publish(b)
    manifest = reg.manifest(v)
    assert manifest["source"]["kind"] == "kafka" and manifest["evaluation"]["f1"] == 0.667
    assert manifest["model"]["contamination"] == b.detector.contamination
    assert manifest["model"]["threshold"] == pytest.approx(b.detector.threshold_)
    loaded = reg.load(v)
    assert loaded.source == b.source and loaded.evaluation == b.evaluation


def test_the_writer_lock_excludes_a_second_writer(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    other = ModelRegistry(tmp_path, lock_timeout=0.2)
    with reg.locked(), pytest.raises(ModelError, match="locked by another writer"):
        other.promote(v1)


def _promote(root: str, version: str) -> None:
    ModelRegistry(root).promote(version)


def test_a_promotion_waits_for_the_writer_holding_the_lock(tmp_path: Path) -> None:
    import multiprocessing  # noqa: PLC0415
    import time  # noqa: PLC0415

    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(bundle())
    v2 = reg.publish(bundle(), make_current=False)
    v3 = reg.publish(bundle(), make_current=False)
    child = multiprocessing.get_context("spawn").Process(target=_promote, args=(str(tmp_path), v3))
    with reg.locked():
        child.start()  # spawned: a forked child would inherit (and keep) this process's lock
        time.sleep(6.0)  # its interpreter starts, imports and reaches the lock
        assert child.is_alive() and reg.current_version() == v1  # blocked on the lock
        history = reg.history() + [v2]  # this writer's read-modify-write cannot be lost
        reg._write_pointers(v2, history)
    child.join(30)
    assert child.exitcode == 0
    assert reg.history() == [v1, v2, v3] and reg.current_version() == v3
