"""Saving and loading one model version as a directory of checked files.

A model version is a directory holding:

* ``miner.json``     — the template miner's state (JSON built by ``pipeline.stages.templates``; opaque here);
* ``features.json``  — vocabulary, template texts and per-template statistics (:class:`FeatureSpace`);
* ``detector.json``  — detector parameters and threshold;
* ``forest.skops``   — the fitted ``IsolationForest``, in skops format;
* ``forest_paths.npz`` — the same forest's flattened trees (:mod:`models.forest_paths`), numpy arrays only:
  derived data, kept so that ``detect`` scores without importing scikit-learn (``load_bundle(...,
  lazy_forest=True)``). Optional: a model saved before it existed, or one read from a Kafka registry topic
  (which carries the five files above only, so that older workers keep reading new models), loads the forest;
* ``settings.json``  — the decoding / entity / window settings the model was trained with;
* ``manifest.json``  — version id, created time, the training source (``source``: kind, name, time range),
  training counts (``stats``), contamination and threshold (``model``), library versions, the evaluation on
  labelled data when there was one (``evaluation``) and the sha256 of every file above (``files``; the
  optional ``forest_paths.npz`` under ``derived``, which readers before it never look at).

No plain pickle anywhere: JSON for our own state, skops for the forest, ``.npz`` read with
``allow_pickle=False`` for the flattened trees. skops refuses types it does not
trust; we trust exactly one extra type, ``sklearn.tree._tree.Tree``, the forest's tree structure.
On load every file's sha256 is checked against the manifest before anything is parsed, so a truncated
or tampered file is refused with a clear error instead of a half-loaded model.

Files are written durably: :func:`save_bundle` fsyncs every file and the directory (the registry then renames
the directory into place and fsyncs its parent), and :func:`write_atomic` is temp file + fsync + rename + fsync
of the directory, so a crash or power cut leaves either the old file or the new one, never an empty or
half-written one that the checksums would then have to catch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.detector import WindowDetector
from models.errors import ModelError
from models.features import FeatureSpace
from models.forest_paths import ForestPaths

FORMAT_VERSION = 3  # the newest format written
# 2: calibrated components (detector.json holds tail statistics); 3: as 2, with fractional presence counts
# (the second pass of a fit with an estimated contamination). A model whose counts are whole is still written
# as 2: format-2 readers parse fractional counts as integers, truncating them, so they must refuse a format 3
# model (and do: they read only 2), while a clean-trained model keeps loading in them.
READABLE_FORMATS = (2, 3)
TRUSTED_SKOPS_TYPES = frozenset({"sklearn.tree._tree.Tree"})
DATA_FILES = ("miner.json", "features.json", "detector.json", "forest.skops", "settings.json")
PATHS_FILE = "forest_paths.npz"  # derived, optional (see the module docstring)
LIBRARIES = ("logwarden", "scikit-learn", "numpy", "skops")
# The template miner is imported as ``drain3`` but may be installed by more than one distribution
# (``drain3-improved``, the maintained fork, or the original ``drain3``): the manifest names the one
# that actually provided the module, since the state in ``miner.json`` depends on its code.
MINER_MODULE = "drain3"


@dataclass
class ModelBundle:
    """Everything one model version holds, in memory."""

    miner_state: dict[str, Any]
    features: FeatureSpace
    detector: WindowDetector
    settings: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    created: str = ""
    # Where the training lines came from: {"kind": "files"|"kafka"|"elasticsearch", "name": ..., "since": ...,
    # "until": ...}; and precision/recall/F1/PR-AUC on labelled data (``train --labels --eval``), if any.
    source: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def module_distribution(module: str = MINER_MODULE) -> tuple[str, str]:
    """``(distribution name, version)`` of the installed distribution that provides ``module``.

    Asking ``importlib.metadata`` for a distribution by the module's name is wrong whenever a fork keeps
    the import name; the files each distribution installed are the ground truth. Gives ``(module,
    "unknown")`` when no installed distribution claims it (a source checkout on ``sys.path``).
    """
    names = metadata.packages_distributions().get(module, [])
    for name in sorted(set(names)):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return module, "unknown"


def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries a saved model depends on, keyed by distribution name."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    miner, version = module_distribution()
    found[miner] = version
    return found


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes the renames and creations in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file beside it, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(2)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def _format_of(state: dict[str, Any]) -> int:
    """The oldest format that holds ``state`` (see :data:`READABLE_FORMATS`)."""
    present = state.get("stats", {}).get("present", [])
    return 3 if any(isinstance(x, float) for x in present) else 2


def save_bundle(directory: Path, bundle: ModelBundle) -> dict[str, Any]:
    """Write ``bundle`` into an empty ``directory``; returns the manifest written."""
    directory.mkdir(parents=True, exist_ok=False)
    _write_json(directory / "miner.json", bundle.miner_state)
    _write_json(directory / "features.json", bundle.features.to_dict())
    state = bundle.detector.fitted_state()
    _write_json(directory / "detector.json", {"params": bundle.detector.get_params(), "state": state})
    import skops.io as sio  # noqa: PLC0415 - skops pulls in much of scikit-learn: only when a model is written

    sio.dump(bundle.detector.forest_, directory / "forest.skops")
    arrays: dict[str, Any] = ForestPaths(bundle.detector.forest_).arrays()
    with open(directory / PATHS_FILE, "wb") as fh:
        np.savez(fh, **arrays)
    _write_json(directory / "settings.json", bundle.settings)
    manifest = {
        "format": _format_of(state),
        "version": bundle.version,
        "created": bundle.created or datetime.now(UTC).isoformat(timespec="seconds"),
        "source": bundle.source,
        "stats": bundle.stats,
        "model": {"contamination": getattr(bundle.detector, "contamination", None),
                  "threshold": _number(getattr(bundle.detector, "threshold_", None))},
        "evaluation": bundle.evaluation,
        "libraries": library_versions(),
        "files": {name: sha256_file(directory / name) for name in DATA_FILES},
        "derived": {PATHS_FILE: sha256_file(directory / PATHS_FILE)},
    }
    _write_json(directory / "manifest.json", manifest)
    for name in (*DATA_FILES, PATHS_FILE, "manifest.json"):
        fsync_path(directory / name)
    fsync_path(directory)
    return manifest


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{directory} is not a model version: no manifest.json") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{path} is not a Logwarden manifest")
    return manifest


def verify(directory: Path, manifest: dict[str, Any]) -> None:
    """Check every data file against the manifest's sha256; raise ModelError on the first mismatch."""
    for name in DATA_FILES:
        expected = manifest["files"].get(name)
        path = directory / name
        if expected is None:
            raise ModelError(f"manifest of {directory} does not list {name}")
        if not path.is_file():
            raise ModelError(f"model file missing: {path}")
        _verify_file(path, expected)


def _verify_file(path: Path, expected: Any) -> None:
    if sha256_file(path) != expected:
        raise ModelError(f"checksum mismatch for {path}: the file changed after the model was saved")


def _load_forest(directory: Path) -> Any:
    """The ``IsolationForest`` of ``forest.skops``, refusing every type but the trusted ones (skops)."""
    import skops.io as sio  # noqa: PLC0415 - see save_bundle

    forest_path = directory / "forest.skops"
    try:
        untrusted = set(sio.get_untrusted_types(file=forest_path))
    except Exception as exc:  # skops raises whatever its zip/JSON readers raise
        raise _malformed(directory, "forest.skops", exc) from None
    unexpected = untrusted - TRUSTED_SKOPS_TYPES
    if unexpected:
        raise ModelError(f"{forest_path} holds types Logwarden does not trust: {sorted(unexpected)}")
    try:
        return sio.load(forest_path, trusted=sorted(untrusted))
    except Exception as exc:
        raise _malformed(directory, "forest.skops", exc) from None


def _read_paths(path: Path, load_forest: Any) -> ForestPaths:
    """The flattened trees of ``forest_paths.npz``: numpy arrays only (``allow_pickle=False``), checked."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return ForestPaths.from_arrays(arrays, load_forest)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def load_bundle(directory: Path, *, lazy_forest: bool = False) -> ModelBundle:
    """Load and verify one model version directory.

    ``lazy_forest``: when the model has its flattened trees (``forest_paths.npz``), score with them and load the
    forest itself (skops, hence scikit-learn and scipy: about 2 s of CPU) only if it is asked for. Every
    checksum is verified first either way; what waits is parsing ``forest.skops`` and its check of trusted
    types, so a forest rewritten together with its checksum is refused when it is loaded rather than here.
    ``logwarden detect`` loads lazily; the registry's check after a publish and the streaming worker do not.
    """
    manifest = read_manifest(directory)
    if manifest.get("format") not in READABLE_FORMATS:
        raise ModelError(f"{directory}: model format {manifest.get('format')!r} is not a format this Logwarden reads "
                         f"({' or '.join(map(str, READABLE_FORMATS))}); retrain the model")
    verify(directory, manifest)
    derived = manifest.get("derived")
    paths_sha = derived.get(PATHS_FILE) if lazy_forest and isinstance(derived, dict) else None
    lazy = paths_sha is not None and (directory / PATHS_FILE).is_file()  # absent: read from a registry topic
    if lazy:
        _verify_file(directory / PATHS_FILE, paths_sha)
    # The checksums only prove the files are the ones saved; a file saved malformed (or rewritten with its
    # checksum) must still end in one clear error, not a KeyError from deep inside a constructor.
    name = PATHS_FILE if lazy else "forest.skops"
    try:
        if lazy:
            def load() -> Any:
                return _load_forest(directory)

            paths: ForestPaths | None = _read_paths(directory / PATHS_FILE, load)
            forest: Any = load
        else:
            paths, forest = None, _load_forest(directory)
        name = "detector.json"
        det = _read_json(directory / name)
        detector = WindowDetector.restore(det["params"], det["state"], forest, paths)
        if paths is not None and paths.n_features != 2 * detector.n_templates_ + 1:
            name = PATHS_FILE
            raise ValueError(f"trees read {paths.n_features} columns, the detector has {detector.n_templates_} "
                             "templates")
        name = "features.json"
        features = FeatureSpace.from_dict(_read_json(directory / name))
        if not len(features.vocabulary_) == len(features.mean_) == len(features.std_):
            raise ValueError("vocabulary, mean and std differ in length")
        name = "settings.json"
        settings = _read_json(directory / name)
        name = "miner.json"
        miner_state = _read_json(directory / name)
        if not isinstance(settings, dict) or not isinstance(miner_state, dict):
            raise TypeError("settings.json and miner.json must hold JSON objects")
    except ModelError:
        raise
    except Exception as exc:
        raise _malformed(directory, name, exc) from None
    return ModelBundle(
        miner_state=miner_state,
        features=features,
        detector=detector,
        settings=settings,
        stats=manifest.get("stats", {}),
        version=str(manifest.get("version", directory.name)),
        created=str(manifest.get("created", "")),
        source=dict(manifest.get("source") or {}),
        evaluation=dict(manifest.get("evaluation") or {}),
    )


def _malformed(directory: Path, name: str, exc: Exception) -> ModelError:
    detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return ModelError(f"model {directory} is malformed: {name} cannot be loaded ({detail}); "
                      "retrain it or make another version current")
