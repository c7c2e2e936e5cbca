"""One clear line when a secured Kafka connection cannot work: an untrusted certificate, a wrong password.

kafka-python retries a failed TLS handshake or SASL login like any network error: the caller sees only
``Unable to bootstrap`` after its whole timeout, and the reason is in its log, many times. Before the first
client is built for a TLS or SASL connection, :func:`check_connection` therefore talks to one bootstrap
broker itself, with the settings the clients will use (the same CA file, hostname check, client certificate
and SASL mechanism), and turns a definite refusal into a :class:`~pipeline.errors.LogwardenError`:

* the broker's certificate is not trusted by the CA file, or does not name the host (hostname checking);
* the broker refuses our client certificate (an SSL listener with client authentication);
* the broker does not offer the SASL mechanism, or refuses the user name and password.

A broker that does not accept connections at all is not an error here: the clients wait and retry for it,
as they do without security (a broker restart must not stop a worker). The probe uses the Kafka wire
protocol directly (ApiVersions v0, SaslHandshake v1, SaslAuthenticate v1) and SCRAM per RFC 5802/7677; it
never logs or returns the password or anything derived from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from pipeline.errors import LogwardenError, certificate_hint

_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36
_SCRAM_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
_CLIENT_ID = b"logwarden-probe"


class _Refused(Exception):
    """The broker answered, and the answer is no (raised inside the probe, reported as LogwardenError)."""


def tls_context(security: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context the clients get: the CA file (else the system's), hostname checking, client cert."""
    cafile = security.get("ssl_cafile")
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    context.check_hostname = bool(security.get("ssl_check_hostname", True))
    if security.get("ssl_certfile"):
        context.load_cert_chain(security["ssl_certfile"], security.get("ssl_keyfile"), security.get("ssl_password"))
    return context


def verify_hint(message: str) -> str:
    """What to do about a broker certificate that failed verification (:func:`pipeline.errors.certificate_hint`)."""
    return certificate_hint(message, "LOGWARDEN_KAFKA_SSL_CAFILE")


def _frame(api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(header) + len(body)) + header + body


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        self.sock.sendall(_frame(api_key, version, self.correlation, body))
        size = struct.unpack(">i", _read_exact(self.sock, 4))[0]
        payload = _read_exact(self.sock, size)
        return payload[4:]  # after the correlation id (response header v0)


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _read_string(data: bytes, at: int) -> tuple[str | None, int]:
    size = struct.unpack_from(">h", data, at)[0]
    at += 2
    if size < 0:
        return None, at
    return data[at:at + size].decode(errors="replace"), at + size


def _authenticate(conn: _Conn, token: bytes) -> bytes:
    answer = conn.call(_SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token)
    error = struct.unpack_from(">h", answer, 0)[0]
    message, at = _read_string(answer, 2)
    if error:
        raise _Refused(message or f"error code {error}")
    size = struct.unpack_from(">i", answer, at)[0]
    return answer[at + 4:at + 4 + max(size, 0)]


def _scram(conn: _Conn, mechanism: str, username: str, password: str) -> None:
    digest = _SCRAM_HASHES[mechanism]
    nonce = base64.b64encode(os.urandom(18)).decode()
    user = username.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={user},r={nonce}"
    server_first = _authenticate(conn, f"n,,{first_bare}".encode()).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
    if not fields.get("r", "").startswith(nonce) or "s" not in fields or "i" not in fields:
        raise _Refused(f"unexpected SCRAM answer from the broker ({server_first[:80]!r})")
    salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _authenticate(conn, f"{without_proof},p={proof}".encode())


def _sasl(conn: _Conn, security: Mapping[str, Any]) -> None:
    mechanism = str(security.get("sasl_mechanism") or "PLAIN").upper()
    answer = conn.call(_SASL_HANDSHAKE, 1, _string(mechanism))
    error = struct.unpack_from(">h", answer, 0)[0]
    count = struct.unpack_from(">i", answer, 2)[0]
    offered, at = [], 6
    for _ in range(max(count, 0)):
        name, at = _read_string(answer, at)
        offered.append(name or "")
    if error or mechanism not in offered:
        raise _Refused(f"the broker does not offer SASL mechanism {mechanism} (it offers: "
                       f"{', '.join(offered) or 'none'}); set LOGWARDEN_KAFKA_SASL_MECHANISM")
    username = str(security.get("sasl_plain_username") or "")
    password = str(security.get("sasl_plain_password") or "")
    try:
        if mechanism in _SCRAM_HASHES:
            _scram(conn, mechanism, username, password)
        elif mechanism == "PLAIN":
            _authenticate(conn, b"\0" + username.encode() + b"\0" + password.encode())
        else:
            return  # GSSAPI, OAUTHBEARER: left to the client
    except _Refused as exc:
        raise _Refused(f"the broker refused the SASL {mechanism} login of user {username!r} ({exc}); check "
                       "LOGWARDEN_KAFKA_SASL_USERNAME and LOGWARDEN_KAFKA_SASL_PASSWORD") from None


def _probe_one(host: str, port: int, protocol: str, security: Mapping[str, Any], timeout: float) -> bool:
    """False when the broker is not reachable; raises LogwardenError when it refuses us; True when fine."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False  # not reachable (yet): the clients wait and retry
    where = f"Kafka at {host}:{port} ({protocol})"
    try:
        sock: socket.socket = raw
        if protocol in ("SSL", "SASL_SSL"):
            try:
                context = tls_context(security)
            except (OSError, ssl.SSLError) as exc:
                raise LogwardenError(f"cannot load the TLS files for {where}: {exc}") from None
            try:
                sock = context.wrap_socket(raw, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                raise LogwardenError(f"TLS to {where} failed: the broker's certificate is not trusted "
                                     f"({exc.verify_message}){verify_hint(str(exc.verify_message))}") from None
            except ssl.SSLError as exc:
                raise LogwardenError(f"TLS to {where} failed ({exc.reason or exc})") from None
        conn = _Conn(sock)
        try:
            if protocol.startswith("SASL_"):
                _sasl(conn, security)
            else:
                conn.call(_API_VERSIONS, 0, b"")
        except _Refused as exc:
            raise LogwardenError(f"{where}: {exc}") from None
        except ssl.SSLError as exc:
            reason = str(exc.reason or exc)
            if "CERTIFICATE" in reason.upper():
                raise LogwardenError(f"{where} refused the client certificate ({reason}); set "
                                     "LOGWARDEN_KAFKA_SSL_CERTFILE and LOGWARDEN_KAFKA_SSL_KEYFILE to one its CA "
                                     "signed") from None
            raise LogwardenError(f"TLS to {where} failed ({reason})") from None
        except (ConnectionError, TimeoutError, struct.error) as exc:
            if protocol == "SSL" and security.get("ssl_certfile") is None:
                raise LogwardenError(f"{where} closed the connection: the listener may require a client "
                                     "certificate (LOGWARDEN_KAFKA_SSL_CERTFILE / _KEYFILE)") from None
            raise LogwardenError(f"{where} closed the connection during the {protocol} handshake ({exc}); "
                                 "check the security protocol (LOGWARDEN_KAFKA_SECURITY_PROTOCOL) and port") from None
    finally:
        raw.close()
    return True


_CHECKED: set[tuple[str, ...]] = set()


def check_connection(servers: list[str], security: Mapping[str, Any], timeout: float = 10.0) -> None:
    """Probe one bootstrap broker with TLS/SASL ``security``; LogwardenError on a definite refusal.

    Plaintext connections are not probed. A successful probe is remembered for the process, so the
    worker's several clients connect once more each, not once per client.
    """
    protocol = str(security.get("security_protocol") or "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return
    # In memory only; the passwords enter the key as a digest, like every other setting.
    key = (protocol, ",".join(servers),
           hashlib.sha256(repr(sorted((k, str(v)) for k, v in security.items())).encode()).hexdigest())
    if key in _CHECKED:
        return
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise LogwardenError(f"Kafka bootstrap server {server!r} is not HOST:PORT")
        if _probe_one(host.strip("[]"), int(port), protocol, security, timeout):
            break
    _CHECKED.add(key)
