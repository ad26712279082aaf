"""The operator's own HTTPS identity for /metrics: a self-signed certificate made at start (as controller-runtime's
secure metrics do without a configured one), or a certificate and key from files (a mounted Secret). The key is
handed to OpenSSL through an in-memory file: it never touches a disk."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_operator.pki.handshake import memory_file

VALIDITY = datetime.timedelta(days=365)  # made again at every start; a Pod rarely lives a year


def self_signed(names: list[str], now: datetime.datetime) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for the given DNS names and IP addresses."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "mtls-operator")])
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with memory_file(cert_pem) as cert_path, memory_file(key_pem) as key_path:
        context.load_cert_chain(cert_path, key_path)
    return context


def from_directory(directory: Path) -> tuple[bytes, bytes]:
    """tls.crt and tls.key of a mounted kubernetes.io/tls Secret."""
    return (directory / "tls.crt").read_bytes(), (directory / "tls.key").read_bytes()
