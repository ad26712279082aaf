"""read_certificates: every format a partner really sends, and a precise refusal for what is not a certificate."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from hypothesis import given
from hypothesis import strategies as st

from harness.pki import issue
from mtls_operator.pki.bundle import (
    MAX_CERTIFICATES,
    MAX_FILE_BYTES,
    UnreadableFile,
    certificates_in,
    pem_blocks,
    read_certificates,
)
from mtls_operator.pki.certificates import to_pem
from mtls_operator.pki.keys import private_key_to_pem

DER, PEM = serialization.Encoding.DER, serialization.Encoding.PEM


@pytest.fixture(scope="module")
def leaf(ca, client_key):
    return issue(client_key.public_key(), ca)


def test_pem_in_every_dress(ca, leaf):
    pem = to_pem([leaf, ca[0]])
    dressed = {
        "plain": pem,
        "crlf": pem.replace(b"\n", b"\r\n"),
        "bom": b"\xef\xbb\xbf" + pem,
        "text dump": b"Certificate:\n    Data:\n        Version: 3 (0x2)\n" + pem,
        "bag attributes": b"Bag Attributes\n    localKeyID: 01 02\nsubject=/CN=x\nissuer=/CN=y\n" + pem,
        "x509 label": pem.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(
            b"END CERTIFICATE", b"END X509 CERTIFICATE"
        ),
    }
    for what, data in dressed.items():
        found = read_certificates(data, "tls.crt")
        assert found.certificates == [leaf, ca[0]], what
        assert found.formats == ("PEM",) and found.private_keys == 0


def test_der_and_base64_der(leaf):
    der = leaf.public_bytes(DER)
    assert read_certificates(der, "tls.crt").certificates == [leaf]
    assert read_certificates(der, "tls.crt").formats == ("DER",)
    text = base64.encodebytes(der)  # some portals hand out the base64 without the armour
    assert read_certificates(text, "tls.crt").certificates == [leaf]


def test_pkcs7_pem_and_der(ca, leaf):
    for encoding, form in ((PEM, "PKCS#7 (PEM)"), (DER, "PKCS#7 (DER)")):
        bundle = pkcs7.serialize_certificates([ca[0], leaf], encoding)
        found = read_certificates(bundle, "tls.crt")
        assert set(found.certificates) == {ca[0], leaf} and found.formats == (form,)


def test_openssl_trusted_certificate_block(leaf):
    """`openssl x509 -trustout` appends its trust settings after the certificate inside the block."""
    der = leaf.public_bytes(DER) + bytes.fromhex("3006300406022a03")
    block = b"-----BEGIN TRUSTED CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END TRUSTED CERTIFICATE-----\n"
    assert read_certificates(block, "ca.crt").certificates == [leaf]


def test_private_key_blocks_are_counted_never_kept(leaf, client_key):
    key_pem = private_key_to_pem(client_key)
    rsa_pem = client_key.private_bytes(PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption())  # fmt: skip
    found = read_certificates(key_pem + to_pem([leaf]) + rsa_pem, "tls.crt")
    assert found.certificates == [leaf] and found.private_keys == 2
    assert b"PRIVATE" not in repr(found).encode()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda key, leaf: b"", "is missing or empty"),
        (lambda key, leaf: b"\r\n \xef\xbb\xbf", "is missing or empty"),
        (lambda key, leaf: private_key_to_pem(key), "holds a private key and no certificate: it was not stored"),
        (lambda key, leaf: key.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
         "is a private key (DER), not a certificate"),
        (lambda key, leaf: pkcs12.serialize_key_and_certificates(b"x", key, leaf, None,
                                                                 serialization.BestAvailableEncryption(b"pw")),
         "is a PKCS#12 (.p12/.pfx) file"),
        (lambda key, leaf: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
         "is a certificate signing request (CSR)"),
        (lambda key, leaf: b"junk\x00", "is neither PEM, DER nor PKCS#7"),
        (lambda key, leaf: b"\x30\x03\x02\x01\x01", "binary (DER) data that is neither a certificate"),
        (lambda key, leaf: b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "is not valid base64"),
        (lambda key, leaf: b"-----BEGIN CERTIFICATE-----\nMIIB\n", "no complete PEM block"),
        (lambda key, leaf: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "does not parse"),
    ],
)  # fmt: skip
def test_refusals_say_what_the_file_is(make, words, client_key, leaf):
    data = make(client_key, leaf)
    with pytest.raises(UnreadableFile) as refused:
        read_certificates(data, "tls.crt")
    assert words in str(refused.value) and str(refused.value).startswith("tls.crt")
    assert "PRIVATE KEY-----" not in str(refused.value)
    assert certificates_in(data) == []


def test_csr_from_a_real_builder_is_named(client_key):
    from mtls_operator.pki.csr import Subject, build_csr

    csr = build_csr(client_key, Subject("client.example.com", "IE", "Us"), ["client.example.com"])
    with pytest.raises(UnreadableFile, match="is a certificate signing request"):
        read_certificates(csr, "tls.crt")


# --- bounded, linear reading of what a tenant controls (issue: one Secret froze the operator) -------------------

# The pattern pem_blocks replaced: the reference for what counts as a block (it re-scanned the rest of the file for
# every unmatched BEGIN, which made a hostile megabyte take minutes).
BACKREFERENCE = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
PIECES = [b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----", b"-----BEGIN PKCS7-----",
          b"-----END PKCS7-----", b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----", b"MIIB\n",
          b"-----BEGIN ", b"-----END ", b"-----", b"\r\n"]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), max_size=16))
def test_pem_blocks_are_the_blocks_the_old_pattern_found(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert pem_blocks(data) == BACKREFERENCE.findall(data)


def test_a_megabyte_of_unmatched_begins_is_one_clear_refusal() -> None:
    hostile = b"-----BEGIN CERTIFICATE-----\nMIIB\n" * (MAX_FILE_BYTES // 40)
    with pytest.raises(UnreadableFile, match="no complete PEM block"):
        read_certificates(hostile, "tls.crt")
    with pytest.raises(UnreadableFile, match=f"over the limit of {MAX_FILE_BYTES}"):
        read_certificates(hostile + b"x" * MAX_FILE_BYTES, "tls.crt")


def test_more_certificates_than_a_file_may_hold_are_refused_by_name(leaf) -> None:
    cert = to_pem([leaf])
    with pytest.raises(UnreadableFile, match=f"over the limit of {MAX_CERTIFICATES}"):
        read_certificates(cert * (MAX_CERTIFICATES + 1), "ca.crt")
    assert len(read_certificates(cert * MAX_CERTIFICATES, "ca.crt").certificates) == MAX_CERTIFICATES
