"""lifecycle.publisher: a trust bundle holds only CAs the operator verified (issue: one failing certificate put
`CN=Attacker CA` into the bundle a server trusts)."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, START, certificate_body, make_ca
from harness.pki import issue
from mtls_operator.lifecycle.publisher import CAPublisher

GOOD = make_ca("Good CA")
ATTACKER = make_ca("Attacker CA")


def _with_status(body: dict[str, Any], ready: str, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    body["metadata"]["generation"] = generation
    body["status"] = {"conditions": [{"type": "Ready", "status": ready, "reason": "x", "message": "x",
                                      "observedGeneration": observed}]}  # fmt: skip
    return body


def _leaf_of(ca: tuple[bytes, bytes]) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(ca[0])
    ca_key = serialization.load_pem_private_key(ca[1], None)
    leaf = issue(ec.generate_private_key(ec.SECP256R1()).public_key(), (ca_cert, ca_key), not_before=START)  # type: ignore[arg-type]
    return leaf.public_bytes(serialization.Encoding.PEM)


async def _bundle(kube: FakeKube, sources: list[dict[str, Any]]) -> str:
    await CAPublisher(kube).publish(NAMESPACE, "trust", sources)  # type: ignore[arg-type]
    found = await kube.get_configmap(NAMESPACE, "trust")
    return "" if found is None else found["data"]["ca.crt"]


def _attack(kube: FakeKube) -> dict[str, Any]:
    """A certificate that fails, naming as its CA a Secret that holds any certificate at all (no key)."""
    kube.put_secret(NAMESPACE, "attacker-ca", {"tls.crt": ATTACKER[0]})
    spec = {"signer": {"ca": {"secretName": "attacker-ca"}}, "publishCA": {"configMapName": "trust"}}
    return _with_status(certificate_body("poison", spec=spec), "False")


def _good(kube: FakeKube, ca_crt: bytes = GOOD[0]) -> dict[str, Any]:
    kube.put_secret(NAMESPACE, "client-tls", {"tls.crt": _leaf_of(GOOD), "ca.crt": ca_crt})
    return _with_status(certificate_body(spec={"publishCA": {"configMapName": "trust"}}), "True")


async def test_a_failing_certificate_adds_nothing_to_the_bundle() -> None:
    kube = FakeKube()
    bundle = await _bundle(kube, [_attack(kube), _good(kube)])
    assert "BEGIN CERTIFICATE" in bundle
    names = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(bundle.encode())]
    assert names == ["CN=Good CA"]


async def test_a_ready_left_over_from_before_a_spec_change_counts_for_nothing() -> None:
    kube = FakeKube()
    stale = _with_status(_attack(kube), "True", generation=2, observed=1)
    assert await _bundle(kube, [stale]) == ""


async def test_a_ca_crt_the_certificate_in_service_does_not_chain_to_is_not_published() -> None:
    kube = FakeKube()
    edited = _good(kube, ca_crt=ATTACKER[0])  # someone rewrote the live Secret's ca.crt
    assert await _bundle(kube, [edited]) == ""
