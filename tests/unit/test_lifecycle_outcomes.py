"""lifecycle.outcomes.chain_validity: a CA beside the certificate that expires first is named before it matters."""

from __future__ import annotations

import datetime

from mtls_operator.lifecycle.outcomes import chain_validity
from mtls_operator.pki.certificates import CertificateInfo
from mtls_operator.pki.expiry import ChainExpiry

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def info(not_after: datetime.datetime) -> CertificateInfo:
    return CertificateInfo("client.example.com", NOW - DAY, not_after, "01", "CN=Partner Issuing CA", "AA")


def test_a_chain_that_outlives_the_certificate_is_valid() -> None:
    condition = chain_validity(info(NOW + 300 * DAY), ChainExpiry(NOW + 900 * DAY, "Partner Issuing CA"), NOW)
    assert (condition.type, condition.status, condition.reason) == ("ChainValid", "True", "ChainValid")


def test_a_ca_expiring_before_the_certificate_is_named_now() -> None:
    condition = chain_validity(info(NOW + 300 * DAY), ChainExpiry(NOW + 100 * DAY, "Partner Issuing CA"), NOW)
    assert (condition.status, condition.reason) == ("False", "ChainExpiresFirst")
    assert "Partner Issuing CA expires at 2026-09-09T12:00:00Z" in condition.message
    assert "ask the partner" in condition.message


def test_an_expired_ca_is_an_expired_chain() -> None:
    condition = chain_validity(info(NOW + 300 * DAY), ChainExpiry(NOW - DAY, "Partner Root CA"), NOW)
    assert (condition.status, condition.reason) == ("False", "ChainExpired")
    assert "servers now refuse" in condition.message


def test_no_ca_beside_the_certificate_is_nothing_to_expire() -> None:
    assert chain_validity(info(NOW + DAY), None, NOW).reason == "NoCACertificates"
