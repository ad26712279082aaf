"""What a revocation of the certificate in service means for the certificate's object (pure; a named verdict).

- keyCompromise of our own key: re-issue at once, with a new key (the old one is known to others).
- keyCompromise of a partner's key (outbound): that key is never signed again; the partner sends a new CSR.
- any other reason: the certificate is reported Revoked and is not re-issued by itself (the revoker meant it to stop
  serving); a request (`kubectl mtls renew`) or a spec change issues a new one, with a new key.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtls_operator.api.refs import IssuerKey
from mtls_operator.lifecycle.policy.trigger import TriggerReason
from mtls_operator.pki.certificates import openssl_serial
from mtls_operator.pki.crl import RevokedEntry

KEY_COMPROMISE = "keyCompromise"
REVOKED = "Revoked"  # the condition reason of a certificate whose certificate in service is revoked
KEY_REVOKED = "KeyRevoked"  # ... of a partner CSR whose key was revoked for keyCompromise
# What a person asks for, or a changed spec: these issue a new certificate after a revocation.
ASKED = frozenset(
    {
        TriggerReason.RENEWAL_REQUESTED,
        TriggerReason.CSR_CHANGED,
        TriggerReason.KEY_SPEC_CHANGED,
        TriggerReason.COMMON_NAME_CHANGED,
    }
)


@dataclass(frozen=True)
class RevocationVerdict:
    message: str
    reissue_now: bool  # replace the certificate in service at once
    new_key: bool  # whatever is issued next certifies a new key
    refuse_key: bool  # a partner's compromised key: never signed again
    hold: bool  # not re-issued by the clock (renewal, expiry): only when asked

    def blocks(self, trigger: TriggerReason) -> bool:
        return self.hold and trigger not in ASKED


def after_revocation(entry: RevokedEntry, issuer: IssuerKey, *, partner_key: bool, same_key: bool) -> RevocationVerdict:
    """`partner_key`: the partner owns the key (outbound); `same_key`: its CSR is for the revoked certificate's key."""
    what = (
        f"certificate serial {openssl_serial(entry.serial_number)} was revoked by {issuer} "
        f"({entry.reason}, {entry.revoked_at:%Y-%m-%dT%H:%M:%SZ})"
    )
    if entry.reason == KEY_COMPROMISE:
        if partner_key:
            return RevocationVerdict(
                f"{what}: its key is never signed again; ask the partner for a CSR with a new key (spec.csr)",
                reissue_now=False,
                new_key=True,
                refuse_key=same_key,
                hold=False,
            )
        return RevocationVerdict(
            f"{what}: re-issued with a new key", reissue_now=True, new_key=True, refuse_key=False, hold=False
        )
    return RevocationVerdict(
        f"{what}: servers that check the CRL refuse it; `kubectl mtls renew` issues a new certificate (new key) "
        "if it is still wanted, or delete the MtlsCertificate",
        reissue_now=False,
        new_key=not partner_key,
        refuse_key=False,
        hold=True,
    )
