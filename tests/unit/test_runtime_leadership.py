from __future__ import annotations

import datetime

import pytest

from mtls_operator.runtime.leadership import ACQUIRE, FOLLOW, RENEW, LeaseRecord, decide_lease

T0 = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)
S15 = datetime.timedelta(seconds=15)


def record(holder: str, renew: str = "r1") -> LeaseRecord:
    return LeaseRecord(holder=holder, renew_time=renew, duration=S15)


@pytest.mark.parametrize(
    ("lease", "observed_after", "now_after", "action"),
    [
        (None, None, 0, ACQUIRE),  # no Lease yet
        (record("me"), 0, 0, RENEW),
        (record(""), 0, 0, ACQUIRE),  # released by a graceful stop: no need to wait
        (record("other"), 0, 0, FOLLOW),
        (record("other"), 0, 14, FOLLOW),  # unchanged for 14 s: still theirs
        (record("other"), 0, 15, ACQUIRE),  # unchanged for the lease duration: expired
        (record("other"), None, 60, FOLLOW),  # never observed: start the clock first
    ],
)
def test_decide_lease(lease, observed_after, now_after, action):
    observed = None if observed_after is None else T0 + datetime.timedelta(seconds=observed_after)
    assert decide_lease(lease, "me", observed, T0 + datetime.timedelta(seconds=now_after)).action == action


def test_expiry_is_judged_by_our_observation_not_the_holders_clock():
    # The holder's renewTime may be far in the past by our clock (skew): what counts is how long WE saw no change.
    skewed = LeaseRecord(holder="other", renew_time="1999-01-01T00:00:00.000000Z", duration=S15)
    assert decide_lease(skewed, "me", T0, T0 + datetime.timedelta(seconds=5)).action == FOLLOW
