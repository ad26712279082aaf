from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.pki import NOW, issue, make_ca
from mtls_operator.pki.csr import Subject, build_csr, load_csr
from mtls_operator.pki.keys import private_key_to_pem
from mtls_operator.pki.signing import load_ca, random_serial_number, sign_csr

PEM = serialization.Encoding.PEM


def test_sign_csr_issues_a_client_certificate(client_key):
    ca_cert, ca_key = make_ca()
    ca = load_ca(ca_cert.public_bytes(PEM), private_key_to_pem(ca_key))
    csr = load_csr(build_csr(client_key, Subject("c.example", "IE", "O"), ["c.example"]))
    cert = sign_csr(csr, ca, datetime.timedelta(days=90), NOW)
    assert cert.subject == csr.subject and cert.issuer == ca_cert.subject
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=90)
    assert cert.signature_hash_algorithm.name == "sha256"
    cert.verify_directly_issued_by(ca_cert)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key()).digest
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_serials_are_random_128_bit():
    serials = {random_serial_number() for _ in range(1000)}
    assert len(serials) == 1000
    assert all(0 < s < 2**128 for s in serials)
    assert max(serials).bit_length() > 120


def test_load_ca_errors(ca, client_key):
    crt = ca[0].public_bytes(PEM)
    with pytest.raises(ValueError, match="needs both tls.crt and tls.key"):
        load_ca(crt, None)
    with pytest.raises(ValueError, match="does not belong to its tls.crt"):
        load_ca(crt, private_key_to_pem(client_key))
    with pytest.raises(ValueError, match="tls.key is unreadable"):
        load_ca(crt, b"nope")
    leaf = issue(client_key.public_key(), ca)
    with pytest.raises(ValueError, match="not a CA certificate"):
        load_ca(leaf.public_bytes(PEM), private_key_to_pem(client_key))


def test_error_messages_never_contain_key_bytes(ca):
    key_pem = private_key_to_pem(ca[1])
    broken = key_pem[:200] + b"!!" + key_pem[202:]
    with pytest.raises(ValueError) as info:
        load_ca(ca[0].public_bytes(PEM), broken)
    body_lines = [line for line in key_pem.decode().splitlines() if not line.startswith("-----")]
    assert not any(line[:20] in str(info.value) for line in body_lines)


def test_expired_ca_is_refused_and_leaves_never_outlive_their_ca(client_key):
    from cryptography import x509 as x
    from cryptography.hazmat.primitives import hashes as h
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mtls_operator.pki.signing import CertificateAuthority, ca_validity_problem, sign_csr

    key = rsa.generate_private_key(65537, 2048)
    name = x.Name([x.NameAttribute(x.NameOID.COMMON_NAME, "Short CA")])
    now = datetime.datetime(2026, 11, 29, tzinfo=datetime.UTC)
    cert = (
        x.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, h.SHA256())
    )  # fmt: skip
    ca = CertificateAuthority(cert, key)
    assert ca_validity_problem(ca, now) is None
    assert (
        ca_validity_problem(ca, now + datetime.timedelta(days=11))
        == "the CA certificate expired at 2026-12-09T00:00:00Z"
    )
    csr = x.CertificateSigningRequestBuilder().subject_name(name).sign(client_key, h.SHA256())
    leaf = sign_csr(csr, ca, datetime.timedelta(days=365), now)
    assert leaf.not_valid_after_utc == cert.not_valid_after_utc
