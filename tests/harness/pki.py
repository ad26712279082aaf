"""Test helpers: a small CA and certificates made with cryptography (no cluster, no subprocess)."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)


def make_ca(
    name: str = "Unit CA", *, now: datetime.datetime | None = None, key_usage: bool = False
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA CA valid from a year before `now` (default NOW) for ten years; `key_usage` adds the
    keyCertSign/cRLSign usage real CAs carry."""
    now = now or NOW
    key = rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=365))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if key_usage:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        cert = cert.add_extension(usage, critical=True)
    return cert.sign(key, hashes.SHA256()), key


def issue(
    public_key,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey],
    *,
    cn: str = "client.example.com",
    not_before: datetime.datetime = NOW - datetime.timedelta(days=1),
    not_after: datetime.datetime = NOW + datetime.timedelta(days=365),
    eku: list | None = None,
    ca: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer[0].subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(issuer[1], hashes.SHA256())


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
