"""When the CAs a certificate depends on expire: the intermediates after the leaf in tls.crt and every CA in ca.crt
(our CA, or the partner's CA that came back with a hand-signed certificate).

When a CA expires, every certificate under it breaks at once, whatever the leaves' own dates say; a leaf is renewed
by its own clock only. This gives the soonest of those dates so the operator can report it (status, a metric, an
alert) before it matters.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509

from mtls_operator.pki.bundle import certificates_in
from mtls_operator.pki.certificates import common_name_of, pem_certificates

SUBJECT_LIMIT = 1024  # the CRD's maxLength of status.chainNotAfterSubject: a longer one would fail the status write


@dataclass(frozen=True)
class ChainExpiry:
    not_after: datetime.datetime
    subject: str  # the CA's common name (or its whole subject when it has none), for messages


def chain_expiry(tls_crt: bytes | None, ca_crt: bytes | None) -> ChainExpiry | None:
    """The soonest notAfter among the leaf's intermediates (tls.crt after its first certificate) and the
    certificates of ca.crt; None when there are none (a leaf alone, no CA file)."""
    return chain_expiry_of(_certificates(tls_crt), ca_crt)


def chain_expiry_of(tls_certificates: list[x509.Certificate], ca_crt: bytes | None) -> ChainExpiry | None:
    """chain_expiry for a tls.crt already parsed (the reconcile parses it once for the leaf and this)."""
    dependencies = tls_certificates[1:] + _certificates(ca_crt)
    if not dependencies:
        return None
    soonest = min(dependencies, key=lambda cert: cert.not_valid_after_utc)
    subject = common_name_of(soonest) or soonest.subject.rfc4514_string()
    return ChainExpiry(soonest.not_valid_after_utc, subject[:SUBJECT_LIMIT])


def _certificates(data: bytes | None) -> list[x509.Certificate]:
    """PEM first (what the operator writes: the fast path, taken by every reconcile), then any format we read."""
    return pem_certificates(data) or certificates_in(data)
