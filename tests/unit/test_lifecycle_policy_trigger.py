"""Renewal decisions with a fixed clock across the boundaries (no cluster)."""

from __future__ import annotations

import datetime

import pytest

from mtls_operator.lifecycle.policy.trigger import (
    expiry_warning_threshold,
    issuance_trigger,
    next_wakeup,
    renewal_jitter,
    renewal_time,
)
from mtls_operator.pki.certificates import CertificateInfo
from mtls_operator.pki.keys import KeySpec

NOT_AFTER = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
RENEW_BEFORE = datetime.timedelta(days=30)
RSA = KeySpec("RSA", 2048)
DAY = datetime.timedelta(days=1)


def info(cn: str = "c.example", not_after: datetime.datetime = NOT_AFTER) -> CertificateInfo:
    return CertificateInfo(cn, not_after - 365 * DAY, not_after, "01", "CN=CA", "AA")


def trigger_at(days_left: float, uid: str = "uid-1", **kw):
    now = NOT_AFTER - datetime.timedelta(days=days_left)
    args = {"common_name": "c.example", "wanted_key": RSA, "renew_before": RENEW_BEFORE, "uid": uid, "now": now}
    args.update(kw)
    return issuance_trigger(info(), RSA, **args)


def test_jitter_is_deterministic_and_within_ten_percent():
    values = [renewal_jitter(f"uid-{i}", RENEW_BEFORE) for i in range(2000)]
    assert all(datetime.timedelta(0) <= v < RENEW_BEFORE * 0.1 for v in values)
    assert renewal_jitter("uid-7", RENEW_BEFORE) == renewal_jitter("uid-7", RENEW_BEFORE)
    assert len(set(values)) > 1900, "a fleet spreads out"
    assert max(values) > RENEW_BEFORE * 0.09 and min(values) < RENEW_BEFORE * 0.01


def test_renewal_time_never_later_than_renew_before():
    for i in range(500):
        assert renewal_time(NOT_AFTER - 365 * DAY, NOT_AFTER, RENEW_BEFORE, f"u{i}") <= NOT_AFTER - RENEW_BEFORE


@pytest.mark.parametrize(
    ("days_left", "reason"),
    [(40, None), (33.001, None), (30, "RenewalDue"), (29, "RenewalDue"), (14, "RenewalDue"), (7, "RenewalDue"),
     (1, "RenewalDue"), (0, "Expired"), (-3, "Expired")],
)  # fmt: skip
def test_trigger_across_boundaries(days_left, reason):
    got = trigger_at(days_left)
    assert (got.reason if got else None) == reason


def test_31_days_depends_only_on_jitter():
    uid = next(u for u in (f"u{i}" for i in range(1000)) if renewal_jitter(u, RENEW_BEFORE) < DAY)
    assert trigger_at(31, uid=uid) is None
    late = next(u for u in (f"u{i}" for i in range(1000)) if renewal_jitter(u, RENEW_BEFORE) > 1.5 * DAY)
    assert trigger_at(31, uid=late).reason == "RenewalDue"


def test_renewal_message_names_days_and_not_after():
    assert trigger_at(20).message == "certificate expires in 20 days (notAfter 2027-01-01T00:00:00Z)"


def test_other_triggers():
    now = NOT_AFTER - 200 * DAY
    base = {"renew_before": RENEW_BEFORE, "uid": "u", "now": now}
    assert issuance_trigger(None, None, common_name="c.example", wanted_key=RSA, **base).reason == "NoCertificate"
    changed = issuance_trigger(info(), RSA, common_name="c.example", wanted_key=KeySpec("RSA", 4096), **base)
    assert changed.reason == "KeySpecChanged"
    cn = issuance_trigger(info(), RSA, common_name="new.example", wanted_key=RSA, **base)
    assert cn.reason == "CommonNameChanged"
    # Outbound: the partner's key, never a KeySpecChanged.
    assert issuance_trigger(info(), KeySpec("ECDSA", 256), common_name="c.example", wanted_key=None, **base) is None


@pytest.mark.parametrize(
    ("days_left", "threshold"), [(30, None), (14.5, None), (14, 14), (8, 14), (7, 7), (3, 3), (2, 3), (1, 1), (0.2, 1)]
)
def test_expiry_warning_thresholds(days_left, threshold):
    assert expiry_warning_threshold(NOT_AFTER, NOT_AFTER - datetime.timedelta(days=days_left)) == threshold


def test_next_wakeup_is_the_next_instant_a_decision_changes():
    renew_at = renewal_time(NOT_AFTER - 365 * DAY, NOT_AFTER, RENEW_BEFORE, "u")
    assert next_wakeup(info(), renew_at, NOT_AFTER - 100 * DAY) == renew_at
    assert next_wakeup(info(), renew_at, renew_at) == NOT_AFTER - 14 * DAY
    assert next_wakeup(info(), renew_at, NOT_AFTER - 2 * DAY) == NOT_AFTER - DAY
    assert next_wakeup(info(), renew_at, NOT_AFTER - datetime.timedelta(hours=1)) == NOT_AFTER
    assert next_wakeup(info(), renew_at, NOT_AFTER) is None
    assert next_wakeup(None, None, NOT_AFTER) is None


def test_short_lived_certificate_is_not_due_at_issuance():
    """duration 2h, renewBefore 1h59m: a 6-minute jitter would make it due before it was issued."""
    not_before = NOT_AFTER - datetime.timedelta(hours=2)
    renew_before = datetime.timedelta(hours=1, minutes=59)
    for i in range(200):
        due = renewal_time(not_before, NOT_AFTER, renew_before, f"u{i}")
        assert not_before + datetime.timedelta(seconds=30) <= due <= NOT_AFTER - renew_before


def test_backdated_short_lived_certificate_is_not_due_at_issuance():
    """Our CA backdates notBefore by a minute: duration 2m, renewBefore 1m50s leaves 10 s after the issuance.

    With the jitter capped at half of notBefore..latest (35 s) every UID whose jitter reached 10 s was due the moment
    it was issued (CI: test_ca_signer_reissues_by_itself saw no revision 1 at all).
    """
    from mtls_operator.pki.signing import BACKDATE

    issued_at = NOT_AFTER - datetime.timedelta(minutes=2)
    renew_before = datetime.timedelta(minutes=1, seconds=50)
    dues = [renewal_time(issued_at - BACKDATE, NOT_AFTER, renew_before, f"u{i}") for i in range(2000)]
    assert all(issued_at < due <= NOT_AFTER - renew_before for due in dues)
    assert min(dues) - issued_at >= datetime.timedelta(seconds=3)
    assert len(set(dues)) > 1, "still jittered"


def test_renewal_request_is_satisfied_by_a_certificate_issued_after_it():
    from mtls_operator.lifecycle.policy.trigger import requested_renewal

    asked = "2026-06-01T12:00:00.000000Z"
    at = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
    assert requested_renewal(asked, None, at - datetime.timedelta(days=30)).reason == "RenewalRequested"
    assert requested_renewal(asked, asked, at - datetime.timedelta(days=30)) is None  # recorded in status
    assert requested_renewal(asked, None, at + datetime.timedelta(seconds=5)) is None  # signed after the request
    assert requested_renewal(asked, None, at - datetime.timedelta(seconds=2)).reason == "RenewalRequested"
    assert requested_renewal(asked, None, at).reason == "RenewalRequested"  # the same second: maybe the leaked one
    assert requested_renewal(asked, None, at - datetime.timedelta(minutes=5)).reason == "RenewalRequested"
    assert requested_renewal("not a time", None, at).reason == "RenewalRequested"  # opaque: only status satisfies it
    assert requested_renewal(None, None, at) is None
