"""RBAC's answers for requesters (lifecycle.accessreviews): asked once a minute per requester and issuer, not once
per certificate; a changed answer is seen after the TTL; the memory is bounded."""

from __future__ import annotations

import datetime

from harness.fakekube import FakeKube
from harness.lifecycle import Clock
from mtls_operator.api.requester import Requester
from mtls_operator.lifecycle import accessreviews
from mtls_operator.lifecycle.accessreviews import REVIEW_TTL, AccessReviews

DEV = Requester("dev", ("team-payments",))


async def test_one_review_per_requester_and_issuer_within_the_ttl():
    kube, clock = FakeKube(), Clock()
    kube.grants.add(("team-payments", "clustermtlsissuers", "platform", "use"))
    reviews = AccessReviews(kube, clock)  # type: ignore[arg-type]
    assert all([await reviews.may_use_cluster_issuer(DEV, "platform") for _ in range(1000)])
    assert not await reviews.may_use_cluster_issuer(DEV, "other")
    assert not await reviews.may_use_cluster_issuer(Requester("dev"), "platform")  # without the group: another user
    assert kube.calls.count("review_resource_access") == 3


async def test_a_revoked_grant_is_seen_after_the_ttl():
    kube, clock = FakeKube(), Clock()
    kube.grants.add(("dev", "clustermtlsissuers", "platform", "use"))
    reviews = AccessReviews(kube, clock)  # type: ignore[arg-type]
    assert await reviews.may_use_cluster_issuer(DEV, "platform")
    kube.grants.clear()
    clock.advance(seconds=REVIEW_TTL.total_seconds() - 1)
    assert await reviews.may_use_cluster_issuer(DEV, "platform")  # remembered
    clock.advance(seconds=2)
    assert not await reviews.may_use_cluster_issuer(DEV, "platform")


async def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(accessreviews, "MAX_REMEMBERED", 10)
    kube, clock = FakeKube(), Clock()
    reviews = AccessReviews(kube, clock)  # type: ignore[arg-type]
    for n in range(50):
        await reviews.may_use_cluster_issuer(Requester(f"user-{n}"), "platform")
    assert len(reviews._answers) == 10
    clock.advance(seconds=1)
    await reviews.may_use_cluster_issuer(Requester("user-49"), "platform")  # the newest is still remembered
    assert kube.calls.count("review_resource_access") == 50
    assert datetime.timedelta(seconds=1) < REVIEW_TTL
