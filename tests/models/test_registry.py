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


# --- corrupted files: detected, reported, and the last good version serves (issue 13) -------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with three published versions (the newest current), copied by each test that breaks it."""
    root = tmp_path_factory.mktemp("published")
    reg = ModelRegistry(root)
    for _ in range(3):
        reg.publish(bundle())
    return root


def copy_of(published: Path, tmp_path: Path) -> ModelRegistry:
    import shutil  # noqa: PLC0415

    shutil.copytree(published, tmp_path / "m")
    return ModelRegistry(tmp_path / "m")

CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) // 2],
    "zero_length": lambda data: b"",
    "flipped_byte": lambda data: data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:],
    "binary_junk": lambda data: b"\x00\xff\xfe" * 50,
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("name", ["miner.json", "features.json", "detector.json", "forest.skops", "settings.json",
                                  "manifest.json"])
def test_every_corrupted_model_file_is_refused_with_one_line(published: Path, tmp_path: Path, name: str,
                                                             kind: str) -> None:
    reg = copy_of(published, tmp_path)
    v = reg.current_version()
    assert v is not None
    path = reg.path_of(v) / name
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))
    with pytest.raises(ModelError) as caught:
        reg.load()
    message = str(caught.value)
    assert "\n" not in message and str(reg.path_of(v)) in message, message


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupted_current_model_falls_back_to_the_last_good_one(published: Path, tmp_path: Path,
                                                                   kind: str) -> None:
    reg = copy_of(published, tmp_path)
    v1, v2, v3 = reg.history()
    for version in (v3, v2):  # the newest two are both broken
        path = reg.path_of(version) / "forest.skops"
        path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))
    loaded, refused = reg.load_last_good()
    assert loaded.version == v1
    assert [version for version, _ in refused] == [v3, v2]
    assert all("\n" not in why and why for _, why in refused)
    assert reg.current_version() == v3  # reading never rewrites the pointer: that is the operator's call


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage", b"../../etc\n", b"20261201T000000Z-ab"])
def test_an_unreadable_current_pointer_falls_back_to_the_history(published: Path, tmp_path: Path,
                                                                  content: bytes) -> None:
    reg = copy_of(published, tmp_path)
    newest = reg.history()[-1]
    (reg.root / "CURRENT").write_bytes(content)
    loaded, refused = reg.load_last_good()
    assert loaded.version == newest
    assert len(refused) == (1 if content.strip() else 0)


def test_no_good_version_left_is_one_clear_error(published: Path, tmp_path: Path) -> None:
    reg = copy_of(published, tmp_path)
    v = reg.current_version()
    assert v is not None
    (reg.path_of(v) / "detector.json").write_bytes(b"")
    (reg.root / "HISTORY").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match=rf"no usable model in {reg.root}: {v}: checksum mismatch") as caught:
        reg.load_last_good()
    assert "\n" not in str(caught.value)


def test_pointers_and_versions_are_written_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp file, fsync, rename, fsync of the directory: a crash right after a promotion or a publish never
    leaves an empty CURRENT or a version directory whose files were not yet on disk."""
    import os  # noqa: PLC0415

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    reg = ModelRegistry(tmp_path)
    v = reg.publish(bundle())
    final = reg.path_of(v)
    names = {Path(p).name for p in synced}
    assert {"miner.json", "features.json", "detector.json", "forest.skops", "settings.json",
            "manifest.json"} <= names
    assert str(tmp_path / "versions") in synced  # the rename of the version directory is durable
    assert str(tmp_path) in synced  # ...and so is the rename of CURRENT and HISTORY
    assert any(Path(p).name.startswith(".CURRENT.") for p in synced)
    assert final.is_dir() and not list((tmp_path / "versions").glob(".*"))
    assert not list(tmp_path.glob(".CURRENT.*")) and not list(tmp_path.glob(".HISTORY.*"))
