"""The manifest names the distribution that really provides the template miner's module."""

from __future__ import annotations

from importlib import metadata

import drain3

from models.artifacts import library_versions, module_distribution


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
