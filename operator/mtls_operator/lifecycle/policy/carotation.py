"""When a certificate moves to its issuer's new CA (pure: no I/O).

The issuer's status records when the operator first saw the new CA keypair (`status.rotation.startedTime`, for the
CA of `status.ca.fingerprint`). Each certificate still signed by another CA is re-issued at its own instant inside
`spec.rotation.spread` after that, fixed by its UID (the renewal jitter's idea): 10,000 certificates over a day are
one issuance every 9 s, not a storm, and a restart keeps every certificate's turn.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mtls_operator.lifecycle.policy.trigger import uid_fraction

# The issuer's status has not caught up with its CA Secret yet (the issuer reconcile records the rotation): look
# again after this rather than re-issue under a rotation nobody has recorded.
UNRECORDED_RETRY = datetime.timedelta(seconds=5)
# A certificate with spec.publishCA moves only once its ConfigMap carries the new CA (servers that trust through it
# must accept the new certificate from its first use): looked at again this often until then.
PUBLISHED_RETRY = datetime.timedelta(seconds=2)


@dataclass(frozen=True)
class Move:
    """`due`: re-issue now. Otherwise look again at `at`."""

    due: bool
    at: datetime.datetime


def reissue_time(uid: str, started: datetime.datetime, spread: datetime.timedelta) -> datetime.datetime:
    return started + spread * uid_fraction(uid)


def ca_move(
    uid: str,
    recorded_fingerprint: str | None,
    current_fingerprint: str,
    started: datetime.datetime | None,
    spread: datetime.timedelta,
    now: datetime.datetime,
) -> Move:
    """For a certificate in service that the issuer's current CA did not sign. No rotation recorded for the
    current CA: the certificate came from elsewhere (its signer was switched to this issuer): due now."""
    if recorded_fingerprint != current_fingerprint:
        return Move(False, now + UNRECORDED_RETRY)
    if started is None:
        return Move(True, now)
    at = reissue_time(uid, started, spread)
    return Move(at <= now, at)
