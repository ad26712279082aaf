from __future__ import annotations

import datetime

from cryptography.hazmat.primitives.asymmetric import rsa

from harness.pki import CLIENT_AUTH, NOW, SERVER_AUTH, issue
from mtls_operator.pki.certificates import to_pem
from mtls_operator.pki.verify import Rejection, Verified, verify_signed_certificate

CN = "client.example.com"


def verdict(chain, key, ca_certs=None, cn=CN, now=NOW):
    return verify_signed_certificate(to_pem(chain), to_pem(ca_certs) if ca_certs else None, key, cn, now)


def test_good_certificate_with_chain(ca, client_key):
    result = verdict([issue(client_key.public_key(), ca, eku=CLIENT_AUTH)], client_key, [ca[0]])
    assert isinstance(result, Verified)
    assert result.ca_certificates == [ca[0]]


def test_intermediate_in_tls_crt_verifies_to_root(ca, client_key):
    inter_key = rsa.generate_private_key(65537, 2048)
    inter = issue(inter_key.public_key(), ca, cn="Intermediate", ca=True)
    leaf = issue(client_key.public_key(), (inter, inter_key))
    assert isinstance(verdict([leaf, inter], client_key, [ca[0]]), Verified)
    missing_intermediate = verdict([leaf], client_key, [ca[0]])
    assert isinstance(missing_intermediate, Rejection) and missing_intermediate.reason == "UntrustedChain"


def test_non_ca_issuer_is_untrusted(ca, client_key):
    fake_key = rsa.generate_private_key(65537, 2048)
    not_a_ca = issue(fake_key.public_key(), ca, cn="Leafy")
    leaf = issue(client_key.public_key(), (not_a_ca, fake_key))
    result = verdict([leaf], client_key, [not_a_ca])
    assert isinstance(result, Rejection) and "is not a CA certificate" in result.message


def test_each_rejection_has_its_reason(ca, other_ca, client_key):
    other_key = rsa.generate_private_key(65537, 2048)
    pub = client_key.public_key()
    cases = {
        "KeyMismatch": verdict([issue(other_key.public_key(), ca)], client_key),
        "CommonNameMismatch": verdict([issue(pub, ca, cn="other.example.com")], client_key),
        "Expired": verdict([issue(pub, ca, not_after=NOW - datetime.timedelta(seconds=1))], client_key),
        "NotYetValid": verdict([issue(pub, ca, not_before=NOW + datetime.timedelta(hours=1))], client_key),
        "UntrustedChain": verdict([issue(pub, ca)], client_key, [other_ca[0]]),
        "WrongUsage": verdict([issue(pub, ca, eku=SERVER_AUTH)], client_key),
    }
    for reason, result in cases.items():
        assert isinstance(result, Rejection), reason
        assert result.reason == reason


def test_unparseable_and_empty_input(client_key):
    for data, message in (
        (b"", "missing or empty"),
        (b"junk\x00", "neither PEM, DER nor PKCS#7"),
        (None, "missing"),
    ):
        result = verify_signed_certificate(data, None, client_key, CN, NOW)
        assert isinstance(result, Rejection) and result.reason == "InvalidCertificate"
        assert message in result.message


def test_public_key_gives_same_verdict_as_private_key(ca, client_key):
    """`kubectl mtls import` checks against the CSR's public key: same verdict, same message."""
    chain = [issue(rsa.generate_private_key(65537, 2048).public_key(), ca)]
    assert verdict(chain, client_key) == verdict(chain, client_key.public_key())


def test_expiry_boundary_is_exclusive(ca, client_key):
    cert = issue(client_key.public_key(), ca, not_after=NOW + datetime.timedelta(seconds=10))
    assert isinstance(verdict([cert], client_key, now=NOW + datetime.timedelta(seconds=9)), Verified)
    assert isinstance(verdict([cert], client_key, now=NOW + datetime.timedelta(seconds=10)), Rejection)


def test_serial_is_printed_like_openssl():
    from mtls_operator.pki.certificates import openssl_serial

    assert openssl_serial(0x0FB96835) == "0FB96835"  # whole bytes: `openssl x509 -serial` keeps the leading zero
    assert openssl_serial(0xABC) == "0ABC"
    assert openssl_serial(0x80) == "80"
