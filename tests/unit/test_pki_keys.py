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
