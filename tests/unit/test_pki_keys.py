from __future__ import annotations

import pytest

from mtls_operator.pki.keys import (
    KeySpec,
    generate_private_key,
    key_spec_of,
    load_private_key,
    private_key_to_pem,
    same_public_key,
)


@pytest.mark.parametrize(
    "spec", [KeySpec("RSA", 2048), KeySpec("RSA", 3072), KeySpec("ECDSA", 256), KeySpec("ECDSA", 384)]
)
def test_generate_round_trip(spec):
    key = generate_private_key(spec)
    assert key_spec_of(key) == spec
    loaded = load_private_key(private_key_to_pem(key))
    assert same_public_key(loaded, key)
    assert private_key_to_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_load_rejects_garbage_without_echoing_it():
    with pytest.raises(ValueError, match="not a readable unencrypted PEM private key") as info:
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n")
    assert "SECRETSECRET" not in str(info.value)


def test_unsupported_algorithm():
    with pytest.raises(ValueError):
        generate_private_key(KeySpec("DSA", 2048))


def test_different_keys_differ(client_key, ec_key):
    assert not same_public_key(client_key, ec_key)
    assert same_public_key(client_key, client_key.public_key())


def test_corrupted_rsa_key_is_refused(client_key):
    """The cheap self-test replaces OpenSSL's 55 ms validation: a key whose stored modulus was damaged (the
    corruption that would put a wrong public key into a CSR) must still be refused."""
    import base64

    from cryptography.hazmat.primitives import serialization

    der = bytearray(
        client_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    modulus = client_key.private_numbers().public_numbers.n.to_bytes(256, "big")
    at = bytes(der).index(modulus) + 100
    der[at] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError):
        load_private_key(pem.encode())
