"""Benchmarks for Logwarden: quality and speed measured on real logs, printed as a table and JSON.

Run them from the repository root as modules, e.g. ``python -m benchmarks.parsing``. They read the
shared data beside the repository (``Path(repo_root).parent / "shared" / "data"``); see
:mod:`benchmarks.loghub`.
"""
