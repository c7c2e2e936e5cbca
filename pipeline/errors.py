"""User-facing errors.

A :class:`LogwardenError` means "the user asked for something we cannot do" (a missing file, a corrupt
gzip, a log format that matches nothing), not a bug. Its ``str`` is one line that names the problem, so the
CLI can print ``logwarden: error: <message>`` and exit with status 2 without a traceback. Bugs stay ordinary
exceptions and keep their tracebacks.
"""

from __future__ import annotations


class LogwardenError(Exception):
    """A problem with the user's input or settings; ``str(err)`` is a one-line message."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Keep the message on one line whatever the caller passed in (OS errors can carry newlines).
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class InputError(LogwardenError):
    """An input cannot be read: missing, a directory, no permission, corrupt or truncated compression."""


class FormatError(LogwardenError):
    """A log format or time format is invalid, or matches none of the input."""
