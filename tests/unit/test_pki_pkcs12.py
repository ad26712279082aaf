"""PKCS#12 stores: readable by OpenSSL 3 with the modern profile, the chain included, trust entries for Java."""

from __future__ import annotations

import subprocess

from cryptography.hazmat.primitives.serialization import pkcs12

from harness.pki import issue
from mtls_operator.pki import pkcs12 as stores


def test_keystore_holds_key_chain_and_alias(ca, client_key):
    leaf = issue(client_key.public_key(), ca)
    data = stores.keystore(client_key, [leaf, ca[0]], "apata", b"s3cret")
    loaded = pkcs12.load_pkcs12(data, b"s3cret")
    assert loaded.key is not None and loaded.key.public_key() == client_key.public_key()
    assert loaded.cert is not None and loaded.cert.certificate == leaf and loaded.cert.friendly_name == b"apata"
    assert [c.certificate for c in loaded.additional_certs] == [ca[0]]


def test_openssl_3_reads_the_profile_without_legacy(ca, client_key, tmp_path):
    """cert-manager#5957: its default profile needs `-legacy` in OpenSSL 3. Ours must not."""
    leaf = issue(client_key.public_key(), ca)
    path = tmp_path / "keystore.p12"
    path.write_bytes(stores.keystore(client_key, [leaf], "client", b"pw"))
    info = subprocess.run(["openssl", "pkcs12", "-info", "-noout", "-in", str(path), "-passin", "pass:pw"],
                          capture_output=True, text=True)  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert "PBES2, PBKDF2, AES-256-CBC" in info.stderr and "MAC: sha256" in info.stderr
    assert "Iteration 10000" in info.stderr


def test_truststore_entries_are_trusted_certificates(ca, other_ca):
    data = stores.truststore([ca[0], other_ca[0]], b"pw")
    loaded = pkcs12.load_pkcs12(data, b"pw")
    assert loaded.key is None and [c.certificate for c in loaded.additional_certs] == [ca[0], other_ca[0]]


def test_source_digest_changes_with_password_alias_and_content():
    base = stores.source_digest(b"pw", "a", b"key", b"crt")
    assert base == stores.source_digest(b"pw", "a", b"key", b"crt")
    assert len({base, stores.source_digest(b"pw2", "a", b"key", b"crt"), stores.source_digest(b"pw", "b", b"key",
               b"crt"), stores.source_digest(b"pw", "a", b"key", b"crt2")}) == 4  # fmt: skip
    assert b"pw".hex() not in base
