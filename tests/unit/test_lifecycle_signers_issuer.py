"""Signer issuerRef and the issuer's status (lifecycle.signers.issuer, lifecycle.issuerstatus) against FakeKube:
policy refusals that write nothing, reports that revoke nothing, and a CA rotation that moves each certificate once
at its turn."""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, Clock, Lifecycle, certificate_body, make_ca
from mtls_operator.api.refs import IssuerKey
from mtls_operator.lifecycle.issuerstatus import IssuerStatusReconciler, IssuerUser
from mtls_operator.lifecycle.policy.carotation import reissue_time
from mtls_operator.pki.certificates import issued_by
from mtls_operator.pki.crl import read_crl, signed_by
from mtls_operator.runtime.issuerbook import IssuerBook

CA_NAMESPACE = "mtls-system"
KIND = "ClusterMtlsIssuer"
KEY = IssuerKey(KIND, "", "platform")
REF = {"signer": {"issuerRef": {"kind": KIND, "name": "platform"}}}


def issuer_body(policy: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {"ca": {"secretName": "platform-ca"}, "rotation": {"spread": "1h"}}
    # The harness's keys are ECDSA (fast); the issuers' default key policy is the guide's RSA only.
    spec["policy"] = {"keys": {"allowedAlgorithms": ["RSA", "ECDSA"]}, **(policy or {})}
    return {"metadata": {"name": "platform", "uid": "issuer-uid", "generation": generation}, "spec": spec}


class Platform:
    """A ClusterMtlsIssuer as the controller keeps it: the book, the status reconciler, and its CA Secret."""

    def __init__(self, policy: dict[str, Any] | None = None) -> None:
        self.kube = FakeKube()
        self.clock = Clock()
        self.book = IssuerBook(CA_NAMESPACE)
        self.book.store_namespace({"metadata": {"name": NAMESPACE, "labels": {"team": "payments"}}})
        self.ca = self.put_ca("Platform CA")
        self.book.store_issuer(KIND, self.kube.add_issuer(KIND, issuer_body(policy)))
        self.kube.grants.add(("dev", "clustermtlsissuers", "platform", "use"))
        self.book.requester_records_checked = True  # as with the chart's admission policy (--cluster-issuer-use-policy)

    def put_ca(self, name: str) -> tuple[bytes, bytes]:
        ca = make_ca(name, now=self.clock.now)
        self.kube.put_secret(
            CA_NAMESPACE, "platform-ca", {"tls.crt": ca[0], "tls.key": ca[1]}, secret_type="kubernetes.io/tls"
        )
        return ca

    def certificate(self, name: str = "client", requester: str | None = "dev", **spec: Any) -> Lifecycle:
        """A certificate asked for by `requester` (recorded as the admission policies record it), who holds `use`
        on the issuer unless a test takes it away (None: nobody is recorded)."""
        body = certificate_body(name, spec={**REF, **spec})
        if requester is not None:
            body["metadata"]["annotations"] = {
                "mtls.dev/requested-by": requester,
                "mtls.dev/requested-by-groups": '["team-payments", "system:authenticated"]',
            }
        return Lifecycle(body, self.kube, issuers=self.book, clock=self.clock)

    async def reconcile_issuer(self, users: list[Lifecycle]) -> dict[str, Any]:
        loader = users[0].reconciler.issuer_cas
        status = IssuerStatusReconciler(self.kube, loader, self.book, self.clock, revoked=self.book.revocations.entries)
        body = self.kube.issuers[(KIND, "", "platform")]
        await status.reconcile(KIND, body, [IssuerUser(NAMESPACE, f"{u.name}-tls") for u in users])
        self.book.store_issuer(KIND, self.kube.issuers[(KIND, "", "platform")])
        return dict(self.kube.issuers[(KIND, "", "platform")]["status"])


def leaf_of(lc: Lifecycle) -> x509.Certificate:
    live = lc.secret()
    assert live is not None
    return x509.load_pem_x509_certificates(live["tls.crt"])[0]


async def test_signs_within_the_policy_from_the_ca_in_the_issuer_namespace():
    platform = Platform(
        {"allowedCommonNames": ["*.example.com"], "namespaceSelector": {"matchLabels": {"team": "payments"}}}
    )
    lc = platform.certificate()
    status = await lc.settle()
    assert status["phase"] == "Ready", lc.ready
    assert issued_by(leaf_of(lc), x509.load_pem_x509_certificate(platform.ca[0]))
    assert lc.secret()["ca.crt"] == platform.ca[0]  # type: ignore[index]
    assert (NAMESPACE, "platform-ca") not in platform.kube.secrets  # the CA key stays in one place


async def test_a_violation_names_rule_and_value_and_writes_nothing():
    platform = Platform({"allowedSubject": {"organization": ["Other Inc."]}})
    lc = platform.certificate()
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "PolicyViolation"
    assert "policy.allowedSubject.organization" in lc.ready["message"] and "'My Company Inc.'" in lc.ready["message"]
    assert lc.secret() is None and lc.keys_generated == 0
    assert "PolicyViolation" in platform.kube.reasons()


async def test_the_default_key_policy_is_the_partner_guides():
    platform = Platform({"keys": {}})
    lc = platform.certificate()
    await lc.settle()
    assert (
        lc.ready["reason"] == "PolicyViolation"
        and "ECDSA keys are not signed here; allowed: RSA" in lc.ready["message"]
    )


async def test_a_missing_issuer_waits_and_is_named():
    platform = Platform()
    lc = Lifecycle(
        certificate_body(spec={"signer": {"issuerRef": {"kind": KIND, "name": "nope"}}}),
        platform.kube,
        issuers=platform.book,
    )
    await lc.settle()
    assert lc.ready["reason"] == "IssuerNotFound" and "ClusterMtlsIssuer nope does not exist" in lc.ready["message"]


async def test_a_policy_change_reports_the_certificate_in_service_and_revokes_nothing():
    platform = Platform()
    lc = platform.certificate()
    await lc.settle()
    serial = lc.status["serialNumber"]
    platform.book.store_issuer(KIND, platform.kube.add_issuer(KIND, issuer_body({"maxDuration": "24h"}, 2)))
    status = await lc.settle()
    assert lc.ready["reason"] == "PolicyViolation" and "policy.maxDuration" in lc.ready["message"]
    assert status["phase"] == "Ready" and status["serialNumber"] == serial and lc.secret() is not None


async def test_a_ca_rotation_moves_each_certificate_once_at_its_turn():
    platform = Platform()
    certificates = [platform.certificate(f"c{i}") for i in range(3)]
    for lc in certificates:
        await lc.settle()
    status = await platform.reconcile_issuer(certificates)
    assert status["certificates"] == 3 and status["certificatesOnPreviousCA"] == 0 and "rotation" not in status

    platform.clock.advance(minutes=5)
    new_ca = platform.put_ca("Platform CA")  # same name, new keypair
    status = await platform.reconcile_issuer(certificates)
    started = datetime.datetime.fromisoformat(status["rotation"]["startedTime"])
    assert status["certificatesOnPreviousCA"] == 3 and "CARotationStarted" in platform.kube.reasons()

    new_cert = x509.load_pem_x509_certificate(new_ca[0])
    turns = {
        lc.name: reissue_time(lc.body["metadata"]["uid"], started, datetime.timedelta(hours=1)) for lc in certificates
    }
    for lc in certificates:  # before its turn: deferred, and told when to look again
        platform.clock.now = turns[lc.name] - datetime.timedelta(seconds=1)
        await lc.settle()
        assert not issued_by(leaf_of(lc), new_cert) and lc.wake_at == turns[lc.name]
        platform.clock.now = started
    for lc in sorted(certificates, key=lambda c: turns[c.name]):
        platform.clock.now = turns[lc.name]
        revision = lc.status["revision"]
        await lc.settle()
        assert issued_by(leaf_of(lc), new_cert) and lc.status["revision"] == revision + 1
        await lc.settle()
        assert lc.status["revision"] == revision + 1, "moved once"
    status = await platform.reconcile_issuer(certificates)
    assert status["certificatesOnPreviousCA"] == 0 and status["rotation"]["completedTime"]
    assert "CARotationCompleted" in platform.kube.reasons()


async def test_a_certificate_with_publish_ca_moves_only_once_its_configmap_carries_the_new_ca():
    platform = Platform()
    lc = platform.certificate(publishCA={"configMapName": "trust"})
    await lc.settle()
    await platform.kube.write_configmap(NAMESPACE, "trust", {"ca.crt": platform.ca[0].decode()}, None, source="c")
    await platform.reconcile_issuer([lc])  # the current CA recorded
    platform.clock.advance(minutes=5)
    new_ca = platform.put_ca("Platform CA")
    status = await platform.reconcile_issuer([lc])
    started = datetime.datetime.fromisoformat(status["rotation"]["startedTime"])
    platform.clock.now = reissue_time(lc.body["metadata"]["uid"], started, datetime.timedelta(hours=1))
    new_cert = x509.load_pem_x509_certificate(new_ca[0])
    await lc.settle()
    assert not issued_by(leaf_of(lc), new_cert), "servers trusting the bundle would refuse it"
    assert lc.wake_at == platform.clock.now + datetime.timedelta(seconds=2)
    existing = await platform.kube.get_configmap(NAMESPACE, "trust")
    both = platform.ca[0].decode() + new_ca[0].decode()
    await platform.kube.write_configmap(NAMESPACE, "trust", {"ca.crt": both}, existing, source="c")
    await lc.settle()
    assert issued_by(leaf_of(lc), new_cert)


def revoke(platform: Platform, lc: Lifecycle, reason: str, name: str = "r") -> None:
    """What the controller does once an MtlsRevocation of `lc`'s certificate in service is resolved."""
    serial = lc.status["issuedBy"]["serialNumber"]
    assert lc.status["issuedBy"]["issuer"] == f"{KIND}/platform"
    annotations = {"mtls.dev/revoked-serial": serial, "mtls.dev/revoked-issuer": f"{KIND}/platform"}
    platform.book.revocations.store({
        "metadata": {"name": name, "namespace": "mtls-system", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": annotations},
        "spec": {"serialNumber": serial, "issuerRef": {"kind": KIND, "name": "platform"}, "reason": reason,
                 "requestedBy": "platform-team"},
    })  # fmt: skip


async def test_a_key_compromise_reissues_at_once_with_a_new_key():
    platform = Platform()
    lc = platform.certificate(privateKey={"rotationPolicy": "Never"})  # even where keys are otherwise kept
    await lc.settle()
    old = leaf_of(lc)
    revoke(platform, lc, "keyCompromise")
    status = await lc.settle()
    new = leaf_of(lc)
    assert status["phase"] == "Ready" and new.serial_number != old.serial_number
    assert new.public_key().public_numbers() != old.public_key().public_numbers()  # type: ignore[union-attr]
    assert status["issuedBy"]["serialNumber"] == status["serialNumber"]


async def test_another_reason_reports_revoked_and_waits_for_a_request():
    platform = Platform()
    lc = platform.certificate()
    await lc.settle()
    serial = leaf_of(lc).serial_number
    revoke(platform, lc, "cessationOfOperation")
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "Revoked", lc.ready
    assert "cessationOfOperation" in lc.ready["message"] and leaf_of(lc).serial_number == serial
    platform.clock.advance(days=400)  # past renewal and expiry: the clock alone never re-issues it
    await lc.settle()
    assert leaf_of(lc).serial_number == serial and lc.ready["reason"] in ("Revoked", "Expired"), lc.ready


async def test_the_issuers_crl_lists_what_was_revoked_and_is_not_signed_again_for_nothing():
    platform = Platform()
    lc = platform.certificate()
    await lc.settle()
    status = await platform.reconcile_issuer([lc])
    first = status["crl"]
    assert first["revokedCertificates"] == 0 and first["configMap"] == "mtls-system/clustermtlsissuer-platform-crl"
    # No change: the same CRL (no signature, no write).
    writes = platform.kube.calls.count("write_configmap")
    assert (await platform.reconcile_issuer([lc]))["crl"] == first
    assert platform.kube.calls.count("write_configmap") == writes
    revoke(platform, lc, "superseded")
    second = (await platform.reconcile_issuer([lc]))["crl"]
    assert second["revokedCertificates"] == 1 and int(second["number"]) > int(first["number"])

    crl = read_crl(
        platform.kube.configmaps[("mtls-system", "clustermtlsissuer-platform-crl")]["data"]["ca.crl"].encode()
    )
    assert {r.serial_number for r in crl} == {leaf_of(lc).serial_number}
    assert signed_by(crl, [x509.load_pem_x509_certificate(platform.ca[0])])


# --- use, checked by the operator for the recorded requester (policy.useaccess) ------------------------------------


async def test_a_certificate_nobody_is_recorded_as_asking_for_is_not_signed_by_a_cluster_issuer():
    platform = Platform()
    lc = platform.certificate(requester=None)
    await lc.settle()
    assert lc.ready["reason"] == "RequesterUnknown" and "mtls.dev/requested-by" in lc.ready["message"]
    assert lc.secret() is None and lc.keys_generated == 0
    assert "review_resource_access" not in platform.kube.calls  # nobody to ask about


async def test_a_requester_without_use_is_refused_and_one_with_it_through_a_group_is_signed():
    platform = Platform()
    denied = platform.certificate("denied", requester="mallory")
    await denied.settle()
    assert denied.ready["reason"] == "UseNotAllowed" and "mallory" in denied.ready["message"]
    assert denied.secret() is None and denied.keys_generated == 0
    platform.kube.grants.add(("team-payments", "clustermtlsissuers", "platform", "use"))
    allowed = platform.certificate("allowed", requester="erin")  # holds use only through the group
    assert (await allowed.settle())["phase"] == "Ready"


async def test_revoking_use_stops_the_next_renewal_and_the_certificate_in_service_keeps_serving():
    platform = Platform()
    lc = platform.certificate(duration="48h", renewBefore="24h")
    await lc.settle()
    serial = lc.status["serialNumber"]
    platform.kube.grants.clear()
    platform.clock.advance(hours=25)  # inside the renewal window; RBAC's remembered answer is long stale
    status = await lc.settle()
    assert lc.ready["reason"] == "UseNotAllowed", lc.ready
    assert status["serialNumber"] == serial and lc.secret() is not None  # nothing replaced, nothing removed
    assert "UseNotAllowed" in platform.kube.reasons()
    platform.kube.grants.add(("dev", "clustermtlsissuers", "platform", "use"))
    platform.clock.advance(minutes=2)
    status = await lc.settle()
    assert status["serialNumber"] != serial and lc.ready["reason"] == "Ready"


async def test_an_issuer_open_to_its_selected_namespaces_asks_nobody():
    platform = Platform({"openToSelectedNamespaces": True})
    lc = platform.certificate(requester=None)
    assert (await lc.settle())["phase"] == "Ready"
    assert "review_resource_access" not in platform.kube.calls


async def test_a_record_no_admission_policy_checks_is_not_believed():
    platform = Platform()
    platform.book.requester_records_checked = False  # no --cluster-issuer-use-policy: anyone could write any name
    lc = platform.certificate(requester="dev")
    await lc.settle()
    assert lc.ready["reason"] == "RequesterUnknown" and "the record is not believed" in lc.ready["message"]
    assert lc.secret() is None and "review_resource_access" not in platform.kube.calls
