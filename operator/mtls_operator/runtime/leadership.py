"""Who may write: a coordination.k8s.io Lease decides (the same scheme as client-go's leaderelection).

Pure: given the Lease as last read, when we first saw its current record, and the clock, say what to do. Expiry is
judged by *our* observation time of the holder's last renewal, never by comparing the holder's clock with ours
(clocks of two nodes may differ; the time we have watched a record not change may not).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

ACQUIRE = "Acquire"  # the Lease is free or expired: take it
RENEW = "Renew"  # we hold it: renew it
FOLLOW = "Follow"  # someone else holds a live Lease: stand by


@dataclass(frozen=True)
class LeaseRecord:
    holder: str  # "" when released
    renew_time: str  # as written by the holder; only compared for change
    duration: datetime.timedelta


@dataclass(frozen=True)
class LeaseDecision:
    action: str
    reason: str


def decide_lease(
    record: LeaseRecord | None,
    identity: str,
    observed_at: datetime.datetime | None,
    now: datetime.datetime,
) -> LeaseDecision:
    """`observed_at`: when this process first saw `record` as it is now (None: never seen)."""
    if record is None:
        return LeaseDecision(ACQUIRE, "no Lease exists")
    if record.holder == identity:
        return LeaseDecision(RENEW, "we hold the Lease")
    if not record.holder:
        return LeaseDecision(ACQUIRE, "the Lease was released")
    if observed_at is not None and now >= observed_at + record.duration:
        return LeaseDecision(ACQUIRE, f"{record.holder} has not renewed the Lease for {record.duration.seconds}s")
    return LeaseDecision(FOLLOW, f"{record.holder} holds the Lease")
