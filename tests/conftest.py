"""Shared pytest fixtures.

``shared_data`` is the Loghub data folder beside the repository (``<repo>/../shared/data``; CI copies it
there too). Locally a test that needs it is skipped when it is missing; under ``CI=true`` that is a failure,
so CI can never pass by silently skipping the tests that read real logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_path(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise skip (locally) or fail (under CI=true)."""
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if in_ci():
        pytest.fail(message + " (CI=true: required)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data`` (Loghub samples and HDFS sessions; see its README.md)."""
    return require_path(SHARED_DATA, "shared test data")


@pytest.fixture(scope="session")
def loghub_2k(shared_data: Path) -> Path:
    """The ``loghub-2k`` folder: ``NAME/NAME_2k.log`` and its ``_structured.csv`` for eight systems."""
    return require_path(shared_data / "loghub-2k", "loghub-2k samples")
