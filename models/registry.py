"""A small file-system model registry: one sub-directory per version, a ``CURRENT`` pointer, a history.

Layout::

    MODEL_DIR/
      CURRENT                    one line: the current version id
      HISTORY                    the versions made current, oldest first (what ``rollback`` walks back)
      .lock                      held (``flock``) by whoever publishes, promotes, rolls back or deletes
      versions/<version>/        one model version (see models.artifacts)

Publishing writes the new version into ``versions/.<version>.tmp`` and renames it into place, then
switches ``CURRENT`` by writing a temporary file and ``os.replace``-ing it. Both renames are atomic on
POSIX file systems, so a reader (a worker polling for a new model) sees either the old or the new
version, never a half-written one. Version ids sort by creation time (``YYYYMMDDTHHMMSSZ-xxxxxx``).

Two writers (a scheduled retraining and an operator's ``logwarden models promote``) are serialised by an
exclusive ``flock`` on ``.lock``: every change of ``CURRENT``/``HISTORY`` and every delete happens under it,
so neither can lose the other's promotion or delete the version the other just made current. Readers never
take the lock (a pointer read is one atomic file read). ``flock`` works on local file systems and on NFSv4
and most CSI volumes; on a file system without locks :class:`ModelRegistry` raises instead of racing.

``rollback`` makes current the version that was current before the present one (the entry before the last
one in ``HISTORY`` that still exists) and drops the last entry, so rolling back twice goes back twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.artifacts import ModelBundle, fsync_path, load_bundle, read_manifest, save_bundle, write_atomic
from models.errors import ModelError

LOCK_TIMEOUT = 30.0


def new_version_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class ModelRegistry:
    """Versions of one model family in ``root``."""

    def __init__(self, root: str | Path, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def current_version(self) -> str | None:
        """What ``CURRENT`` names (None when it is missing or empty; undecodable bytes are replaced, so a
        corrupted pointer names no version and fails in :meth:`path_of` with one line)."""
        try:
            text = (self.root / "CURRENT").read_bytes().decode("utf-8", "replace").strip()
        except FileNotFoundError:
            return None
        return text or None

    def history(self) -> list[str]:
        try:
            lines = (self.root / "HISTORY").read_bytes().decode("utf-8", "replace").split()
        except FileNotFoundError:
            lines = []
        current = self.current_version()
        if current and (not lines or lines[-1] != current):
            lines.append(current)  # a registry written before HISTORY existed, or CURRENT edited by hand
        return lines

    def path_of(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ModelError(f"{version!r} is not a model version id")
        path = self.versions_dir / version
        if not path.is_dir():
            raise ModelError(f"no model version {version!r} in {self.root}")
        return path

    def manifest(self, version: str) -> dict[str, Any]:
        return read_manifest(self.path_of(version))

    # ------------------------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's writer lock (exclusive ``flock`` on ``.lock``), waiting up to ``lock_timeout``."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise ModelError(f"cannot lock {self.root / '.lock'}: {exc.strerror}") from None
                    if time.monotonic() >= deadline:
                        raise ModelError(f"{self.root} is locked by another writer (waited "
                                         f"{self.lock_timeout:.0f} s for {self.root / '.lock'})") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def publish(self, bundle: ModelBundle, make_current: bool = True) -> str:
        """Save ``bundle`` as a new version (its ``version`` is assigned here) and return the id."""
        bundle.version = bundle.version or new_version_id()
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.versions_dir / f".{bundle.version}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_bundle(tmp, bundle)  # every file and the directory fsynced
        os.replace(tmp, self.versions_dir / bundle.version)
        fsync_path(self.versions_dir)
        if make_current:
            self.set_current(bundle.version)
        return bundle.version

    def set_current(self, version: str) -> None:
        """Promote ``version`` (verified first: a version that does not load is never made current)."""
        load_bundle(self.path_of(version))
        with self.locked():
            history = self.history()
            if not history or history[-1] != version:
                history.append(version)
            self._write_pointers(version, history)

    promote = set_current

    def rollback(self) -> tuple[str, str]:
        """Make the previously current version current again; returns ``(from, to)``."""
        with self.locked():
            history = self.history()
            current = self.current_version()
            if current is None:
                raise ModelError(f"{self.root} has no current model to roll back from")
            while history and history[-1] == current:
                history.pop()
            while history and not (self.versions_dir / history[-1]).is_dir():
                history.pop()  # deleted since
            if not history:
                raise ModelError(f"{current} is the first version made current in {self.root}: nothing to "
                                 "roll back to (promote a version with `logwarden models promote V`)")
            target = history[-1]
            load_bundle(self.path_of(target))
            self._write_pointers(target, history)
            return current, target

    def delete(self, version: str) -> None:
        """Remove ``version``; the current version is refused (promote or roll back first)."""
        with self.locked():
            path = self.path_of(version)
            if version == self.current_version():
                raise ModelError(f"{version} is the current model: promote another version or roll back before "
                                 "deleting it")
            trash = self.versions_dir / f".{version}.deleting"
            os.replace(path, trash)  # gone from listings at once, even if the removal below is interrupted
            shutil.rmtree(trash, ignore_errors=True)
            history = [v for v in self.history() if v != version]
            self._write_pointers(self.current_version(), history)

    def _write_pointers(self, current: str | None, history: list[str]) -> None:
        """HISTORY, then CURRENT, each temp file + fsync + rename + fsync of the directory."""
        write_atomic(self.root / "HISTORY", "".join(v + "\n" for v in history).encode("utf-8"))
        if current is not None:
            write_atomic(self.root / "CURRENT", (current + "\n").encode("utf-8"))

    # ------------------------------------------------------------------------------------ reading
    def load(self, version: str | None = None, *, lazy_forest: bool = False) -> ModelBundle:
        """Load ``version`` (default: the current one), verifying checksums (``lazy_forest``: see
        :func:`models.artifacts.load_bundle`)."""
        if not self.root.exists():
            raise ModelError(f"model directory {self.root} does not exist (train one with `logwarden train`)")
        version = version or self.current_version()
        if version is None:
            raise ModelError(f"model directory {self.root} has no current model (no CURRENT file)")
        return load_bundle(self.path_of(version), lazy_forest=lazy_forest)

    def load_last_good(self) -> tuple[ModelBundle, list[tuple[str, str]]]:
        """The current version, else the newest version in HISTORY that loads and verifies.

        Returns the bundle and the versions refused on the way, newest first, each with its one-line reason;
        ModelError (one line, naming the first refusal) when none is usable. For a worker that must keep
        serving when the current version is damaged; the pointer is not changed (rolling back is an operator's
        decision). An explicitly requested version never falls back (:meth:`load`).
        """
        return load_last_good(self)


def load_last_good(registry: Any) -> tuple[ModelBundle, list[tuple[str, str]]]:
    """:meth:`ModelRegistry.load_last_good` for any registry with ``current_version``, ``history`` and ``load``
    (the directory registry, or the registry in a Kafka topic)."""
    refused: list[tuple[str, str]] = []
    current = registry.current_version()
    candidates = [current] if current else []
    candidates += [v for v in reversed(registry.history()) if v not in candidates]
    if not candidates:
        registry.load()  # raises the registry's own "no current model" error
    for version in candidates:
        try:
            return registry.load(version), refused
        except ModelError as exc:
            refused.append((version, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    first, why = refused[0]
    raise ModelError(f"no usable model in {registry.root}: {first}: {why}")

