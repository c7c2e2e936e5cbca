"""Logwarden's model layer: features, detector, evaluation metrics, artifacts and the model registry.

This package never imports :mod:`pipeline`; it works on plain counts, vectors and JSON-able state.
"""
