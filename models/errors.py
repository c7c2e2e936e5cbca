"""Errors raised by the model layer.

:class:`ModelError` carries a one-line, user-facing message (a missing model, a checksum mismatch, an
unknown version). The CLI prints it without a traceback.
"""


class ModelError(Exception):
    """A model directory or artifact that cannot be used, with a one-line reason."""
