"""The manifest names the distribution that really provides the template miner's module; crafted model files
(a pickle, a skops file with types no model holds, a changed byte) are refused before anything runs."""

from __future__ import annotations

import json
import os
import pickle
from importlib import metadata
from pathlib import Path

import drain3
import pytest
import skops.io as sio

from models.artifacts import library_versions, load_bundle, module_distribution, sha256_file
from models.errors import ModelError
from models.registry import ModelRegistry


def test_miner_distribution_is_the_one_that_installed_the_drain3_module() -> None:
    name, version = module_distribution("drain3")
    # The fork keeps the import name `drain3`: asking importlib.metadata for "drain3" would find nothing.
    assert name == "drain3-improved"
    assert version == metadata.version("drain3-improved")
    assert int(version.split(".")[1]) >= 10
    assert drain3.__file__ is not None


def test_unknown_module_is_reported_not_raised() -> None:
    assert module_distribution("no_such_module_for_logwarden") == ("no_such_module_for_logwarden", "unknown")


def test_library_versions_key_the_miner_by_distribution() -> None:
    found = library_versions()
    assert found["drain3-improved"] == metadata.version("drain3-improved")
    assert "drain3" not in found
    assert {"python", "logwarden", "scikit-learn", "numpy", "skops"} <= set(found)
    assert "unknown" not in {found[k] for k in ("scikit-learn", "numpy", "skops", "drain3-improved")}


# -- crafted files: only trusted types load, and only when the checksums match ---------------------------------
class Planted:
    """A type no model holds: a skops file naming it must be refused before anything is built."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker


class Exploit:
    """Unpickling this would create the marker file (what a malicious pickle does: run code on load)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (Path.touch, (Path(self.marker),))


def _published(tmp_path: Path) -> Path:
    from tests.models.test_registry import bundle  # noqa: PLC0415 - the registry tests' small model

    registry = ModelRegistry(tmp_path / "m")
    return registry.path_of(registry.publish(bundle()))


def _replace(version_dir: Path, name: str, data: bytes, *, fix_checksum: bool) -> None:
    """Put ``data`` in place of ``name``; with ``fix_checksum`` the manifest is rewritten to match it too."""
    (version_dir / name).write_bytes(data)
    if fix_checksum:
        manifest = json.loads((version_dir / "manifest.json").read_text())
        manifest["files"][name] = sha256_file(version_dir / name)
        (version_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("fix_checksum", [False, True], ids=["checksum-stale", "checksum-rewritten"])
def test_a_pickle_in_place_of_the_forest_is_never_unpickled(tmp_path: Path, fix_checksum: bool) -> None:
    version_dir = _published(tmp_path)
    marker = tmp_path / "pwned"
    _replace(version_dir, "forest.skops", pickle.dumps(Exploit(str(marker))), fix_checksum=fix_checksum)
    match = "malformed: forest.skops cannot be loaded" if fix_checksum else "checksum mismatch for .*forest.skops"
    with pytest.raises(ModelError, match=match):
        load_bundle(version_dir)
    assert not marker.exists(), "the pickle ran"


def test_a_skops_file_with_an_unexpected_type_is_refused(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    crafted = tmp_path / "crafted.skops"
    sio.dump({"forest": Planted("x")}, crafted)
    assert any("Planted" in t for t in sio.get_untrusted_types(file=crafted))
    _replace(version_dir, "forest.skops", crafted.read_bytes(), fix_checksum=True)
    with pytest.raises(ModelError, match=r"holds types Logwarden does not trust: \[.*Planted"):
        load_bundle(version_dir)


def test_a_skops_file_with_a_function_in_it_is_refused(tmp_path: Path) -> None:
    """A function (os.system here) is the classic payload; skops names it untrusted, and so do we."""
    version_dir = _published(tmp_path)
    crafted = tmp_path / "crafted.skops"
    sio.dump({"call": os.system}, crafted)
    _replace(version_dir, "forest.skops", crafted.read_bytes(), fix_checksum=True)
    with pytest.raises(ModelError, match="does not trust"):
        load_bundle(version_dir)


def test_a_model_file_not_in_the_manifest_or_changed_by_a_byte_is_refused(tmp_path: Path) -> None:
    version_dir = _published(tmp_path)
    data = bytearray((version_dir / "features.json").read_bytes())
    data[-2:-1] = b" "
    (version_dir / "features.json").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch for .*features.json"):
        load_bundle(version_dir)
    version_dir = _published(tmp_path / "second")
    manifest = json.loads((version_dir / "manifest.json").read_text())
    del manifest["files"]["detector.json"]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not list detector.json"):
        load_bundle(version_dir)
