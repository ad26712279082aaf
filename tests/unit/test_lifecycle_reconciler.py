"""The lifecycle core (reconciler, keystore, every signer) against FakeKube: each decision in milliseconds.

The e2e suite proves the same paths against a real apiserver; these fail first, and name the step that regressed.
"""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, Lifecycle, certificate_body, make_ca, partner_signs
from mtls_operator.api.names import CERTIFICATE_LABEL, MANAGED_BY, MANAGER, UID_ANNOTATION, next_secret_name
from mtls_operator.kube.objects import Conflict
from mtls_operator.lifecycle.policy.floors import Floors
from mtls_operator.pki.keys import load_private_key, same_public_key

CA = make_ca()
CA_SIGNER = {"signer": {"ca": {"secretName": "internal-ca"}}}


def with_ca(kube: FakeKube) -> FakeKube:
    kube.put_secret(NAMESPACE, "internal-ca", {"tls.crt": CA[0], "tls.key": CA[1]}, secret_type="kubernetes.io/tls")
    return kube


def leaf(data: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificates(data["tls.crt"])[0]


def certifies_key(data: dict[str, bytes]) -> bool:
    return same_public_key(leaf(data).public_key(), load_private_key(data["tls.key"]).public_key())


# --- first issuance, per signer ------------------------------------------------------------------------------


async def test_ca_signer_issues_at_once_and_a_second_reconcile_writes_nothing():
    lc = Lifecycle(certificate_body(spec=CA_SIGNER), with_ca(FakeKube()))
    status = await lc.settle()
    assert status["phase"] == "Ready" and lc.ready["status"] == "True"
    live = lc.secret()
    assert live is not None and certifies_key(live) and live["ca.crt"] == CA[0]
    assert lc.kube.reasons() == ["Issued"] and lc.keys_generated == 1
    writes = [c for c in lc.kube.calls if c in ("create_secret", "replace_secret_data", "patch_status")]
    await lc.reconcile()
    assert [c for c in lc.kube.calls if c in ("create_secret", "replace_secret_data", "patch_status")] == writes


async def test_manual_signer_waits_with_the_key_stored_then_puts_the_partners_certificate_in_service():
    lc = Lifecycle(certificate_body())
    status = await lc.settle()
    assert status["phase"] == "AwaitingSignature" and lc.ready["reason"] == "AwaitingSignature"
    stored_key = lc.secret()["tls.key"]  # type: ignore[index]
    assert status["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(status["csr"], CA, lc.clock.now)})
    status = await lc.settle()
    assert status["phase"] == "Ready" and lc.kube.reasons() == ["CSRCreated", "Issued"]
    live = lc.secret()
    assert live is not None and live["tls.key"] == stored_key and certifies_key(live)
    assert lc.keys_generated == 1


KUBERNETES_SIGNER = {
    "signer": {
        "kubernetes": {"signerName": "example.com/partner", "caFrom": {"configMapKeyRef": {"name": "partner-ca"}}}
    }
}


def request_pem(csr_object: dict) -> str:
    return base64.b64decode(csr_object["spec"]["request"]).decode()


async def test_kubernetes_signer_waits_for_approval_and_recreates_a_vanished_request_for_the_same_key():
    kube = FakeKube()
    kube.configmaps[(NAMESPACE, "partner-ca")] = {
        "metadata": {"resourceVersion": "1"},
        "data": {"ca.crt": CA[0].decode()},
    }
    lc = Lifecycle(certificate_body(spec=KUBERNETES_SIGNER), kube)
    status = await lc.settle()
    name = status["certificateSigningRequest"]
    first = lc.kube.csrs[name]
    assert lc.ready["reason"] == "AwaitingApproval" and "CSRCreated" in lc.kube.reasons()
    del lc.kube.csrs[name]  # the 1 h / 24 h cleaner, or a person
    await lc.settle()
    assert request_pem(lc.kube.csrs[name]) != "" and lc.keys_generated == 1, "same key: never regenerated for that"
    again = x509.load_pem_x509_csr(request_pem(lc.kube.csrs[name]).encode())
    assert again.public_key() == x509.load_pem_x509_csr(request_pem(first).encode()).public_key()
    lc.kube.csrs[name]["status"] = {
        "conditions": [{"type": "Approved", "status": "True"}],
        "certificate": base64.b64encode(partner_signs(request_pem(first), CA, lc.clock.now)).decode(),
    }
    status = await lc.settle()
    assert status["phase"] == "Ready", lc.ready
    assert certifies_key(lc.secret())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "reason"), [("Denied", "CSRDenied"), ("Failed", "CSRFailed")], ids=["denied", "failed"]
)
async def test_kubernetes_signer_a_refused_request_is_rejected_with_its_reason(condition, reason):
    kube = FakeKube()
    kube.configmaps[(NAMESPACE, "partner-ca")] = {
        "metadata": {"resourceVersion": "1"},
        "data": {"ca.crt": CA[0].decode()},
    }
    lc = Lifecycle(certificate_body(spec=KUBERNETES_SIGNER), kube)
    name = (await lc.settle())["certificateSigningRequest"]
    lc.kube.csrs[name]["status"] = {"conditions": [{"type": condition, "status": "True", "reason": "Policy"}]}
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == reason and "Policy" in lc.ready["message"]
    assert reason in lc.kube.reasons()


async def test_kubernetes_signer_a_signer_name_not_allowed_is_refused_before_any_key():
    """The request would be the operator's: a tenant may not make it ask a signer the platform team did not list."""
    spec = {"signer": {"kubernetes": {"signerName": "kubernetes.io/kubelet-serving"}}}
    lc = Lifecycle(certificate_body(spec=spec), kubernetes_signer_names=("kubernetes.io/kube-apiserver-client",))
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "SignerNameNotAllowed"
    assert "kubernetes.io/kubelet-serving is not one this operator may ask for" in lc.ready["message"]
    assert lc.keys_generated == 0 and lc.kube.csrs == {} and lc.kube.secrets == {}


# --- what must never happen: a published key regenerated, a bad upload put in service -------------------------


async def test_a_lost_status_keeps_the_published_key():
    lc = Lifecycle(certificate_body())
    csr = (await lc.settle())["csr"]
    lc.body["status"] = {}  # a restore from backup, a status wiped by a tool
    status = await lc.settle()
    assert lc.keys_generated == 1, "the key whose CSR was published is kept"
    published = x509.load_pem_x509_csr(status["csr"].encode()).public_key()
    assert published == x509.load_pem_x509_csr(csr.encode()).public_key()


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (lambda csr, now: partner_signs(_other_csr(), CA, now), "KeyMismatch"),
        (lambda csr, now: CA[0], "CACertificateOnly"),
        (lambda csr, now: b"not a certificate", "InvalidCertificate"),
        (lambda csr, now: partner_signs(csr, CA, now - datetime.timedelta(days=400), days=30), "Expired"),
    ],
    ids=["another-key", "ca-only", "junk", "expired"],
)
async def test_manual_signer_a_wrong_upload_is_rejected_and_nothing_is_written(upload, reason):
    lc = Lifecycle(certificate_body())
    csr = (await lc.settle())["csr"]
    before = lc.secret()
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": upload(csr, lc.clock.now)})
    status = await lc.settle()
    assert lc.ready["status"] == "False" and lc.ready["reason"] == reason, lc.ready
    assert status["phase"] != "Ready" and lc.secret() == before
    assert reason in lc.kube.reasons()


def _other_csr(algorithm: str = "ECDSA") -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1()) if algorithm == "ECDSA" else rsa.generate_private_key(65537, 2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Partner B.V."),
            x509.NameAttribute(NameOID.COMMON_NAME, "client.example.com"),
        ]
    )
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
        .decode()
    )


# --- ownership: adoption, foreign Secrets, conflicts --------------------------------------------------------------


async def test_a_retained_secret_is_adopted_by_a_recreated_certificate_without_a_new_key():
    first = Lifecycle(certificate_body(spec=CA_SIGNER), with_ca(FakeKube()))
    await first.settle()
    kept = first.secret()
    again = Lifecycle(certificate_body(spec=CA_SIGNER), first.kube)  # same name, new uid (deleted, re-created)
    again.kube.certificates.clear()
    again.body = again.kube.add_certificate(certificate_body(spec=CA_SIGNER))
    status = await again.settle()
    assert status["phase"] == "Ready" and "Adopted" in again.kube.reasons()
    assert again.secret() == kept and again.keys_generated == 0
    assert again.kube.secrets[(NAMESPACE, "client-tls")].annotations[UID_ANNOTATION] == again.body["metadata"]["uid"]


async def test_a_secret_someone_else_owns_is_never_touched():
    kube = with_ca(FakeKube())
    theirs = kube.put_secret(NAMESPACE, "client-tls", {"tls.crt": b"theirs"}, labels={"app": "other"})
    lc = Lifecycle(certificate_body(spec=CA_SIGNER), kube)
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "SecretConflict"
    assert kube.secrets[(NAMESPACE, "client-tls")] == theirs


async def test_a_lost_write_race_is_retried_from_fresh_reads():
    kube = with_ca(FakeKube())
    lc = Lifecycle(certificate_body(spec=CA_SIGNER), kube)
    kube.fail_next("create_secret", Conflict("Secret client-tls already exists"))
    status = await lc.reconcile()
    assert status == {} and lc.wake_at == lc.clock.now + datetime.timedelta(seconds=1), "no status, retry soon"
    status = await lc.settle()
    assert status["phase"] == "Ready"
    secret = kube.secrets[(NAMESPACE, "client-tls")]
    assert secret.labels[MANAGED_BY] == MANAGER and secret.labels[CERTIFICATE_LABEL] == "client"


async def test_a_foreign_next_secret_is_a_condition_not_a_key_generation_loop():
    """Someone else's `<secretName>-next` used to make every attempt generate a key and conflict: one RSA key a
    second, Ready, no word of it, until the certificate expired unrenewed."""
    lc = Lifecycle(certificate_body(spec={"duration": "2160h"}))
    csr = (await lc.settle())["csr"]
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(csr, CA, lc.clock.now, days=90)})
    await lc.settle()
    in_service = lc.secret()
    theirs = lc.kube.put_secret(NAMESPACE, next_secret_name("client-tls"), {"x": b"theirs"}, labels={"app": "other"})
    lc.clock.advance(days=75)
    status = await lc.settle(rounds=6)
    assert lc.keys_generated == 1, "no key is generated while the Secret is in the way"
    assert status["phase"] == "Failed" and lc.ready["reason"] == "SecretConflict"
    assert "client-tls-next exists and is not managed by this MtlsCertificate" in lc.ready["message"]
    assert "SecretConflict" in lc.kube.reasons()
    assert lc.wake_at == lc.clock.now + datetime.timedelta(minutes=5)
    assert lc.secret() == in_service and lc.kube.secrets[(NAMESPACE, "client-tls-next")] == theirs


# --- renewal, outbound, bad specs ------------------------------------------------------------------------------


async def test_ca_signer_renews_in_the_window_with_a_new_key():
    lc = Lifecycle(
        certificate_body(spec={**CA_SIGNER, "duration": "2160h", "renewBefore": "720h"}), with_ca(FakeKube())
    )
    await lc.settle()
    first = lc.secret()
    lc.clock.advance(days=70)  # 20 days left: inside renewBefore (30 days, minus jitter)
    status = await lc.settle()
    renewed = lc.secret()
    assert status["phase"] == "Ready" and "Renewed" in lc.kube.reasons()
    assert (
        renewed is not None and first is not None and renewed["tls.key"] != first["tls.key"] and certifies_key(renewed)
    )
    assert leaf(renewed).not_valid_after_utc > leaf(first).not_valid_after_utc


async def test_manual_signer_renewal_keeps_the_certificate_in_service_until_the_new_one_arrives():
    lc = Lifecycle(certificate_body(spec={"duration": "2160h"}))
    csr = (await lc.settle())["csr"]
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(csr, CA, lc.clock.now, days=90)})
    await lc.settle()
    in_service = lc.secret()
    lc.clock.advance(days=75)
    status = await lc.settle()
    assert status["phase"] == "Renewing" and lc.ready["status"] == "True", "the old certificate still works"
    assert lc.secret() == in_service and lc.secret(next_secret_name("client-tls")) is not None
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(status["csr"], CA, lc.clock.now)})
    status = await lc.settle()
    assert status["phase"] == "Ready" and "Renewed" in lc.kube.reasons()
    assert lc.secret()["tls.key"] != in_service["tls.key"], "the next key is in service now"  # type: ignore[index]
    assert lc.secret(next_secret_name("client-tls")) is None, "and its waiting room is gone"
    assert certifies_key(lc.secret())  # type: ignore[arg-type]


async def test_outbound_signs_the_partners_csr_and_stores_no_key():
    partner_csr = _other_csr("RSA")
    lc = Lifecycle(certificate_body(spec={**CA_SIGNER, "csr": partner_csr}), with_ca(FakeKube()))
    status = await lc.settle()
    assert status["phase"] == "Ready", lc.ready
    live = lc.secret()
    assert live is not None and "tls.key" not in live
    assert leaf(live).public_key() == x509.load_pem_x509_csr(partner_csr.encode()).public_key()
    assert leaf(live).issuer == x509.load_pem_x509_certificate(CA[0]).subject


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"commonName": ""}, "spec.commonName is required"),
        ({"renewBefore": "9000h"}, "spec.renewBefore must be shorter than spec.duration"),
        ({"duration": "a year"}, "invalid duration"),
    ],
    ids=["no-cn", "renew-before-too-long", "bad-duration"],
)
async def test_an_unusable_spec_is_named_in_the_condition(spec, words):
    lc = Lifecycle(certificate_body(spec=spec))
    status = await lc.reconcile()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "InvalidSpec" and words in lc.ready["message"]
    assert lc.kube.secrets == {} and lc.keys_generated == 0


# --- the CAs a certificate depends on ------------------------------------------------------------------------


async def test_status_says_when_the_ca_the_certificate_depends_on_expires():
    lc = Lifecycle(certificate_body(spec=CA_SIGNER), with_ca(FakeKube()))
    status = await lc.settle()
    ca = x509.load_pem_x509_certificate(CA[0])
    assert status["chainNotAfter"] == ca.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["chainNotAfterSubject"] == "Lifecycle CA"


async def test_a_partners_ca_that_came_back_with_the_certificate_is_watched_too():
    partner_ca = make_ca("Partner CA")
    lc = Lifecycle(certificate_body())
    status = await lc.settle()
    signed = partner_signs(status["csr"], partner_ca, lc.clock.now)
    lc.kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": signed, "ca.crt": partner_ca[0]})
    status = await lc.settle()
    assert status["phase"] == "Ready" and status["chainNotAfterSubject"] == "Partner CA"
    # A certificate put in service before the field existed (0.1.0 wrote none) gets it at its next reconcile.
    lc.body = {**lc.body, "status": {k: v for k, v in lc.body["status"].items() if not k.startswith("chain")}}
    status = await lc.reconcile()
    expires = x509.load_pem_x509_certificate(partner_ca[0]).not_valid_after_utc
    assert status["chainNotAfter"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the platform's floors and the issuance rate (policy.floors) ----------------------------------------------


async def test_a_duration_below_the_floor_issues_nothing_and_says_so():
    lc = Lifecycle(certificate_body(spec={**CA_SIGNER, "duration": "1s", "renewBefore": "0s"}), with_ca(FakeKube()),
                   floors=Floors())  # fmt: skip
    status = await lc.settle()
    assert status["phase"] == "Failed" and lc.ready["reason"] == "DurationBelowFloor", lc.ready
    assert lc.secret() is None and lc.keys_generated == 0


async def test_a_certificate_reissued_again_and_again_waits_longer_each_time_and_renew_still_works_at_once():
    # Inside the floors, but its renewal window swallows nearly all its validity: due a minute after each issuance.
    spec = {**CA_SIGNER, "duration": "2h", "renewBefore": "119m"}
    lc = Lifecycle(certificate_body(spec=spec), with_ca(FakeKube()), floors=Floors())
    await lc.settle()
    for _ in range(12):  # twelve minutes, looked at every minute
        lc.clock.advance(minutes=1)
        await lc.settle()
    issued = lc.kube.reasons().count("Issued") + lc.kube.reasons().count("Renewed")
    assert issued < 7, issued  # 1 min apart without the limit: 13
    assert lc.status["rapidIssuances"] >= 2
    assert lc.ready["reason"] == "IssuanceRateLimited" and lc.ready["status"] == "True", lc.ready  # still serving
    assert lc.wake_at is not None and lc.wake_at > lc.clock.now  # woken when allowed, not spinning
    before = lc.status["revision"]
    asked = lc.clock.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lc.body["metadata"].setdefault("annotations", {})["mtls.dev/renew-requested-at"] = asked
    lc.kube.certificates[(NAMESPACE, lc.name)]["metadata"]["annotations"] = lc.body["metadata"]["annotations"]
    await lc.settle()
    assert lc.status["revision"] == before + 1  # kubectl mtls renew: at once
