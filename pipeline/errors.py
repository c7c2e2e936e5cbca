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


def certificate_hint(message: str, ca_setting: str) -> str:
    """What to do about a certificate verification failure, from OpenSSL's message (``"; ..."``).

    A host name the certificate does not list is not fixed by another CA file. Python 3.13 verifies strictly
    (``VERIFY_X509_STRICT``, RFC 5280): a CA without a ``keyUsage`` extension or a certificate with malformed
    extensions that 3.11 accepted is refused there, and the fix is to re-issue the certificate. Anything else
    is most often the wrong CA: ``ca_setting`` names where it is given.
    """
    lowered = message.lower()
    if "hostname" in lowered or "ip address" in lowered:
        return "; connect with a name the certificate lists (hostname checking is on)"
    if "key usage" in lowered or "basic constraints" in lowered or "authority key identifier" in lowered:
        return ("; Python 3.13+ checks certificates strictly (RFC 5280): re-issue the CA with "
                "keyUsage=critical,keyCertSign,cRLSign and the server's certificate with keyUsage and subjectAltName")
    return f"; check {ca_setting}"
