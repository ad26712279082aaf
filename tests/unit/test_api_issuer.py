"""api.issuer: an issuer's spec as typed values; unusable bodies named, never a crash."""

from __future__ import annotations

import datetime

import pytest

from mtls_operator.api.issuer import issuer_ref_of, parse_issuer
from mtls_operator.api.refs import IssuerKey


def body(spec: dict, namespace: str | None = None) -> dict:
    meta = {"name": "platform", "uid": "u", "generation": 3, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "spec": spec}


def test_defaults_are_the_partner_guides_rules_and_deny_partner_csrs() -> None:
    spec = parse_issuer("ClusterMtlsIssuer", body({"ca": {"secretName": "ca"}}))
    assert spec.key == IssuerKey("ClusterMtlsIssuer", "", "platform")
    assert spec.policy.keys.algorithms == ("RSA",) and spec.policy.keys.min_rsa_bits == 2048
    assert spec.policy.sign_partner_csrs is False
    assert spec.rotation_spread == datetime.timedelta(hours=24)


def test_a_full_policy() -> None:
    spec = parse_issuer(
        "MtlsIssuer",
        body(
            {
                "ca": {"secretName": "ca"},
                "policy": {
                    "allowedCommonNames": ["*.{namespace}.example.com"],
                    "allowedSubject": {"organization": ["My Company Inc."]},
                    "maxDuration": "2160h",
                    "keys": {"allowedAlgorithms": ["RSA", "ECDSA"], "minRSAKeySize": 1024},
                    "partnerCSRs": "Allow",
                },
                "rotation": {"spread": "1h"},
            },
            namespace="team",
        ),
    )
    assert spec.key == IssuerKey("MtlsIssuer", "team", "platform")
    assert spec.policy.max_duration == datetime.timedelta(hours=2160)
    assert spec.policy.keys.min_rsa_bits == 2048  # never below the guide's floor
    assert spec.policy.sign_partner_csrs and spec.rotation_spread == datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("MtlsIssuer", {}, "spec.ca.secretName is required"),
        ("MtlsIssuer", {"ca": {"secretName": "x"}, "policy": {"namespaceSelector": {}}}, "ClusterMtlsIssuer only"),
        ("ClusterMtlsIssuer", {"ca": {"secretName": "x"}, "policy": {"allowedSubject": {"cn": ["a"]}}}, "unknown"),
        ("ClusterMtlsIssuer", {"ca": {"secretName": "x"}, "policy": {"maxDuration": "a year"}}, "invalid duration"),
        ("ClusterMtlsIssuer", {"ca": "not-an-object"}, "shape the CRD schema defines"),
        ("Issuer", {"ca": {"secretName": "x"}}, "unknown issuer kind"),
    ],
)
def test_unusable_specs_are_named(kind: str, spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_issuer(kind, body(spec))


def test_the_reference_a_certificate_makes() -> None:
    cert = {"metadata": {"namespace": "team"}, "spec": {"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "x"}}}}
    assert issuer_ref_of(cert) == IssuerKey("MtlsIssuer", "team", "x")
    cert["spec"]["signer"]["issuerRef"]["kind"] = "ClusterMtlsIssuer"
    assert issuer_ref_of(cert) == IssuerKey("ClusterMtlsIssuer", "", "x")
    assert issuer_ref_of({"metadata": {}, "spec": {"signer": {"ca": {"secretName": "x"}}}}) is None
