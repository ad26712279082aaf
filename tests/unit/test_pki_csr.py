from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID as N

from mtls_operator.pki.csr import Subject, build_csr, check_partner_csr, csr_matches, load_csr

SUBJECT = Subject("client.example.com", "IE", "My Company Inc.", "Dublin", "Dublin", "IT")


def test_csr_has_subject_sans_and_usages(client_key):
    csr = load_csr(build_csr(client_key, SUBJECT, ["client.example.com", "alt.example.com"]))
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=client.example.com,OU=IT,O=My Company Inc.,L=Dublin,ST=Dublin,C=IE"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["client.example.com", "alt.example.com"]
    assert csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


def test_ecdsa_csr_has_no_key_encipherment(ec_key):
    csr = load_csr(build_csr(ec_key, SUBJECT, ["client.example.com"]))
    assert not csr.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_openssl_accepts_our_csr(client_key, tmp_path):
    path = tmp_path / "client.csr"
    path.write_bytes(build_csr(client_key, SUBJECT, ["client.example.com"]))
    out = subprocess.run(["openssl", "req", "-in", str(path), "-noout", "-verify"], capture_output=True, text=True)
    assert out.returncode == 0 and "verify OK" in out.stdout + out.stderr


def test_rsa_csr_is_deterministic_so_a_lost_status_gets_the_same_csr(client_key):
    assert build_csr(client_key, SUBJECT, ["a.example"]) == build_csr(client_key, SUBJECT, ["a.example"])


def test_csr_matches(client_key, ec_key):
    pem = build_csr(client_key, SUBJECT, ["client.example.com"]).decode()
    assert csr_matches(pem, client_key, SUBJECT, ["client.example.com"])
    assert not csr_matches(pem, ec_key, SUBJECT, ["client.example.com"])
    assert not csr_matches(pem, client_key, SUBJECT, ["other.example.com"])
    assert not csr_matches(pem, client_key, Subject("x.example", "IE", "O"), ["client.example.com"])
    assert not csr_matches(None, client_key, SUBJECT, [])
    assert not csr_matches("garbage", client_key, SUBJECT, [])


def partner_csr(key, subject: Subject) -> str:
    return build_csr(key, subject, [subject.common_name]).decode()


@pytest.mark.parametrize(
    ("bits", "ok"),
    [(2048, True), (4096, True), (1024, False)],
)
def test_partner_rsa_size(bits, ok):
    key = rsa.generate_private_key(65537, bits)
    csr, problem = check_partner_csr(partner_csr(key, SUBJECT), "client.example.com")
    assert (problem is None) == ok
    if not ok:
        assert problem.message == f"the CSR's RSA key has {bits} bits; at least 2048 are required"


def test_partner_missing_fields_and_cn_mismatch(client_key):
    no_org = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "client.example.com")])
    )
    pem = no_org.sign(client_key, hashes.SHA256())
    _, problem = check_partner_csr(pem.public_bytes(serialization.Encoding.PEM).decode(), "client.example.com")
    assert problem.message == "the CSR's subject is missing required field(s): Country (C), Organisation (O)"
    _, problem = check_partner_csr(partner_csr(client_key, SUBJECT), "expected.example.com")
    assert "does not match spec.commonName 'expected.example.com'" in problem.message
    _, problem = check_partner_csr("not a csr", "x")
    assert problem.message == "spec.csr is not a PEM certificate signing request"


def test_partner_csr_with_broken_signature(client_key):
    der = bytearray(load_csr(partner_csr(client_key, SUBJECT)).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip bits in the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    _, problem = check_partner_csr(tampered, "client.example.com")
    assert problem is not None and "signature is invalid" in problem.message


def test_certifies_csr(ca, client_key, ec_key):
    from harness.pki import issue
    from mtls_operator.pki.csr import certifies_csr

    pem = build_csr(client_key, SUBJECT, ["client.example.com"]).decode()
    assert certifies_csr(issue(client_key.public_key(), ca), pem)
    assert not certifies_csr(issue(ec_key.public_key(), ca), pem)
    assert not certifies_csr(issue(client_key.public_key(), ca), "not a csr")


def test_partner_ecdsa_key_is_refused_by_default_and_allowed_by_policy(ec_key):
    from mtls_operator.pki.csr import CsrPolicy

    pem = partner_csr(ec_key, SUBJECT)
    _, problem = check_partner_csr(pem, "client.example.com")
    assert problem is not None
    assert problem.message.startswith("the CSR's key is ECDSA (256 bits); spec.csrPolicy allows RSA only")
    csr, problem = check_partner_csr(pem, "client.example.com", CsrPolicy(algorithms=("RSA", "ECDSA")))
    assert problem is None and csr is not None
    _, problem = check_partner_csr(pem, "client.example.com", CsrPolicy(algorithms=("ECDSA",), min_ecdsa_bits=384))
    assert problem.message == "the CSR's ECDSA key has 256 bits; at least 384 are required"


def test_csr_policy_never_goes_below_the_guides_minimum():
    from mtls_operator.api.spec import _parse_csr_policy

    assert _parse_csr_policy({"minRSAKeySize": 1024}).min_rsa_bits == 2048
    assert _parse_csr_policy({}).algorithms == ("RSA",)
    assert _parse_csr_policy({"allowedKeyAlgorithms": ["ECDSA"]}).algorithms == ("ECDSA",)


@pytest.mark.parametrize("curve", ["SECP256K1", "BrainpoolP256R1"])
def test_partner_ecdsa_keys_on_curves_tls_stacks_refuse_are_never_signed(curve: str) -> None:
    """An "ECDSA >= 256 bits" policy must not let in the curves TLS stacks reject: Go cannot even parse them."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from mtls_operator.pki.csr import CsrPolicy

    pem = partner_csr(ec.generate_private_key(getattr(ec, curve)()), SUBJECT)
    _, problem = check_partner_csr(pem, "client.example.com", CsrPolicy(algorithms=("ECDSA",)))
    assert problem is not None
    assert "which TLS stacks do not accept" in problem.message
    assert "P-256, P-384 and P-521" in problem.message


def _raw_csr(key, rdns: list[list[tuple[x509.ObjectIdentifier, str]]]) -> str:
    name = x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in rdn]) for rdn in rdns])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM).decode()  # fmt: skip


@pytest.mark.parametrize(
    ("rdns", "named"),
    [
        # The attack: a second CN (Go and Java read the last), an extra O and a UID behind the checked ones.
        ([[(N.COUNTRY_NAME, "IE")], [(N.ORGANIZATION_NAME, "My Company Inc.")], [(N.COMMON_NAME, "client.example.com")],
          [(N.ORGANIZATION_NAME, "system:masters")], [(N.USER_ID, "root")],
          [(N.COMMON_NAME, "api.billing.example.com")]], "userID"),
        ([[(N.COUNTRY_NAME, "IE")], [(N.ORGANIZATION_NAME, "My Company Inc.")], [(N.COMMON_NAME, "client.example.com")],
          [(N.COMMON_NAME, "api.billing.example.com")]], "2 values of CN ('client.example.com'"),
        ([[(N.COUNTRY_NAME, "IE")], [(N.ORGANIZATION_NAME, "My Company Inc."), (N.ORGANIZATION_NAME, "system:masters")],
          [(N.COMMON_NAME, "client.example.com")]], "multi-valued part (O="),
        ([[(N.COUNTRY_NAME, "IE")], [(N.ORGANIZATION_NAME, "My Company Inc.")], [(N.COMMON_NAME, "client.example.com")],
          [(N.EMAIL_ADDRESS, "pki@partner.example")]], "emailAddress"),
    ],
    ids=["second-cn-extra-o-uid", "second-cn", "multi-valued-o", "email"],
)  # fmt: skip
def test_only_subjects_we_checked_are_signed(client_key, rdns, named: str) -> None:
    _, problem = check_partner_csr(_raw_csr(client_key, rdns), "client.example.com")
    assert problem is not None
    assert named in problem.message
