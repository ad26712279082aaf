"""policy.revocation: what a revocation of the certificate in service means, as a named verdict."""

from __future__ import annotations

import datetime

from mtls_operator.api.refs import IssuerKey
from mtls_operator.lifecycle.policy.revocation import after_revocation
from mtls_operator.lifecycle.policy.trigger import TriggerReason
from mtls_operator.pki.crl import RevokedEntry

WHEN = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
ISSUER = IssuerKey("ClusterMtlsIssuer", "", "platform")


def entry(reason: str) -> RevokedEntry:
    return RevokedEntry(0x0ABC, WHEN, reason)


def test_a_compromised_key_of_ours_is_replaced_at_once_by_a_new_one() -> None:
    verdict = after_revocation(entry("keyCompromise"), ISSUER, partner_key=False, same_key=False)
    assert verdict.reissue_now and verdict.new_key and not verdict.hold and not verdict.refuse_key
    assert "serial 0ABC was revoked by ClusterMtlsIssuer platform (keyCompromise" in verdict.message


def test_a_compromised_partner_key_is_never_signed_again() -> None:
    same = after_revocation(entry("keyCompromise"), ISSUER, partner_key=True, same_key=True)
    assert same.refuse_key and not same.reissue_now and "ask the partner for a CSR with a new key" in same.message
    other = after_revocation(entry("keyCompromise"), ISSUER, partner_key=True, same_key=False)
    assert not other.refuse_key  # a new key from the partner is signed


def test_any_other_reason_holds_until_someone_asks() -> None:
    verdict = after_revocation(entry("cessationOfOperation"), ISSUER, partner_key=False, same_key=False)
    assert verdict.hold and not verdict.reissue_now and verdict.new_key
    assert verdict.blocks(TriggerReason.RENEWAL_DUE) and verdict.blocks(TriggerReason.EXPIRED)
    assert not verdict.blocks(TriggerReason.RENEWAL_REQUESTED) and not verdict.blocks(TriggerReason.CSR_CHANGED)
