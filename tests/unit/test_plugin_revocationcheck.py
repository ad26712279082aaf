"""plugin.revocationcheck: the CRL a certificate names, fetched for real over HTTP from a local server; offline is a
warning, a CRL its CA did not sign is ignored, a listed serial fails."""

from __future__ import annotations

import datetime
import http.server
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from harness.pki import make_ca
from mtls_operator.pki.crl import RevokedEntry, build_crl, crl_pem
from mtls_operator.pki.signing import CertificateAuthority, sign_csr
from mtls_operator.plugin.revocationcheck import FAIL, PASS, WARN, revocation_status

NOW = datetime.datetime.now(datetime.UTC)


class Served:
    body = b""


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(Served.body)

        def log_message(self, *args: object) -> None:
            return None

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/ca.crl"
    finally:
        httpd.shutdown()


def leaf_for(ca: CertificateAuthority, url: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "client.example.com")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return sign_csr(csr, ca, datetime.timedelta(days=30), NOW, url)


def test_listed_not_listed_foreign_and_offline(server: str) -> None:
    ca = CertificateAuthority(*make_ca("Check CA", now=NOW, key_usage=True))
    leaf = leaf_for(ca, server)
    Served.body = crl_pem(build_crl(ca, [], 1, NOW, NOW + datetime.timedelta(days=1)))
    assert revocation_status(leaf, [ca.certificate], NOW)[0] == PASS
    Served.body = crl_pem(build_crl(ca, [RevokedEntry(leaf.serial_number, NOW, "keyCompromise")], 2, NOW,
                                    NOW + datetime.timedelta(days=1)))  # fmt: skip
    status, message = revocation_status(leaf, [ca.certificate], NOW)
    assert status == FAIL and "REVOKED (keyCompromise)" in message
    other = CertificateAuthority(*make_ca("Check CA", now=NOW))  # same name, another key: a forged CRL
    Served.body = crl_pem(build_crl(other, [RevokedEntry(leaf.serial_number, NOW, "keyCompromise")], 3, NOW,
                                    NOW + datetime.timedelta(days=1)))  # fmt: skip
    status, message = revocation_status(leaf, [ca.certificate], NOW)
    assert status == WARN and "not signed by the certificate's CA" in message
    offline = leaf_for(ca, "http://127.0.0.1:9/ca.crl")  # nothing listens on the discard port
    status, message = revocation_status(offline, [ca.certificate], NOW)
    assert status == WARN and "could not be checked" in message
