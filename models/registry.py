"""A small file-system model registry: one sub-directory per version and a ``CURRENT`` pointer.

Layout::

    MODEL_DIR/
      CURRENT                    one line: the current version id
      versions/<version>/        one model version (see models.artifacts)

Publishing writes the new version into ``versions/.<version>.tmp`` and renames it into place, then
switches ``CURRENT`` by writing a temporary file and ``os.replace``-ing it. Both renames are atomic on
POSIX file systems, so a reader (a worker polling for a new model) sees either the old or the new
version, never a half-written one. Version ids sort by creation time (``YYYYMMDDTHHMMSSZ-xxxxxx``).
Listing, promotion and rollback build on :meth:`ModelRegistry.set_current`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from models.artifacts import ModelBundle, load_bundle, read_manifest, save_bundle
from models.errors import ModelError


def new_version_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class ModelRegistry:
    """Versions of one model family in ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def current_version(self) -> str | None:
        try:
            text = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def path_of(self, version: str) -> Path:
        path = self.versions_dir / version
        if not path.is_dir():
            raise ModelError(f"no model version {version!r} in {self.root}")
        return path

    def publish(self, bundle: ModelBundle, make_current: bool = True) -> str:
        """Save ``bundle`` as a new version (its ``version`` is assigned here) and return the id."""
        bundle.version = bundle.version or new_version_id()
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.versions_dir / f".{bundle.version}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_bundle(tmp, bundle)
        os.replace(tmp, self.versions_dir / bundle.version)
        if make_current:
            self.set_current(bundle.version)
        return bundle.version

    def set_current(self, version: str) -> None:
        read_manifest(self.path_of(version))
        pointer = self.root / "CURRENT"
        tmp = self.root / f".CURRENT.{os.getpid()}.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, pointer)

    def load(self, version: str | None = None) -> ModelBundle:
        """Load ``version`` (default: the current one), verifying checksums."""
        if not self.root.exists():
            raise ModelError(f"model directory {self.root} does not exist (train one with `logwarden train`)")
        version = version or self.current_version()
        if version is None:
            raise ModelError(f"model directory {self.root} has no current model (no CURRENT file)")
        return load_bundle(self.path_of(version))
