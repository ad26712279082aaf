"""The platform team's floors on a certificate's timing, and the per-certificate issuance rate (pure; named reasons).

Floors: `duration: 1s` with the `ca` signer re-issued every second, each an RSA key and an Event, and two such
objects saturated the operator for every tenant. The platform sets the smallest duration and renewBefore it serves
(--min-duration, --min-renew-before; the chart renders the same numbers into an admission policy, so most are
refused at `kubectl apply`). Below them nothing is issued; a certificate in service keeps serving.

Rate: whatever the spec, a certificate re-issued again and again by the clock (a CA that caps notAfter at its own
imminent expiry, a renewal window that swallows the validity) waits longer each time. The numbers follow the
duration floor, the platform's own statement of how often a certificate may be issued: with the default hour, an
issuance within ten minutes (a sixth) of the previous one is rapid, and the next after n rapid ones waits
30 s * 2^(n-1), never more than 15 minutes (a quarter: a certificate at the floor is renewed long before it
expires). What a person asks for (`kubectl mtls renew`), a first issuance and a re-issue after a key compromise are
never delayed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mtls_operator.lifecycle.policy.trigger import TriggerReason

NEVER_DELAYED = frozenset({TriggerReason.NO_CERTIFICATE, TriggerReason.RENEWAL_REQUESTED, TriggerReason.REVOKED})
DURATION_BELOW_FLOOR = "DurationBelowFloor"
RENEW_BEFORE_BELOW_FLOOR = "RenewBeforeBelowFloor"


@dataclass(frozen=True)
class Floors:
    min_duration: datetime.timedelta = datetime.timedelta(hours=1)
    min_renew_before: datetime.timedelta = datetime.timedelta(minutes=1)

    @property
    def rapid_window(self) -> datetime.timedelta:
        """An issuance this soon after the previous one counts as rapid."""
        return self.min_duration / 6

    @property
    def base_delay(self) -> datetime.timedelta:
        return self.min_duration / 120

    @property
    def max_delay(self) -> datetime.timedelta:
        return self.min_duration / 4


@dataclass(frozen=True)
class BelowFloor:
    reason: str
    message: str


def below_floor(duration: datetime.timedelta, renew_before: datetime.timedelta, floors: Floors) -> BelowFloor | None:
    if duration < floors.min_duration:
        return BelowFloor(
            DURATION_BELOW_FLOOR,
            f"spec.duration {_text(duration)} is below this cluster's floor of {_text(floors.min_duration)} "
            "(the operator's --min-duration, chart certificates.minDuration): nothing is issued until spec.duration "
            "is raised",
        )
    if renew_before < floors.min_renew_before:
        return BelowFloor(
            RENEW_BEFORE_BELOW_FLOOR,
            f"spec.renewBefore {_text(renew_before)} is below this cluster's floor of "
            f"{_text(floors.min_renew_before)} (--min-renew-before, chart certificates.minRenewBefore): renewal "
            "would start too late to finish before expiry; raise spec.renewBefore",
        )
    return None


def rapid_count(
    previous_issued: datetime.datetime | None, previous_count: int, now: datetime.datetime, floors: Floors
) -> int:
    """The status' count of rapid issuances after one more issuance at `now`."""
    if previous_issued is not None and now - previous_issued < floors.rapid_window:
        return previous_count + 1
    return 0


def issue_not_before(
    trigger: TriggerReason, last_issued: datetime.datetime | None, rapid: int, floors: Floors
) -> datetime.datetime | None:
    """The earliest time the next issuance may happen (None: now)."""
    if trigger in NEVER_DELAYED or last_issued is None or rapid <= 0:
        return None
    delay = min(floors.base_delay * (2 ** min(rapid - 1, 16)), floors.max_delay)
    return last_issued + delay


def _text(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"
