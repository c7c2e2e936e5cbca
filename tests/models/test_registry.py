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
