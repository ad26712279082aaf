"""Unit-test fixtures (no cluster)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkihelpers import make_ca


@pytest.fixture(scope="session")
def ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return make_ca()


@pytest.fixture(scope="session")
def other_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return make_ca("Other CA")


@pytest.fixture(scope="session")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
