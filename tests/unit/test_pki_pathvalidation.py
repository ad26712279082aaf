"""pki.pathvalidation with a fixed clock: the dates of every certificate on the path, Go's refusals, and OpenSSL's
verdict put in words. Which chains servers accept is measured against real servers in
tests/e2e/test_chain_verdicts.py; here each rule's message is pinned."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import partnerchains as pc
from mtls_operator.pki.handshake import openssl_server_verdict
from mtls_operator.pki.pathvalidation import path_problem
from mtls_operator.pki.signing import CertificateAuthority, issuer_problem

OUR_KEY = rsa.generate_private_key(65537, 2048)
DAY = datetime.timedelta(days=1)


def where(cert: x509.Certificate) -> str:
    return "in the test"


def chain_of(files: pc.PartnerFiles) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    return x509.load_pem_x509_certificates(files.tls_crt), x509.load_pem_x509_certificates(files.ca_crt or b"")


def test_a_good_chain_is_accepted_by_openssl_and_every_rule() -> None:
    chain, anchors = chain_of(pc.chained(OUR_KEY.public_key()))
    assert openssl_server_verdict(chain, OUR_KEY, anchors).accepted
    assert path_problem(chain, anchors, OUR_KEY, pc.utcnow(), where) is None


def test_the_clock_is_ours_not_the_machines() -> None:
    """The same chain is fine today and refused a day after its intermediate expires (fixed clock)."""
    chain, anchors = chain_of(pc.chained(OUR_KEY.public_key(), inter_spec=pc.ca_spec(not_after=30 * DAY)))
    assert path_problem(chain, anchors, OUR_KEY, pc.utcnow(), where) is None
    later = pc.utcnow() + 31 * DAY
    problem = path_problem(chain, anchors, OUR_KEY, later, where)
    assert problem is not None and problem.reason == "UntrustedChain"
    assert "CN=Partner Issuing CA (in the test) expired at" in problem.message
    leaf_later = pc.utcnow() + 400 * DAY
    problem = path_problem(chain, anchors, OUR_KEY, leaf_later, where)
    assert problem is not None and problem.reason == "Expired"


@pytest.mark.parametrize(
    ("files", "reason", "fragment"),
    [
        (lambda: pc.chained(OUR_KEY.public_key(), inter_spec=pc.ca_spec(key_usage=pc.CRL_ONLY)), "UntrustedChain",
         "keyCertSign is missing"),
        (lambda: pc.chained(OUR_KEY.public_key(), root_kind="rsa1024"), "UntrustedChain", "RSA key of 1024 bits"),
        (lambda: pc.chained(OUR_KEY.public_key(), root_spec=pc.ca_spec("Partner Root CA", path_length=0), levels=2),
         "UntrustedChain", "allows at most 0 intermediate CA(s) below it"),
        (lambda: pc.chained(OUR_KEY.public_key(), leaf_spec_=pc.leaf_spec(key_usage=pc.ENCIPHER_ONLY_USAGE)),
         "WrongUsage", "lacks digitalSignature"),
        (lambda: pc.chained(OUR_KEY.public_key(), inter_spec=pc.ca_spec(unknown_critical=True)), "UntrustedChain",
         "1.3.6.1.4.1.55555.1.1"),
        (lambda: pc.chained(OUR_KEY.public_key(), inter_kind="secp256k1"), "UntrustedChain", "secp256k1"),
        (lambda: pc.chained(OUR_KEY.public_key(), leaf_spec_=pc.leaf_spec(wrong_aki=True)), "UntrustedChain",
         "authorityKeyIdentifier"),
    ],
    ids=["no-keycertsign", "rsa-1024", "pathlen", "leaf-key-usage", "critical-extension", "curve", "aki"],
)  # fmt: skip
def test_each_refusal_names_the_rule(files, reason: str, fragment: str) -> None:
    chain, anchors = chain_of(files())
    problem = path_problem(chain, anchors, OUR_KEY, pc.utcnow(), where)
    assert problem is not None, fragment
    assert problem.reason == reason
    assert fragment in problem.message
    assert "ask the partner" in problem.message


def test_without_the_key_only_the_rules_that_need_none_run() -> None:
    """The plugin holds only the CSR's public key: OpenSSL cannot be asked, the clock and Go's rules still are."""
    chain, anchors = chain_of(pc.chained(OUR_KEY.public_key(), root_kind="rsa1024"))
    assert path_problem(chain, anchors, None, pc.utcnow(), where) is None
    chain, anchors = chain_of(pc.chained(OUR_KEY.public_key(), inter_kind="secp256k1"))
    assert path_problem(chain, anchors, None, pc.utcnow(), where) is not None


@pytest.mark.parametrize(
    ("authority", "fragment"),
    [
        (lambda: pc.root(kind="rsa1024", slot="unit"), "1024 bits"),
        (lambda: pc.intermediate(pc.root(), pc.ca_spec(key_usage=pc.CRL_ONLY)), "keyCertSign"),
        (lambda: pc.intermediate(pc.root(), pc.ca_spec(unknown_critical=True)), "critical"),
    ],
    ids=["rsa-1024", "no-keycertsign", "critical-extension"],
)
def test_our_own_ca_is_held_to_the_same_rules(authority, fragment: str) -> None:
    ca = authority()
    problem = issuer_problem(CertificateAuthority(ca.cert, ca.key))
    assert problem is not None and fragment in problem
    assert problem.startswith("servers would refuse every certificate this CA issues")


def test_a_good_ca_and_a_v1_root_pass_the_probe(tmp_path) -> None:
    for ca in (pc.root(), pc.intermediate(pc.root()), pc.openssl_v1_root(tmp_path)):
        assert issuer_problem(CertificateAuthority(ca.cert, ca.key)) is None


def test_sha1_signatures_are_named_not_mistaken_for_strays(tmp_path) -> None:
    """A SHA-1 leaf used to be 'not part of the chain' (remove the real intermediate!), a SHA-1 intermediate an
    issuer 'in neither tls.crt nor ca.crt': cryptography no longer verifies SHA-1, so sorting now goes by name
    and leaves the verdict to OpenSSL, which names the algorithm."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from mtls_operator.pki.verify import Rejection, verify_signed_certificate

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, pc.CN)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(OUR_KEY, hashes.SHA256())
    expected = {
        "leaf-sha1": "the certificate is signed with SHA1",
        "intermediate-sha1": "CN=Partner Issuing CA (number 2 in tls.crt) is signed with SHA1",
    }
    for case, named in expected.items():
        files = pc.files_for(case, csr, tmp_path / case)
        result = verify_signed_certificate(files.tls_crt, files.ca_crt, OUR_KEY, pc.CN, pc.utcnow())
        assert isinstance(result, Rejection), case
        assert named in result.message
        assert "not part of the chain" not in result.message and "in neither" not in result.message


def test_a_chain_longer_than_the_limit_is_refused_by_name_not_walked() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mtls_operator.pki.chain import MAX_PATH
    from mtls_operator.pki.verify import Rejection, verify_signed_certificate

    top = pc.root()
    issuers = [top]
    for level in range(MAX_PATH):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = pc.build(pc.ca_spec(f"Partner CA {level}"), key.public_key(), issuers[-1], issuers[-1].key)
        issuers.append(pc.Authority(cert, key))
    mine = pc.leaf(OUR_KEY.public_key(), issuers[-1])
    tls = pc.pem(mine, *(a.cert for a in reversed(issuers[1:])))
    result = verify_signed_certificate(tls, top.pem, OUR_KEY, pc.CN, pc.utcnow())
    assert isinstance(result, Rejection) and result.reason == "InvalidChain"
    assert f"longer than {MAX_PATH} certificates" in result.message
    shorter = pc.pem(mine, *(a.cert for a in reversed(issuers[-3:])))  # three intermediates: fine, until the root
    assert "longer than" not in getattr(verify_signed_certificate(shorter, top.pem, OUR_KEY, pc.CN, pc.utcnow()),
                                        "message", "")  # fmt: skip


def test_a_root_renewed_under_the_same_name_and_key_is_chosen_over_the_expired_one() -> None:
    """Partners renewing a root send old and new together, old first: the path ends at the one valid now."""
    key = pc.key("rsa2048", "renewed-root")
    old = pc.build(pc.ca_spec("Partner Root CA", not_before=-900 * DAY, not_after=-DAY), key.public_key(), None, key)
    new = pc.build(pc.ca_spec("Partner Root CA", not_before=-DAY), key.public_key(), None, key)
    inter = pc.intermediate(pc.Authority(new, key))
    chain = [pc.leaf(OUR_KEY.public_key(), inter), inter.cert]
    assert path_problem(chain, [old, new], OUR_KEY, pc.utcnow(), where) is None
    problem = path_problem(chain, [old], OUR_KEY, pc.utcnow(), where)
    assert problem is not None and "expired at" in problem.message
