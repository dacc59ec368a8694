"""One HTTP attempt (workers/webhooks/sender.py) against real loopback servers: https to the
checked address with the URL's name for TLS and Host (certificate checked against the name),
redirects not followed, at most 64 KB of an answer read, the whole attempt bounded by its
timeout however slowly the receiver answers."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.webhooks.addresses import Target
from workers.webhooks import sender

pytestmark = [pytest.mark.no_db]
LOOPBACK = [ipaddress.ip_address("127.0.0.1")]


def self_signed(folder: Path, name: str = "hooks.test") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def server(answer, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[int, list[dict]]]:
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers.items()))
            answer(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def ok(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_https_goes_to_the_checked_address_with_the_name_for_tls_and_host(tmp_path, monkeypatch):
    tls = self_signed(tmp_path)
    with server(ok, tls) as (port, seen):
        target = Target("https", "hooks.test", port, "/in?x=1")
        untrusted = sender.post(target, LOOPBACK, {"webhook-id": "m1"}, b"{}", 5)
        assert untrusted.status is None and "certificate verify failed" in untrusted.error
        monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))  # trust this one certificate
        answer = sender.post(target, LOOPBACK, {"webhook-id": "m1"}, b"{}", 5)
        assert (answer.status, answer.error) == (200, None)
        wrong = sender.post(Target("https", "other.test", port, "/"), LOOPBACK, {}, b"{}", 5)
        assert wrong.status is None and "doesn't match" in wrong.error
    (headers,) = seen  # only the trusted attempt reached the handler
    assert headers["Host"] == f"hooks.test:{port}" and headers["webhook-id"] == "m1"
    assert headers["Content-Type"] == "application/json"


def test_redirects_are_not_followed():
    def redirect(handler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with server(redirect) as (port, seen):
        answer = sender.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, {}, b"{}", 5)
    assert answer.status == 302 and len(seen) == 1


def test_a_huge_or_trickling_answer_is_cut_at_64_kb_and_the_timeout():
    def huge(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(50 * 1024 * 1024))
        handler.end_headers()
        try:
            for _ in range(50 * 16):
                handler.wfile.write(b"x" * 65536)
        except OSError:
            pass  # the client stopped reading

    def trickle(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    with server(huge) as (port, _):
        answer = sender.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, {}, b"{}", 5)
    assert answer.status == 200 and answer.seconds < 5
    with server(trickle) as (port, _):
        answer = sender.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, {}, b"{}", 1.5)
    # Each byte comes within the socket timeout; the attempt still ends at its deadline.
    assert answer.status == 200 and answer.seconds < 4


def test_no_answer_within_the_timeout():
    def silent(handler) -> None:
        time.sleep(3)

    with server(silent) as (port, _):
        answer = sender.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, {}, b"{}", 0.5)
    assert answer.status is None and "no answer within 0.5 s" in answer.error


def test_refused_connection_is_an_error_not_an_exception():
    with server(ok) as (port, _):
        pass  # closed again: nothing listens there now
    answer = sender.post(Target("http", "127.0.0.1", port, "/"), LOOPBACK, {}, b"{}", 2)
    assert answer.status is None and "cannot connect" in answer.error
