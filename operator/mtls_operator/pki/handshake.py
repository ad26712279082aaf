"""OpenSSL's verdict on a client chain, from a real TLS handshake in memory.

Why a handshake and not our own rules: "Ready" promises that a server will accept the certificate, and most mTLS
servers (nginx, Apache, HAProxy, Envoy's OpenSSL builds, Node) verify with OpenSSL. So the judge is OpenSSL itself,
through Python's own `ssl` module: a client context that presents the chain with its key, a server context with
`CERT_REQUIRED` trusting only the given anchors, joined by two `ssl.MemoryBIO`s. The server judges exactly as an
OpenSSL server in this image does: its purpose check (`ssl_client`), key usage, basic and name constraints, path
length, critical extensions, and the security level (default 2: RSA ≥ 2048, no SHA-1 or MD5 signatures).

Time is the one thing left out (`X509_V_FLAG_NO_CHECK_TIME`): the caller checks every certificate's dates against
its own clock, so the verdict is the same under a fixed clock in tests, and for a moment in the future.

The chain and key go to OpenSSL through anonymous in-memory files (`memfd`): key bytes never touch a disk.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtls_operator.pki.keys import PrivateKey

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL's flag; Python's ssl.VerifyFlags does not name it
_PUMP_ROUNDS = 12  # a TLS 1.3 handshake with client authentication needs three flights each way


@dataclass(frozen=True)
class ServerVerdict:
    accepted: bool
    code: int = 0  # OpenSSL's X509_V_ERR_* number; -1 when the handshake failed for another reason
    said: str = ""  # OpenSSL's own words ("CA certificate key too weak")


def openssl_server_verdict(
    chain: list[x509.Certificate], key: PrivateKey, anchors: list[x509.Certificate]
) -> ServerVerdict:
    """Would an OpenSSL server that trusts exactly `anchors` accept `chain` (leaf first) presented with `key`?

    Any anchor may be an intermediate (partial chains allowed), as a server trusting a partner's issuing CA does.
    """
    server = _server_context(_anchor_pem(anchors))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client presents whatever it is given; only the server judges
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    try:
        with memory_file(chain_pem) as chain_path, memory_file(key_pem) as key_path:
            client.load_cert_chain(chain_path, key_path)
    except ssl.SSLError as exc:
        return ServerVerdict(False, -1, f"the client cannot present it: {exc.reason or exc}")
    return _handshake(client, server)


def _anchor_pem(anchors: list[x509.Certificate]) -> str:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in anchors).decode()


def _server_context(anchor_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME
    context.load_verify_locations(cadata=anchor_pem)
    cert_pem, key_pem = _server_identity()
    with memory_file(cert_pem) as cert_path, memory_file(key_pem) as key_path:
        context.load_cert_chain(cert_path, key_path)
    return context


def _handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext) -> ServerVerdict:
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, server_in = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, to_server, server_side=False)
    server = server_context.wrap_bio(server_in, to_client, server_side=True)
    client_done = server_done = False
    for _ in range(_PUMP_ROUNDS):
        try:
            if not client_done:
                client.do_handshake()
                client_done = True
                client.write(b".")  # TLS 1.3: the client is done first; data makes the server finish judging
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass  # the server's alert: its own error below says why
        server_in.write(to_server.read())
        try:
            if not server_done:
                server.do_handshake()
                server_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLCertVerificationError as exc:
            return ServerVerdict(False, int(exc.verify_code or -1), str(exc.verify_message or exc.reason))
        except ssl.SSLError as exc:
            return ServerVerdict(False, -1, str(exc.reason or exc))
        client_in.write(to_client.read())
        if server_done:
            return ServerVerdict(True)
    return ServerVerdict(False, -1, "the handshake did not complete")


@contextlib.contextmanager
def memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open whose bytes live only in memory (Linux memfd); a private temp file elsewhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mtls-operator", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile() as file:  # created 0600
        file.write(data)
        file.flush()
        yield file.name


@lru_cache(maxsize=1)
def _server_identity() -> tuple[bytes, bytes]:
    """The in-memory server's own certificate: the client does not check it, it only has to exist."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtls-operator chain verdict")])
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 * 100))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
