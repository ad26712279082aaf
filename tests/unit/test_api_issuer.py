"""api.issuer: an issuer's spec as typed values; unusable bodies named, never a crash."""

from __future__ import annotations

import datetime

import pytest

from mtls_operator.api.issuer import ca_secret_names, issuer_ref_of, parse_issuer
from mtls_operator.api.refs import IssuerKey

TOKEN = {
    "module": "/usr/lib/softhsm/libsofthsm2.so",
    "tokenLabel": "ca",
    "keyLabel": "issuing",
    "pinSecretRef": {"name": "ca-pin"},
}
TOKEN_CA = {"pkcs11": TOKEN, "certificate": {"configMapName": "ca-cert"}}


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
        ("MtlsIssuer", {}, "exactly one of secretName .* and pkcs11"),
        ("MtlsIssuer", {"ca": {"secretName": "x", "pkcs11": TOKEN}}, "exactly one of secretName .* and pkcs11"),
        ("MtlsIssuer", {"ca": {"pkcs11": TOKEN}}, "needs spec.ca.certificate"),
        ("MtlsIssuer", {"ca": {"pkcs11": TOKEN, "certificate": {}}}, "exactly one of secretName and configMapName"),
        ("MtlsIssuer", {"ca": {**TOKEN_CA, "pkcs11": {**TOKEN, "tokenSerial": "1"}}}, "tokenLabel and tokenSerial"),
        ("MtlsIssuer", {"ca": {**TOKEN_CA, "pkcs11": {**TOKEN, "keyId": "01"}}}, "keyLabel and keyId"),
        ("MtlsIssuer", {"ca": {**TOKEN_CA, "pkcs11": {**TOKEN, "keyLabel": None, "keyId": "zz"}}}, "not hexadecimal"),
        ("MtlsIssuer", {"ca": {**TOKEN_CA, "pkcs11": {**TOKEN, "pinSecretRef": None}}}, "pinSecretRef.name"),
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


def test_a_ca_key_in_a_token_with_its_certificate_beside_it() -> None:
    spec = parse_issuer("MtlsIssuer", body({"ca": TOKEN_CA}, namespace="team"))
    assert spec.ca_secret_name is None
    token = spec.pkcs11
    assert token is not None
    assert (token.module, token.token_label, token.token_serial) == ("/usr/lib/softhsm/libsofthsm2.so", "ca", None)
    assert (token.key_label, token.key_id) == ("issuing", None)
    assert (token.pin_secret_name, token.pin_secret_key) == ("ca-pin", "pin")
    assert (token.certificate.configmap_name, token.certificate.key) == ("ca-cert", "ca.crt")
    by_id = {**TOKEN, "tokenLabel": None, "tokenSerial": "93f1", "keyLabel": None, "keyId": "01:A2"}
    certificate = {"secretName": "ca-public", "key": "tls.crt"}
    spec = parse_issuer("MtlsIssuer", body({"ca": {"pkcs11": by_id, "certificate": certificate}}))
    assert spec.pkcs11 is not None and spec.pkcs11.key_id == b"\x01\xa2" and spec.pkcs11.token_serial == "93f1"
    assert str(spec.pkcs11.certificate) == "Secret ca-public (key tls.crt)"


def test_the_secrets_an_issuer_reads() -> None:
    assert ca_secret_names(body({"ca": {"secretName": "ca"}})) == ("ca",)
    token_ca = {"ca": {"pkcs11": TOKEN, "certificate": {"secretName": "ca-public"}}}
    assert ca_secret_names(body(token_ca)) == ("ca-pin", "ca-public")
    assert ca_secret_names(body({"ca": TOKEN_CA})) == ("ca-pin",)  # the certificate is in a ConfigMap
    assert ca_secret_names(body({"ca": "not-an-object"})) == ()


def test_the_reference_a_certificate_makes() -> None:
    cert = {"metadata": {"namespace": "team"}, "spec": {"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "x"}}}}
    assert issuer_ref_of(cert) == IssuerKey("MtlsIssuer", "team", "x")
    cert["spec"]["signer"]["issuerRef"]["kind"] = "ClusterMtlsIssuer"
    assert issuer_ref_of(cert) == IssuerKey("ClusterMtlsIssuer", "", "x")
    assert issuer_ref_of({"metadata": {}, "spec": {"signer": {"ca": {"secretName": "x"}}}}) is None
