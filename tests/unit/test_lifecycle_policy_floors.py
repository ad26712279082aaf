"""policy.floors: the platform's floors on duration and renewBefore, and the per-certificate issuance rate."""

from __future__ import annotations

import datetime

from mtls_operator.lifecycle.policy.floors import (
    DURATION_BELOW_FLOOR,
    RENEW_BEFORE_BELOW_FLOOR,
    Floors,
    below_floor,
    issue_not_before,
    rapid_count,
)
from mtls_operator.lifecycle.policy.trigger import TriggerReason

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
FLOORS = Floors()  # 1h, 1m
S = datetime.timedelta(seconds=1)


def test_below_a_floor_is_named_with_the_value_the_floor_and_where_it_is_set() -> None:
    found = below_floor(1 * S, 0 * S, FLOORS)
    assert found is not None and found.reason == DURATION_BELOW_FLOOR
    assert "spec.duration 1s is below this cluster's floor of 1h" in found.message and "--min-duration" in found.message
    renew = below_floor(2 * 3600 * S, 30 * S, FLOORS)
    assert renew is not None and renew.reason == RENEW_BEFORE_BELOW_FLOOR and "floor of 1m" in renew.message
    assert below_floor(3600 * S, 60 * S, FLOORS) is None  # exactly at the floors: served


def test_issuances_in_quick_succession_wait_longer_each_time_up_to_a_quarter_of_the_floor() -> None:
    rapid = 0
    last = None
    delays = []
    for _ in range(8):
        rapid = rapid_count(last, rapid, NOW if last is None else last + 60 * S, FLOORS)
        last = NOW if last is None else last + 60 * S
        not_before = issue_not_before(TriggerReason.RENEWAL_DUE, last, rapid, FLOORS)
        delays.append(int((not_before - last).total_seconds()) if not_before else 0)
    assert delays == [0, 30, 60, 120, 240, 480, 900, 900]
    # A gap longer than the window (10 minutes) starts the count again.
    assert rapid_count(NOW, 5, NOW + 11 * 60 * S, FLOORS) == 0


def test_what_a_person_asks_for_is_never_delayed() -> None:
    for trigger in (TriggerReason.RENEWAL_REQUESTED, TriggerReason.NO_CERTIFICATE, TriggerReason.REVOKED):
        assert issue_not_before(trigger, NOW, 6, FLOORS) is None
    assert issue_not_before(TriggerReason.EXPIRED, NOW, 1, FLOORS) == NOW + 30 * S
