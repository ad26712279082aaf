"""pki.crl: the CRL an issuer signs, read back and judged by cryptography and by openssl itself."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.pki import NOW, issue, make_ca
from mtls_operator.pki.crl import (
    REASONS,
    RevokedEntry,
    build_crl,
    crl_info,
    crl_pem,
    parse_serial,
    read_crl,
    revocation_in,
    signed_by,
)
from mtls_operator.pki.signing import CertificateAuthority


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    cert, key = make_ca("CRL CA", key_usage=True)
    return CertificateAuthority(cert, key)


def test_a_crl_lists_each_entry_with_its_reason_number_and_authority_key(ca: CertificateAuthority) -> None:
    entries = [RevokedEntry(0x1F, NOW, "keyCompromise"), RevokedEntry(7, NOW, "unspecified")]
    crl = build_crl(ca, entries, 42, NOW, NOW + datetime.timedelta(days=7))
    info = crl_info(crl)
    assert info.number == 42 and info.serials == {0x1F, 7}
    assert info.next_update == NOW + datetime.timedelta(days=7)
    # This CA has no subjectKeyIdentifier: the identifier is derived from its key, as RFC 5280 4.2.1.2 method 1.
    assert info.issuer_key_id == x509.SubjectKeyIdentifier.from_public_key(ca.certificate.public_key()).digest
    assert revocation_in(crl, 0x1F) == (NOW, "keyCompromise")
    # RFC 5280 5.3.1: unspecified is said by leaving the reason code out.
    entry = crl.get_revoked_certificate_by_serial_number(7)
    assert entry is not None and len(entry.extensions) == 0
    assert revocation_in(crl, 8) is None
    assert signed_by(crl, [ca.certificate])
    assert not signed_by(crl, [make_ca("CRL CA")[0]])  # same name, another key


def test_openssl_verifies_the_crl_and_refuses_a_revoked_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    window = {"not_before": now - datetime.timedelta(days=1), "not_after": now + datetime.timedelta(days=30)}
    revoked = issue(leaf_key.public_key(), (ca.certificate, ca.key), **window)  # type: ignore[arg-type]
    kept = issue(leaf_key.public_key(), (ca.certificate, ca.key), **window)  # type: ignore[arg-type]
    crl = build_crl(ca, [RevokedEntry(revoked.serial_number, now, "superseded")], 1, now,
                    now + datetime.timedelta(hours=1))  # fmt: skip
    (tmp_path / "ca.crt").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.crl").write_bytes(crl_pem(crl))
    for name, cert in (("revoked", revoked), ("kept", kept)):
        (tmp_path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(["openssl", "crl", "-in", "ca.crl", "-CAfile", "ca.crt", "-noout"], cwd=tmp_path,
                             capture_output=True, text=True)  # fmt: skip
    assert "verify OK" in checked.stdout + checked.stderr
    verdicts = {
        name: subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", "ca.crt", "-CRLfile", "ca.crl", f"{name}.crt"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        for name in ("revoked", "kept")
    }
    assert verdicts["kept"].returncode == 0, verdicts["kept"].stderr
    assert verdicts["revoked"].returncode != 0 and "certificate revoked" in verdicts["revoked"].stderr


def test_der_and_pem_read_alike(ca: CertificateAuthority) -> None:
    crl = build_crl(ca, [], 1, NOW, NOW + datetime.timedelta(days=1))
    der = crl.public_bytes(serialization.Encoding.DER)
    assert crl_info(read_crl(der)) == crl_info(read_crl(crl_pem(crl)))
    with pytest.raises(ValueError):
        read_crl(b"not a crl")


@pytest.mark.parametrize(
    ("text", "value"), [("4F:1A:09", 0x4F1A09), ("0x4f1a09", 0x4F1A09), ("0FB9", 0xFB9), (" 01 ", 1)]
)
def test_serials_are_read_as_people_copy_them(text: str, value: int) -> None:
    assert parse_serial(text) == value


@pytest.mark.parametrize("text", ["", "xyz", "0", "-1", "F" * 41])
def test_what_cannot_be_a_serial_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="serial number"):
        parse_serial(text)


def test_the_reasons_are_rfc_5280s_without_hold() -> None:
    assert "certificateHold" not in REASONS and "removeFromCRL" not in REASONS
    assert REASONS["keyCompromise"] == x509.ReasonFlags.key_compromise
