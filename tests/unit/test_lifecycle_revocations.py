"""lifecycle.revocations against FakeKube: what a revocation resolves to, recorded once on the object; the
refusals that keep a tenant to its own certificates; Published once the issuer's CRL lists it."""

from __future__ import annotations

import datetime
from typing import Any

from harness.fakekube import FakeKube
from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.revocation import resolved_of
from mtls_operator.lifecycle.revocations import RevocationReconciler
from mtls_operator.runtime.issuerbook import IssuerBook

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
PLATFORM = IssuerKey("ClusterMtlsIssuer", "", "platform")


def setup() -> tuple[FakeKube, RevocationReconciler]:
    kube = FakeKube()
    book = IssuerBook("mtls-system")
    book.store_issuer("ClusterMtlsIssuer", {"metadata": {"name": "platform"}, "spec": {"ca": {"secretName": "x"}}})
    return kube, RevocationReconciler(kube, book, "mtls-system", lambda: NOW)  # type: ignore[arg-type]


def revocation(kube: FakeKube, namespace: str, **spec: Any) -> dict[str, Any]:
    meta = {"name": "r", "namespace": namespace, "uid": "u1", "creationTimestamp": "2026-06-01T00:00:00Z"}
    return kube.add_revocation({"metadata": meta, "spec": {"reason": "superseded", "requestedBy": "a", **spec}})


def published(body: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == "Published")


async def test_by_name_revokes_the_serial_the_operator_recorded_and_never_resolves_again() -> None:
    kube, reconciler = setup()
    issued = {"issuer": "ClusterMtlsIssuer/platform", "serialNumber": "0ABC"}
    kube.add_certificate({"metadata": {"name": "svc", "namespace": "team"}, "status": {"issuedBy": issued}})
    body = revocation(kube, "team", certificateName="svc")
    updated, _ = await reconciler.reconcile(body, lambda _key: None)
    assert updated is not None
    resolved = resolved_of(updated)
    assert resolved is not None and (resolved.issuer, resolved.serial_number) == (PLATFORM, 0x0ABC)
    assert published(updated)["reason"] == "Pending"
    # The certificate is re-issued (a new serial): the revocation keeps the one it resolved to.
    kube.certificates[("team", "svc")]["status"]["issuedBy"]["serialNumber"] = "0DEF"
    again, _ = await reconciler.reconcile(updated, lambda key: (9, frozenset({0x0ABC})) if key == PLATFORM else None)
    assert again is not None and published(again)["status"] == "True" and again["status"]["crlNumber"] == "9"
    assert again["status"]["serialNumber"] == "0ABC"
    assert kube.calls.count("annotate_revocation") == 1 and "Revoked" in kube.reasons("r")


async def test_a_tenant_cannot_revoke_a_shared_issuers_serial() -> None:
    kube, reconciler = setup()
    ref = {"kind": "ClusterMtlsIssuer", "name": "platform"}
    updated, wake = await reconciler.reconcile(revocation(kube, "team", serialNumber="0ABC", issuerRef=ref),
                                               lambda _key: None)  # fmt: skip
    assert updated is not None and published(updated)["reason"] == "NotYourIssuer" and wake is None
    assert resolved_of(updated) is None and "annotate_revocation" not in kube.calls
    # From the cluster issuers' namespace it is the platform team's to revoke.
    kube2, reconciler2 = setup()
    platform, _ = await reconciler2.reconcile(revocation(kube2, "mtls-system", serialNumber="0ABC", issuerRef=ref),
                                              lambda _key: None)  # fmt: skip
    assert platform is not None and resolved_of(platform) is not None


async def test_what_cannot_be_resolved_is_named_and_retried_when_it_may_appear() -> None:
    kube, reconciler = setup()
    missing, wake = await reconciler.reconcile(revocation(kube, "team", certificateName="nope"), lambda _key: None)
    assert missing is not None and published(missing)["reason"] == "CertificateNotFound" and wake is not None
    kube.add_certificate({"metadata": {"name": "hand", "namespace": "team"}, "status": {"serialNumber": "01"}})
    kube.revocations.clear()
    by_hand, _ = await reconciler.reconcile(revocation(kube, "team", certificateName="hand"), lambda _key: None)
    assert by_hand is not None and published(by_hand)["reason"] == "NotIssuedByIssuer"
