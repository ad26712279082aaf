"""policy.crlrefresh: when an issuer signs its CRL again (a named reason), and its numbers only grow."""

from __future__ import annotations

import datetime

from mtls_operator.lifecycle.policy.crlrefresh import CrlReason, crl_due, next_number
from mtls_operator.pki.crl import CrlInfo

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
KEY_ID = b"\x01" * 20


def published(this_update: datetime.datetime, serials: frozenset[int] = frozenset(), number: int = 7) -> CrlInfo:
    return CrlInfo(number, this_update, this_update + DAY, KEY_ID, serials)


def test_no_crl_yet_is_signed_now() -> None:
    decision = crl_due(None, frozenset(), KEY_ID, DAY, NOW)
    assert decision.due and decision.reason == CrlReason.NONE and decision.refresh_at == NOW + DAY / 2


def test_nothing_changed_waits_until_half_its_lifetime() -> None:
    current = published(NOW - datetime.timedelta(hours=3))
    decision = crl_due(current, frozenset(), KEY_ID, DAY, NOW)
    assert not decision.due and decision.refresh_at == NOW + datetime.timedelta(hours=9)
    later = crl_due(current, frozenset(), KEY_ID, DAY, NOW + datetime.timedelta(hours=9))
    assert later.due and later.reason == CrlReason.REFRESH


def test_a_new_revocation_a_new_ca_or_a_new_lifetime_signs_at_once() -> None:
    current = published(NOW, frozenset({1}))
    assert crl_due(current, frozenset({1, 2}), KEY_ID, DAY, NOW).reason == CrlReason.ENTRIES_CHANGED
    assert crl_due(current, frozenset(), KEY_ID, DAY, NOW).reason == CrlReason.ENTRIES_CHANGED  # one deleted
    assert crl_due(current, frozenset({1}), b"\x02" * 20, DAY, NOW).reason == CrlReason.CA_CHANGED
    assert crl_due(current, frozenset({1}), KEY_ID, DAY * 2, NOW).reason == CrlReason.LIFETIME_CHANGED


def test_the_number_grows_from_the_last_and_never_falls_below_the_clock() -> None:
    assert next_number(published(NOW, number=10**12), NOW) == 10**12 + 1
    assert next_number(published(NOW, number=5), NOW) == int(NOW.timestamp())
    assert next_number(None, NOW) == int(NOW.timestamp())  # a lost ConfigMap: still above every earlier number
