"""Sorting out a partner's files: the leaf for our key wherever it is, its chain in order, roots to ca.crt."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.pki import NOW, issue, make_ca
from mtls_operator.pki.certificates import to_pem
from mtls_operator.pki.keys import public_key_fingerprint
from mtls_operator.pki.verify import Rejection, Verified, verify_signed_certificate

CN = "client.example.com"


@pytest.fixture(scope="module")
def pki(client_key):
    """root → intermediate → leaf for our key, as a commercial CA issues them."""
    root = make_ca("Partner Root")
    inter_key = rsa.generate_private_key(65537, 2048)
    inter = issue(inter_key.public_key(), root, cn="Partner Issuing CA", ca=True)
    leaf = issue(client_key.public_key(), (inter, inter_key))
    return root[0], inter, leaf


def verdict(tls, ca, key):
    return verify_signed_certificate(to_pem(tls), to_pem(ca) if ca else None, key, CN, NOW)


def test_every_split_and_order_gives_the_canonical_secret(pki, client_key):
    """Any mix of leaf, intermediate and root across the two files, in any order: tls.crt = leaf + intermediate,
    ca.crt = root, so a client that sends tls.crt as it is (Go, Java) presents the whole chain."""
    root, inter, leaf = pki
    certs = [root, inter, leaf]
    tried = 0
    for in_tls in range(1, 4):
        for chosen in itertools.permutations(certs, in_tls):
            rest = [c for c in certs if c not in chosen]
            for ca_order in itertools.permutations(rest):
                result = verdict(list(chosen), list(ca_order), client_key)
                assert isinstance(result, Verified), (chosen, ca_order, result)
                assert result.chain == [leaf, inter] and result.ca_certificates == [root]
                tried += 1
    assert tried == 3 * 2 + 6 * 1 + 6 * 1  # every way to split three certificates, tls.crt non-empty


def test_intermediate_only_in_ca_crt_moves_into_tls_crt(pki, client_key):
    root, inter, leaf = pki
    result = verdict([leaf], [inter, root], client_key)
    assert isinstance(result, Verified) and result.chain == [leaf, inter] and result.ca_certificates == [root]


def test_intermediate_as_the_only_ca_is_an_anchor_and_sent(pki, client_key):
    """A partner that gives its issuing CA alone: it anchors the chain and is also sent by the client."""
    _, inter, leaf = pki
    result = verdict([leaf], [inter], client_key)
    assert isinstance(result, Verified) and result.chain == [leaf, inter] and result.ca_certificates == [inter]


def test_root_rotation_keeps_both_roots(pki, client_key):
    root, inter, leaf = pki
    new_root = make_ca("Partner Root 2027")[0]
    result = verdict([leaf, inter], [new_root, root], client_key)
    assert isinstance(result, Verified) and result.ca_certificates == [root, new_root]
    result = verdict([leaf, new_root, inter, root], [], client_key)  # both roots sent in tls.crt
    assert isinstance(result, Verified) and result.chain == [leaf, inter]
    assert set(result.ca_certificates) == {root, new_root}


def test_missing_intermediate_names_the_issuer_it_needs(pki, client_key):
    root, _, leaf = pki
    result = verdict([leaf], [root], client_key)
    assert isinstance(result, Rejection) and result.reason == "UntrustedChain"
    assert "its issuer 'CN=Partner Issuing CA' is in neither tls.crt nor ca.crt" in result.message
    assert "ask the partner for its certificate" in result.message


def test_a_root_that_is_not_the_given_ca_is_refused(pki, client_key):
    root, inter, leaf = pki
    other = make_ca("Someone Else")[0]
    result = verdict([leaf, inter, root], [other], client_key)
    assert isinstance(result, Rejection) and result.reason == "UntrustedChain"
    assert "ends at the root 'CN=Partner Root', which is not in ca.crt" in result.message


def test_a_ca_certificate_alone_says_so(pki, client_key):
    root, inter, _ = pki
    for tls, ca in (([root], []), ([inter, root], []), ([root], [inter])):
        result = verdict(tls, ca, client_key)
        assert isinstance(result, Rejection) and result.reason == "CACertificateOnly", result
        assert "that is the partner's CA, not the certificate they signed for our CSR" in result.message


def test_another_key_names_both_fingerprints(ca, client_key):
    other_key = rsa.generate_private_key(65537, 2048)
    result = verdict([issue(other_key.public_key(), ca)], [], client_key)
    assert isinstance(result, Rejection) and result.reason == "KeyMismatch"
    assert public_key_fingerprint(other_key.public_key()) in result.message
    assert public_key_fingerprint(client_key) in result.message
    assert "it was signed for a different CSR" in result.message


def test_a_stray_certificate_in_tls_crt_is_refused_not_dropped(pki, client_key):
    root, inter, leaf = pki
    stranger = issue(rsa.generate_private_key(65537, 2048).public_key(), make_ca("Y"), cn="stranger.example.com")
    result = verdict([leaf, inter, stranger], [root], client_key)
    assert isinstance(result, Rejection) and result.reason == "InvalidChain"
    assert "number 3 in tls.crt (CN=stranger.example.com) is not part of the chain" in result.message


def test_two_certificates_for_our_key_are_ambiguous(pki, client_key, ca):
    _, inter, leaf = pki
    second = issue(client_key.public_key(), ca)
    result = verdict([leaf, second, inter], [], client_key)
    assert isinstance(result, Rejection) and result.reason == "InvalidChain"
    assert "2 different certificates are for the pending key" in result.message


def test_swapped_files_are_sorted_out(pki, client_key):
    """The partner's mail had the names the wrong way round: the leaf in ca.crt, the CA in tls.crt."""
    root, inter, leaf = pki
    result = verdict([inter, root], [leaf], client_key)
    assert isinstance(result, Verified) and result.chain == [leaf, inter] and result.ca_certificates == [root]


def test_openssl_v1_client_certificate_for_another_key_is_a_key_mismatch(tmp_path, client_key):
    """`openssl x509 -req` without extensions makes v1 certificates; one for another key is not 'a CA'."""
    import subprocess

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "9",
            "-subj", "/CN=Hand CA")  # fmt: skip
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "o.key", "-out", "o.csr", "-subj", f"/CN={CN}")
    openssl("x509", "-req", "-in", "o.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "o.crt")
    data = (tmp_path / "o.crt").read_bytes()
    result = verify_signed_certificate(data, None, client_key, CN, NOW)  # the key is checked before the dates
    assert isinstance(result, Rejection) and result.reason == "KeyMismatch", result
