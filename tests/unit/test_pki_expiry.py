"""The soonest expiry among the CAs a certificate depends on (pki.expiry): intermediates and ca.crt."""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.pki import CLIENT_AUTH, NOW, issue, make_ca
from mtls_operator.pki.expiry import chain_expiry

PEM = serialization.Encoding.PEM


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_partner_ca_in_ca_crt_that_expires_before_the_leaf_is_the_answer() -> None:
    root = make_ca("Partner Root")  # valid for nine more years
    intermediate_key = key()
    soon = NOW + datetime.timedelta(days=40)
    intermediate = issue(intermediate_key.public_key(), root, cn="Partner Issuing CA", not_after=soon, ca=True)
    leaf = issue(key().public_key(), (intermediate, intermediate_key), eku=CLIENT_AUTH)  # type: ignore[arg-type]
    tls_crt = leaf.public_bytes(PEM) + intermediate.public_bytes(PEM)
    found = chain_expiry(tls_crt, root[0].public_bytes(PEM))
    assert found is not None
    assert found.not_after == soon.replace(microsecond=0) and found.subject == "Partner Issuing CA"


def test_the_root_counts_when_it_is_the_soonest() -> None:
    short_root = make_ca("Short Root", now=NOW - datetime.timedelta(days=3640))  # ten days left
    leaf = issue(key().public_key(), short_root)
    found = chain_expiry(leaf.public_bytes(PEM), short_root[0].public_bytes(PEM))
    assert found is not None and found.subject == "Short Root"
    assert found.not_after == short_root[0].not_valid_after_utc


def test_the_leaf_itself_is_not_a_dependency() -> None:
    root = make_ca()
    leaf = issue(key().public_key(), root, not_after=NOW + datetime.timedelta(days=1))
    assert chain_expiry(leaf.public_bytes(PEM), None) is None  # a leaf alone: nothing it depends on is known
    found = chain_expiry(leaf.public_bytes(PEM), root[0].public_bytes(PEM))
    assert found is not None and found.not_after == root[0].not_valid_after_utc


def test_unreadable_or_empty_files_give_nothing() -> None:
    assert chain_expiry(None, None) is None
    assert chain_expiry(b"", b"not a certificate") is None
