"""Logwarden's streaming runtime: sources, decoding, templates, windows, scoring, sinks, jobs and CLI.

Dependency direction: ``pipeline`` uses ``models``; ``models`` never imports ``pipeline``.
"""
