"""Kafka security settings from the environment, and the probe's TLS checks against a local TLS server.

The server here speaks just enough Kafka (one ApiVersions answer) for the probe; its certificates are made
with openssl for names that are *not* 127.0.0.1, so hostname checking has something to refuse. The real
broker's SASL_SSL and SSL listeners are tested in tests/integration/test_security.py.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import LogwardenError
from pipeline.sources.kafka import SKIP_HOSTNAME_CHECK, kafka_security
from pipeline.sources.kafka_probe import check_connection, verify_hint


def test_nothing_set_is_plaintext() -> None:
    assert kafka_security({}) == {}


def test_sasl_ssl_settings_are_checked_and_hostname_checking_is_on(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "LOGWARDEN_KAFKA_SASL_MECHANISM": "scram-sha-512",
           "LOGWARDEN_KAFKA_SASL_USERNAME": "u", "LOGWARDEN_KAFKA_SASL_PASSWORD": "p",
           "LOGWARDEN_KAFKA_SSL_CAFILE": str(ca)}
    found = kafka_security(env)
    assert found["security_protocol"] == "SASL_SSL" and found["sasl_mechanism"] == "SCRAM-SHA-512"
    assert found["ssl_check_hostname"] is True


@pytest.mark.parametrize(("env", "message"), [
    ({"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL"),
    ({"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LOGWARDEN_KAFKA_SASL_USERNAME": "u"},
     "needs LOGWARDEN_KAFKA_SASL_USERNAME and LOGWARDEN_KAFKA_SASL_PASSWORD"),
    ({"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LOGWARDEN_KAFKA_SASL_MECHANISM": "GSSAPI",
      "LOGWARDEN_KAFKA_SASL_USERNAME": "u", "LOGWARDEN_KAFKA_SASL_PASSWORD": "p"}, "SASL_MECHANISM must be one of"),
    ({"LOGWARDEN_KAFKA_SASL_USERNAME": "u", "LOGWARDEN_KAFKA_SASL_PASSWORD": "p"}, "SASL credentials are set but"),
    ({"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SSL", "LOGWARDEN_KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
     "LOGWARDEN_KAFKA_SSL_CAFILE: cannot read /no/such/ca.pem"),
    ({"LOGWARDEN_KAFKA_SSL_CAFILE": "/etc/hostname"}, "TLS files are set but"),
])
def test_mistakes_are_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(LogwardenError, match=message):
        kafka_security(env)


def test_a_wrong_password_never_appears_in_the_error() -> None:
    env = {"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LOGWARDEN_KAFKA_SASL_MECHANISM": "NOPE",
           "LOGWARDEN_KAFKA_SASL_USERNAME": "u", "LOGWARDEN_KAFKA_SASL_PASSWORD": "hunter2-secret"}
    with pytest.raises(LogwardenError) as caught:
        kafka_security(env)
    assert "hunter2-secret" not in str(caught.value)


# ------------------------------------------------------------------------------- a local TLS server
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for broker.example only (not 127.0.0.1, not localhost)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # Python 3.13 refuses a CA without it
    (d / "ext").write_text("subjectAltName=DNS:broker.example\nbasicConstraints=CA:FALSE\n"
                           "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
             "/CN=broker.example", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-extfile", "ext", "-out", "server.pem", "-days", "2", cwd=d)
    return d


@pytest.fixture
def tls_broker(certs: Path) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 that answers one Kafka request per connection with an empty reply."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    size = struct.unpack(">i", conn.recv(4))[0]
                    request = conn.recv(size)
                    correlation = struct.unpack_from(">i", request, 4)[0]
                    conn.sendall(struct.pack(">iih", 6, correlation, 0))
            except (OSError, ssl.SSLError, struct.error):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_certificate_for_another_name_is_refused_with_hostname_checking_on(certs: Path, tls_broker: int) -> None:
    security = {"security_protocol": "SSL", "ssl_cafile": str(certs / "ca.pem"), "ssl_check_hostname": True}
    with pytest.raises(LogwardenError, match=r"certificate is not trusted \(.*(IP address|hostname|Hostname) "
                                             r"mismatch.*\); connect with a name the certificate lists"):
        check_connection([f"127.0.0.1:{tls_broker}"], security, timeout=5)


def test_an_unknown_ca_is_refused(certs: Path, tls_broker: int) -> None:
    security = {"security_protocol": "SSL", "ssl_check_hostname": True}  # the system's CAs only
    with pytest.raises(LogwardenError, match="certificate is not trusted .*check LOGWARDEN_KAFKA_SSL_CAFILE"):
        check_connection([f"127.0.0.1:{tls_broker}"], security, timeout=5)


def test_only_the_named_opt_out_skips_the_hostname_check(certs: Path, tls_broker: int,
                                                         caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    env = {"LOGWARDEN_KAFKA_SECURITY_PROTOCOL": "SSL", "LOGWARDEN_KAFKA_SSL_CAFILE": str(certs / "ca.pem"),
           SKIP_HOSTNAME_CHECK: "true"}
    with caplog.at_level(logging.WARNING):
        security = kafka_security(env)
    assert security["ssl_check_hostname"] is False
    assert "hostname checking is OFF" in caplog.text
    check_connection([f"127.0.0.1:{tls_broker}"], security, timeout=5)  # the CA still has to match


def test_an_unreachable_broker_is_left_to_the_clients_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check_connection([f"127.0.0.1:{port}"], {"security_protocol": "SSL"}, timeout=2)


@pytest.mark.parametrize(("message", "expected"), [
    ("CA cert does not include key usage extension", "re-issue the CA with keyUsage"),
    ("Basic Constraints of CA cert not marked critical", "re-issue the CA with keyUsage"),
    ("Hostname mismatch, certificate is not valid for 'x'.", "connect with a name the certificate lists"),
    ("IP address mismatch, certificate is not valid for '127.0.0.1'.", "connect with a name the certificate lists"),
    ("unable to get local issuer certificate", "check LOGWARDEN_KAFKA_SSL_CAFILE"),
])
def test_a_verification_failure_says_what_to_change(message: str, expected: str) -> None:
    """OpenSSL's words (as Python 3.11-3.13 print them) map to the setting or certificate to fix."""
    assert expected in verify_hint(message)
