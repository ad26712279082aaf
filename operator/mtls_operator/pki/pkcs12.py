"""PKCS#12 key and trust stores for Java clients, in a profile that OpenSSL 3 and every Java since 12 read.

The profile (cert-manager's default one is not readable by OpenSSL 3 nor Java 20, cert-manager#5957): keys and
certificates encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), a SHA-256 MAC, 10,000 iterations (Java 17's
own default for new PKCS#12 key stores; the store is no safer than the Secret it sits in, so more rounds would
only cost every reader time).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mtls_operator.pki.keys import PrivateKey

ITERATIONS = 10_000


def _encryption(password: bytes) -> serialization.KeySerializationEncryption:
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(ITERATIONS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )


def keystore(key: PrivateKey, chain: list[x509.Certificate], alias: str, password: bytes) -> bytes:
    """The key entry a Java client presents: the key, the leaf and its intermediates, under `alias`.
    CPU work (two PBKDF2 runs): call it off the event loop."""
    return pkcs12.serialize_key_and_certificates(alias.encode(), key, chain[0], chain[1:] or None,
                                                 _encryption(password))  # fmt: skip


def truststore(roots: list[x509.Certificate], password: bytes) -> bytes:
    """Trusted-certificate entries (with Java's trust attribute, so `KeyStore` sees them as trust anchors)."""
    entries = [pkcs12.PKCS12Certificate(cert, f"ca-{index}".encode()) for index, cert in enumerate(roots)]
    return pkcs12.serialize_java_truststore(entries, _encryption(password))


def source_digest(password: bytes, alias: str, *parts: bytes) -> str:
    """What a written key store was made from, keyed with its password: equal digests mean nothing to rebuild
    (no decryption on every reconcile), a changed password or certificate means a new store. Keyed, so the
    annotation tells nothing about the password that the store next to it does not."""
    mac = hmac.new(password, alias.encode(), hashlib.sha256)
    for part in parts:
        mac.update(hashlib.sha256(part).digest())
    return mac.hexdigest()
