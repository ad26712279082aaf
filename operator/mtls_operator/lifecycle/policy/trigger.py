"""When does a certificate need a new issuance, and why (the trigger)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from mtls_operator.api.status import parse_time
from mtls_operator.pki.certificates import CertificateInfo
from mtls_operator.pki.keys import KeySpec

MAX_JITTER_FRACTION = 0.10


def uid_fraction(uid: str) -> float:
    """A number in [0, 1) fixed per certificate UID: where in a window this certificate's turn comes."""
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") / 2**64


def renewal_jitter(uid: str, renew_before: datetime.timedelta) -> datetime.timedelta:
    """Deterministic per certificate, in [0, 10% of renewBefore): a fleet issued together does not renew at once."""
    return datetime.timedelta(seconds=int(renew_before.total_seconds() * MAX_JITTER_FRACTION * uid_fraction(uid)))


def renewal_time(
    not_before: datetime.datetime, not_after: datetime.datetime, renew_before: datetime.timedelta, uid: str
) -> datetime.datetime:
    """notAfter - renewBefore - jitter: never later than notAfter - renewBefore.

    The jitter is also capped at a tenth of the time between notBefore and notAfter - renewBefore, so a
    short-lived certificate is never due the moment it is issued. A tenth, not a half: signers backdate notBefore
    (our CA by a minute), so for duration 2m / renewBefore 1m50s that span is 70 s of which only 10 s lie after the
    issuance; half of it (35 s) made one UID in eleven due at once, and an automatic signer then waited for expiry.
    """
    latest = not_after - renew_before
    span = max(latest - not_before, datetime.timedelta(0))
    jitter = min(renewal_jitter(uid, renew_before), span * MAX_JITTER_FRACTION)
    return latest - jitter


class TriggerReason(StrEnum):
    """Why a certificate is (re-)issued; also the reason of the Event and condition that says so."""

    NO_CERTIFICATE = "NoCertificate"
    EXPIRED = "Expired"
    KEY_SPEC_CHANGED = "KeySpecChanged"
    COMMON_NAME_CHANGED = "CommonNameChanged"
    RENEWAL_DUE = "RenewalDue"
    RENEWAL_REQUESTED = "RenewalRequested"
    CSR_CHANGED = "CSRChanged"  # outbound: the partner sent a CSR for another key
    REPLACED = "Replaced"  # a certificate for the key in service was uploaded before renewal was due
    ISSUER_ROTATED = "IssuerRotated"  # the issuer's CA keypair changed: re-issued by the new CA (policy.carotation)
    REVOKED = "Revoked"  # the certificate in service was revoked for keyCompromise: re-issued at once, new key


@dataclass(frozen=True)
class Trigger:
    reason: TriggerReason
    message: str


def issuance_trigger(
    current: CertificateInfo | None,
    current_key: KeySpec | None,
    *,
    common_name: str,
    wanted_key: KeySpec | None,
    renew_before: datetime.timedelta,
    uid: str,
    now: datetime.datetime,
) -> Trigger | None:
    """Why a new certificate must be issued now, or None when the one in service is good.

    `wanted_key` is None for outbound certificates, whose key belongs to the partner.
    """
    if current is None:
        return Trigger(TriggerReason.NO_CERTIFICATE, "no certificate has been issued yet")
    if now >= current.not_after:
        return Trigger(TriggerReason.EXPIRED, f"the certificate expired at {current.not_after:%Y-%m-%dT%H:%M:%SZ}")
    if wanted_key is not None and current_key is not None and current_key != wanted_key:
        return Trigger(
            TriggerReason.KEY_SPEC_CHANGED,
            f"spec.privateKey asks for {wanted_key}, the key in service is {current_key}",
        )
    if current.common_name != common_name:
        return Trigger(
            TriggerReason.COMMON_NAME_CHANGED,
            f"spec.commonName is {common_name!r}, the certificate in service is for {current.common_name!r}",
        )
    due = renewal_time(current.not_before, current.not_after, renew_before, uid)
    if now >= due:
        days = (current.not_after - now).days
        return Trigger(
            TriggerReason.RENEWAL_DUE,
            f"certificate expires in {days} days (notAfter {current.not_after:%Y-%m-%dT%H:%M:%SZ})",
        )
    return None


# No slack: a renewal asked for right after an issuance (a key that leaked) must never count as satisfied by it.
# (Our CA backdates notBefore by a minute, so after a kill between its Secret write and status it may issue once
# more: harmless for an automatic signer; a partner signs after the request, so hand-signed ones are recognised.)
REQUEST_TOLERANCE = datetime.timedelta(0)


def requested_renewal(
    requested: str | None, last_satisfied: str | None, in_service_since: datetime.datetime | None = None
) -> Trigger | None:
    """`kubectl mtls renew` asked at `requested`; it is satisfied once a certificate was put in service after it.

    Status records that (`last_satisfied`), and the certificate's notBefore shows it too when status was lost (a
    kill between switching the Secret and writing status). Asking again before a new certificate is in service
    changes `requested` but starts nothing new: the pending key and CSR already under way serve both requests.
    """
    if not requested or requested == last_satisfied:
        return None
    asked_at = _parse_request_time(requested)
    # Strictly after: a certificate signed in the same (whole) second as the request may be the one it is about.
    if asked_at is not None and in_service_since is not None and in_service_since > asked_at + REQUEST_TOLERANCE:
        return None
    return Trigger(TriggerReason.RENEWAL_REQUESTED, f"renewal requested with kubectl mtls renew at {requested}")


def _parse_request_time(text: str) -> datetime.datetime | None:
    return parse_time(text)


EXPIRY_EVENT_DAYS = (14, 7, 3, 1)


def expiry_warning_threshold(not_after: datetime.datetime, now: datetime.datetime) -> int | None:
    """The smallest of 14/7/3/1 days-left thresholds already crossed, or None: one Warning per threshold."""
    left = not_after - now
    crossed = [d for d in EXPIRY_EVENT_DAYS if left <= datetime.timedelta(days=d)]
    return min(crossed) if crossed else None


def next_wakeup(
    current: CertificateInfo | None, renew_at: datetime.datetime | None, now: datetime.datetime
) -> datetime.datetime | None:
    """The next instant at which a decision about this certificate can change by the clock alone."""
    if current is None:
        return None
    instants = [current.not_after] + [current.not_after - datetime.timedelta(days=d) for d in EXPIRY_EVENT_DAYS]
    if renew_at is not None:
        instants.append(renew_at)
    future = [t for t in instants if t > now]
    return min(future) if future else None
