"""Certificate revocation lists: the X.509 v2 CRL an issuer signs (RFC 5280 §5), and reading one back.

What goes in: the CRL number (monotonic: the caller never hands a smaller one), the authority key identifier of
the CA, thisUpdate/nextUpdate, and one entry per revoked serial with its revocation date and reason code (absent
for `unspecified`, as §5.3.1 asks). Signed with whatever private-key object the CA has: a key in memory, or a
PKCS#11 token's (hsm.keys: cryptography calls the key's `sign`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtls_operator.pki.signing import CertificateAuthority, authority_key_identifier

# RFC 5280's CRLReason names, as people and the API spell them -> the reason code. certificateHold (a suspension
# that can be lifted) and removeFromCRL are left out: a revocation here is final.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}
REASON_NAMES = {flag: name for name, flag in REASONS.items()}
# 20 octets is RFC 5280's limit for a serial number; a longer "serial" cannot be one we issued.
MAX_SERIAL_BITS = 160


@dataclass(frozen=True, order=True)
class RevokedEntry:
    serial_number: int
    revoked_at: datetime.datetime
    reason: str  # a key of REASONS


@dataclass(frozen=True)
class CrlInfo:
    """What a published CRL says, read back (to decide whether to sign again, and for status and metrics)."""

    number: int
    this_update: datetime.datetime
    next_update: datetime.datetime | None
    issuer_key_id: bytes | None
    serials: frozenset[int]


def parse_serial(text: str) -> int:
    """A serial number as people copy it: hex with or without colons or a 0x prefix (openssl's, our status's).
    Raises ValueError naming what is wrong."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if not cleaned or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError(f"serial number {text[:80]!r} is not hexadecimal (as openssl x509 -serial prints it)")
    value = int(cleaned, 16)
    if value <= 0 or value.bit_length() > MAX_SERIAL_BITS:
        raise ValueError(f"serial number {text[:80]!r} is not a certificate serial (1 to 20 octets, positive)")
    return value


def build_crl(
    ca: CertificateAuthority,
    entries: Iterable[RevokedEntry],
    number: int,
    this_update: datetime.datetime,
    next_update: datetime.datetime,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
    )
    for entry in sorted(entries):
        revoked = x509.RevokedCertificateBuilder().serial_number(entry.serial_number).revocation_date(entry.revoked_at)
        flag = REASONS.get(entry.reason, x509.ReasonFlags.unspecified)
        if flag != x509.ReasonFlags.unspecified:
            revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(ca.key, hashes.SHA256())


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def read_crl(data: bytes) -> x509.CertificateRevocationList:
    """PEM or DER; raises ValueError."""
    if b"-----BEGIN X509 CRL-----" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def crl_info(crl: x509.CertificateRevocationList) -> CrlInfo:
    try:
        number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        number = 0
    try:
        key_id = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        key_id = None
    return CrlInfo(
        number=number,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        issuer_key_id=key_id,
        serials=frozenset(r.serial_number for r in crl),
    )


def revocation_in(crl: x509.CertificateRevocationList, serial: int) -> tuple[datetime.datetime, str] | None:
    """(when, reason name) when `serial` is on the CRL."""
    revoked = crl.get_revoked_certificate_by_serial_number(serial)
    if revoked is None:
        return None
    try:
        flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        flag = x509.ReasonFlags.unspecified
    return revoked.revocation_date_utc, REASON_NAMES.get(flag, flag.value)


def signed_by(crl: x509.CertificateRevocationList, ca_certificates: Sequence[x509.Certificate]) -> bool:
    """Whether one of these CA certificates issued and signed the CRL."""
    for ca in ca_certificates:
        if ca.subject == crl.issuer:
            try:
                if crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                    return True
            except (TypeError, ValueError):
                continue
    return False
