"""Secrets a certificate names are read for its requester only if RBAC lets the requester read them
(lifecycle.onbehalf): signer `ca`'s CA, signer `manual`'s upload (a key included: bring your own), the keystores'
password. A refusal names the Secret and the field, nothing inside it."""

from __future__ import annotations

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, Lifecycle, certificate_body, make_ca, partner_signs
from mtls_operator.runtime.issuerbook import IssuerBook

CA = make_ca()
CA_SIGNER = {"signer": {"ca": {"secretName": "payments-ca"}}}


def believed() -> IssuerBook:
    """As with the chart's admission policy in force: the requester records are believed."""
    book = IssuerBook("mtls-system")
    book.requester_records_checked = True
    return book


def asked_by(user: str | None, **spec: object) -> dict:
    body = certificate_body(spec=dict(spec))
    if user is not None:
        body["metadata"]["annotations"] = {"mtls.dev/requested-by": user, "mtls.dev/requested-by-groups": "[]"}
    return body


def kube_with_ca() -> FakeKube:
    kube = FakeKube()
    kube.put_secret(NAMESPACE, "payments-ca", {"tls.crt": CA[0], "tls.key": CA[1]}, secret_type="kubernetes.io/tls")
    return kube


async def test_no_signature_with_a_ca_key_the_requester_may_not_read():
    kube = kube_with_ca()
    lc = Lifecycle(asked_by("mallory", **CA_SIGNER), kube, issuers=believed())
    await lc.settle()
    assert lc.ready["reason"] == "SecretNotReadable"
    assert "mallory" in lc.ready["message"] and "Secret payments-ca (spec.signer.ca.secretName)" in lc.ready["message"]
    assert lc.secret() is None and lc.keys_generated == 0
    kube.grants.add(("payments-admin", "secrets", "payments-ca", "get"))
    allowed = Lifecycle(asked_by("payments-admin", **CA_SIGNER), kube, issuers=believed())
    assert (await allowed.settle())["phase"] == "Ready"


async def test_another_applications_key_is_not_copied_through_an_upload_the_requester_may_not_read():
    kube = FakeKube()
    other = make_ca("Other application")  # any key and certificate pair: what bring-your-own would copy
    kube.put_secret(NAMESPACE, "other-app-tls", {"tls.crt": other[0], "tls.key": other[1]})
    spec = {"signer": {"manual": {"signedSecretName": "other-app-tls"}}}
    lc = Lifecycle(asked_by("mallory", **spec), kube, issuers=believed())
    await lc.settle()
    assert lc.ready["reason"] == "SecretNotReadable" and "signedSecretName" in lc.ready["message"]
    assert lc.secret() is None and lc.keys_generated == 0


async def test_the_partners_upload_the_requester_may_read_goes_into_service():
    kube = FakeKube()
    kube.grants.add(("dev", "secrets", "client-signed", "get"))
    lc = Lifecycle(asked_by("dev"), kube, issuers=believed())
    status = await lc.settle()
    kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(status["csr"], CA, lc.clock.now)})
    assert (await lc.settle())["phase"] == "Ready"


async def test_without_a_believed_record_the_secret_is_read_as_before():
    # 0.2: no record (or no admission policy to make one believable) keeps the old behaviour; 0.3 will refuse.
    unrecorded = Lifecycle(asked_by(None, **CA_SIGNER), kube_with_ca(), issuers=believed())
    assert (await unrecorded.settle())["phase"] == "Ready"
    unchecked = Lifecycle(asked_by("mallory", **CA_SIGNER), kube_with_ca(), issuers=IssuerBook("mtls-system"))
    assert (await unchecked.settle())["phase"] == "Ready"
    assert "review_resource_access" not in unchecked.kube.calls


async def test_a_record_is_not_believed_while_the_policy_that_checks_it_is_not_in_force():
    # The operator is configured with the policy (--cluster-issuer-use-policy) but it was deleted: any tenant could
    # now write any name into the record, so with --require-requester nothing is read on its word.
    book = believed()
    book.use_policy = "the admission policy session-mtls-operator-cluster-issuer-use does not exist"
    lc = Lifecycle(asked_by("payments-admin", **CA_SIGNER), kube_with_ca(), issuers=book)
    lc.kube.grants.add(("payments-admin", "secrets", "payments-ca", "get"))
    assert lc.reconciler.context.access is not None
    lc.reconciler.context.access.required = True
    await lc.settle()
    assert lc.ready["reason"] == "RequesterUnknown" and lc.secret() is None
    assert "review_resource_access" not in lc.kube.calls
    book.use_policy = None  # back in force: the record is believed again, RBAC is asked
    lc.clock.advance(minutes=2)
    assert (await lc.settle())["phase"] == "Ready"


async def test_a_password_secret_the_requester_may_not_read_is_not_read_and_its_keys_are_not_named():
    kube = kube_with_ca()
    kube.grants.add(("dev", "secrets", "payments-ca", "get"))
    kube.put_secret(NAMESPACE, "db-credentials", {"username": b"admin", "db-password": b"hunter2"})
    keystores = {"keystores": {"pkcs12": {"passwordSecretRef": {"name": "db-credentials", "key": "password"}}}}
    lc = Lifecycle(asked_by("dev", **CA_SIGNER, **keystores), kube, issuers=believed())
    await lc.settle()
    assert lc.ready["reason"] == "KeystorePasswordNotFound", lc.ready
    assert "may not read Secret db-credentials" in lc.ready["message"]
    said = lc.ready["message"] + " ".join(message for *_, message in kube.events)
    assert "username" not in said and "db-password" not in said and "hunter2" not in said
    assert "keystore.p12" not in (lc.secret() or {})


async def test_with_require_requester_a_certificate_nobody_is_recorded_for_reads_no_secret():
    lc = Lifecycle(asked_by(None, **CA_SIGNER), kube_with_ca(), issuers=believed())
    assert lc.reconciler.context.access is not None
    lc.reconciler.context.access.required = True  # --require-requester (chart certificates.requireRequester)
    await lc.settle()
    assert lc.ready["reason"] == "RequesterUnknown" and "Secret payments-ca" in lc.ready["message"]
    assert lc.secret() is None and lc.keys_generated == 0


async def test_rbac_is_asked_when_a_secret_is_put_to_use_not_at_every_look():
    # A resync of thousands of certificates must not become thousands of reviews: an upload already in service
    # and keystores already built from the current password are not used again, so nobody is asked.
    kube = FakeKube()
    kube.grants.update({("dev", "secrets", "client-signed", "get"), ("dev", "secrets", "store-pass", "get")})
    kube.put_secret(NAMESPACE, "store-pass", {"password": b"changeit"})
    keystores = {"keystores": {"pkcs12": {"passwordSecretRef": {"name": "store-pass", "key": "password"}}}}
    lc = Lifecycle(asked_by("dev", **keystores), kube, issuers=believed())
    status = await lc.settle()
    kube.put_secret(NAMESPACE, "client-signed", {"tls.crt": partner_signs(status["csr"], CA, lc.clock.now)})
    assert (await lc.settle())["phase"] == "Ready" and "keystore.p12" in (lc.secret() or {})
    asked = kube.calls.count("review_resource_access")
    assert asked == 2  # the upload when it was put in service, the password when the stores were built
    for _ in range(5):
        lc.clock.advance(minutes=5)  # every remembered answer long stale
        await lc.reconcile()
    assert kube.calls.count("review_resource_access") == asked
