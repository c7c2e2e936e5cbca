"""``load_bundle(..., lazy_forest=True)``: a model scores from its saved flattened trees, bit for bit as from
its forest, without importing scikit-learn; the forest loads, with every skops check, only when asked for."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import PATHS_FILE, load_bundle, sha256_file
from models.errors import ModelError
from models.registry import ModelRegistry
from tests.models.test_artifacts import Exploit


def _published(tmp_path: Path) -> Path:
    from tests.models.test_registry import bundle  # noqa: PLC0415 - the registry tests' small model

    registry = ModelRegistry(tmp_path / "m")
    return registry.path_of(registry.publish(bundle()))


def _rows(bundle_dir: Path) -> np.ndarray:
    space = load_bundle(bundle_dir).features
    rng = np.random.default_rng(0)
    windows = [{"A": int(a), "B": int(b), "new": int(n)} for a, b, n in rng.integers(0, 12, size=(200, 3))]
    return space.transform(windows)


def _rewrite(version_dir: Path, name: str, data: bytes) -> None:
    """Put ``data`` in place of ``name`` and its checksum in the manifest (a deliberate forgery)."""
    (version_dir / name).write_bytes(data)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    section = "derived" if name == PATHS_FILE else "files"
    manifest[section][name] = sha256_file(version_dir / name)
    (version_dir / "manifest.json").write_text(json.dumps(manifest))


def test_the_saved_trees_score_exactly_as_the_forest(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["derived"][PATHS_FILE] == sha256_file(version_dir / PATHS_FILE)
    X = _rows(version_dir)
    eager, lazy = load_bundle(version_dir), load_bundle(version_dir, lazy_forest=True)
    expected = eager.detector.score_and_reasons(X)
    got = lazy.detector.score_and_reasons(X)
    assert np.array_equal(got[0], expected[0]) and got[2] == expected[2]
    assert all(np.array_equal(got[1][k], expected[1][k]) for k in expected[1])
    assert "_forest" not in lazy.detector.__dict__  # scored without loading it
    forest = lazy.detector.forest_  # loads on demand, the same forest
    assert len(forest.estimators_) == len(eager.detector.forest_.estimators_)
    assert np.array_equal(forest.score_samples(X[:, :5]), eager.detector.forest_.score_samples(X[:, :5]))


def test_a_lazily_loaded_model_pickles_with_its_forest(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    X = _rows(version_dir)
    lazy = load_bundle(version_dir, lazy_forest=True)
    again = pickle.loads(pickle.dumps(lazy.detector))
    assert np.array_equal(again.score(X), load_bundle(version_dir).detector.score(X))


def test_a_model_without_saved_trees_loads_its_forest(tmp_path: Path) -> None:
    """A model saved before the trees were (or read from a registry topic, which carries the five files)."""
    version_dir = _published(tmp_path)
    X = _rows(version_dir)
    expected = load_bundle(version_dir).detector.score(X)
    (version_dir / PATHS_FILE).unlink()
    lazy = load_bundle(version_dir, lazy_forest=True)
    assert "_forest" in lazy.detector.__dict__
    assert np.array_equal(lazy.detector.score(X), expected)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    del manifest["derived"]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    assert np.array_equal(load_bundle(version_dir, lazy_forest=True).detector.score(X), expected)


def test_a_changed_trees_file_is_refused(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    data = bytearray((version_dir / PATHS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (version_dir / PATHS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"checksum mismatch for .*{PATHS_FILE}"):
        load_bundle(version_dir, lazy_forest=True)


def _npz(path: Path, **arrays: np.ndarray) -> bytes:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return path.read_bytes()


def test_forged_trees_end_in_one_clear_error_and_never_unpickle(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    with np.load(version_dir / PATHS_FILE) as saved:
        good = {name: saved[name] for name in saved.files}
    marker = tmp_path / "pwned"
    forgeries = {
        "a pickled object array": {**good, "values": np.array([Exploit(str(marker))], dtype=object)},
        "a child out of range": {**good, "children": good["children"] + len(good["thresholds"])},
        "an array missing": {k: v for k, v in good.items() if k != "roots"},
        "another dtype": {**good, "thresholds": good["thresholds"].astype(np.float32)},
        "another width": {**good, "n_features": np.asarray(good["n_features"] + 2),
                          "columns": good["columns"]},
    }
    for what, arrays in forgeries.items():
        _rewrite(version_dir, PATHS_FILE, _npz(tmp_path / "forged.npz", **arrays))
        with pytest.raises(ModelError, match=f"malformed: {PATHS_FILE} cannot be loaded"):
            load_bundle(version_dir, lazy_forest=True)
        assert not marker.exists(), what
    _rewrite(version_dir, PATHS_FILE, b"not a zip")
    with pytest.raises(ModelError, match=f"malformed: {PATHS_FILE}"):
        load_bundle(version_dir, lazy_forest=True)
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    _rewrite(version_dir, PATHS_FILE, (tmp_path / "empty.npz").read_bytes())
    with pytest.raises(ModelError, match=f"malformed: {PATHS_FILE}"):
        load_bundle(version_dir, lazy_forest=True)


def test_a_forged_forest_is_refused_when_it_is_loaded(tmp_path: Path) -> None:
    """Lazily, ``forest.skops`` is parsed (with skops's type checks) only when the forest is asked for."""
    version_dir = _published(tmp_path)
    marker = tmp_path / "pwned"
    _rewrite(version_dir, "forest.skops", pickle.dumps(Exploit(str(marker))))
    lazy = load_bundle(version_dir, lazy_forest=True)
    with pytest.raises(ModelError, match="malformed: forest.skops cannot be loaded"):
        _ = lazy.detector.forest_
    assert not marker.exists(), "the pickle ran"
    with pytest.raises(ModelError, match="malformed: forest.skops cannot be loaded"):
        load_bundle(version_dir)  # an eager load refuses it at once, as before


def test_detect_with_a_model_imports_no_scikit_learn(tmp_path: Path, repo_root: Path) -> None:
    """``logwarden detect --model-dir`` scores from the saved trees: no scikit-learn, scipy or skops import
    (about 2 s of CPU before the first line was read)."""
    models = tmp_path / "models"
    hdfs_lines = tmp_path / "hdfs.log"
    sample = (repo_root / "examples" / "hdfs_sample.log").read_bytes().splitlines(keepends=True)
    hdfs_lines.write_bytes(b"".join(sample[:4000]))
    layout = ["--log-format", "<Date> <Time> <Pid> <Level> <Component>: <Content>", "--entity-regex", r"blk_-?\d+"]
    subprocess.run([sys.executable, "-m", "pipeline.cli", "train", str(hdfs_lines), "--model-dir", str(models),
                    *layout], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.cli", "detect", str(hdfs_lines),
                           "--model-dir", str(models), "--all-windows", "--out", str(tmp_path / "out.jsonl")],
                          capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "pipeline.embedded" in modules  # the measurement sees the scoring path
    heavy = sorted(m for m in modules if m.split(".")[0] in ("sklearn", "scipy", "skops"))
    assert not heavy, heavy[:10]
    assert (tmp_path / "out.jsonl").read_text().count("\n") > 0
