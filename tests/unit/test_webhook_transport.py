"""The pinned connection keeps https whole: it connects to the checked address while TLS sends
the URL's host as SNI and verifies the certificate against that host, not the IP. A name's
next checked address is tried only when no connection was made, so a body is sent once."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.webhooks import transport
from shared.webhooks.addresses import AddressPolicy
from shared.webhooks.transport import PinnedAdapter
from tests.helpers import local_http_server

HOST = "hooks.test"  # resolves nowhere: only the pinned address can reach the server


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str]]]:
    """An https server on 127.0.0.1 with a certificate for HOST from a CA of its own: its port,
    the CA file, and the SNI names and Host headers it saw."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _certificate("test CA", ca_key, ca_name, ca_key, ca=True)
    leaf = _certificate(HOST, key, ca_name, ca_key, ca=False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    seen: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    context.sni_callback = lambda _sock, name, _ctx: seen.append(f"sni {name}")  # type: ignore[assignment,func-returns-value]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(f"host {self.headers['Host']}")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, tmp_path / "ca.pem", seen
    server.shutdown()
    thread.join(timeout=10)


def pinned_post(url: str, ca: Path) -> requests.Response:
    with requests.Session() as session:
        session.mount("https://", PinnedAdapter(ip_address("127.0.0.1")))
        return session.post(url, data=b"{}", verify=str(ca), timeout=5)


def test_https_to_a_pinned_address_verifies_the_urls_host_and_sends_it_as_sni(
    tls_server: tuple[int, Path, list[str]],
) -> None:
    port, ca, seen = tls_server
    assert pinned_post(f"https://{HOST}:{port}/hook", ca).status_code == 204
    assert seen == [f"sni {HOST}", f"host {HOST}:{port}"]


def test_a_certificate_for_another_host_is_still_refused(
    tls_server: tuple[int, Path, list[str]],
) -> None:
    port, ca, _ = tls_server
    mismatch = r"hostname 'other\.test' doesn't match 'hooks\.test'"
    with pytest.raises(requests.exceptions.SSLError, match=mismatch):
        pinned_post(f"https://other.test:{port}/hook", ca)


def test_the_next_checked_address_is_tried_only_when_no_connection_was_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with local_http_server(Handler) as port:
        # A name with two addresses: nothing listens on the first (127.0.0.2), the server on
        # the second answers 503, which is an answer: no third address would be tried.
        answers = [ip_address("127.0.0.2"), ip_address("127.0.0.1"), ip_address("127.0.0.3")]
        monkeypatch.setattr(transport, "resolve", lambda *_: answers)
        loopback = AddressPolicy((ip_network("127.0.0.0/8"),))
        url = f"http://receiver.test:{port}/hook"
        outcome = transport.post(url, b"{}", {}, 5.0, loopback)
    assert (outcome.status, outcome.error, outcome.final) == (503, "HTTP 503", False)
    assert got == [b"{}"], "sent once"
