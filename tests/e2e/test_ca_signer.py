"""Signer `ca` (our CA signs automatically) and the outbound direction (we sign a partner's CSR)."""

from __future__ import annotations

import datetime
import json

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_ca_secret,
    wait_certificate,
    wait_reason,
)

CA_SIGNED = {"duration": "2160h", **CA_SIGNER}


def test_ca_signer_goes_ready_without_a_human_and_waits_for_a_missing_ca(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    kubectl.apply(certificate_manifest("auto", spec=CA_SIGNED), namespace)
    obj = wait_reason(kubectl, namespace, "auto", "CANotFound")
    assert "internal-ca does not exist" in condition(obj)["message"]

    create_ca_secret(kubectl, namespace, partner)  # the CA appearing is noticed through the watch
    obj = wait_reason(kubectl, namespace, "auto", "Ready")
    assert obj["status"]["phase"] == "Ready"
    live = kubectl.secret_data("auto-tls", namespace)
    for key, value in live.items():
        (partner.dir / key).write_bytes(value)
    text = partner.openssl("x509", "-in", "tls.crt", "-noout", "-text").decode()
    assert "TLS Web Client Authentication" in text
    assert "Signature Algorithm: sha256WithRSAEncryption" in text
    assert "X509v3 Authority Key Identifier" in text and "X509v3 Subject Key Identifier" in text
    assert "DNS:client.example.com" in text
    partner.openssl("verify", "-CAfile", "ca.crt", "tls.crt")
    fingerprint = ("x509", "-noout", "-fingerprint", "-sha256", "-in")
    assert partner.openssl(*fingerprint, "ca.crt") == partner.openssl(*fingerprint, str(partner.ca_crt))
    assert partner.openssl("x509", "-in", "tls.crt", "-noout", "-pubkey") == partner.openssl(
        "pkey", "-in", "tls.key", "-pubout"
    )
    assert len(obj["status"]["serialNumber"]) >= 30, "128-bit random serial"
    not_before = datetime.datetime.fromisoformat(obj["status"]["notBefore"])
    not_after = datetime.datetime.fromisoformat(obj["status"]["notAfter"])
    assert abs((not_after - not_before) - datetime.timedelta(hours=2160)) <= datetime.timedelta(minutes=2)


def test_invalid_ca_secret(kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner) -> None:
    other = partner.openssl("genrsa", "2048")
    (partner.dir / "other.key").write_bytes(other)
    kubectl.run(
        "create", "secret", "generic", "internal-ca", "-n", namespace,
        f"--from-file=tls.crt={partner.ca_crt}", f"--from-file=tls.key={partner.dir / 'other.key'}",
    )  # fmt: skip
    kubectl.apply(certificate_manifest("badca", spec=CA_SIGNED), namespace)
    obj = wait_reason(kubectl, namespace, "badca", "CAInvalid")
    assert "tls.key does not belong to its tls.crt" in condition(obj)["message"]
    assert any(e["reason"] == "CAInvalid" and e["type"] == "Warning" for e in kubectl.events(namespace, "badca"))


def outbound_manifest(name: str, csr: str, common_name: str = "outbound.partner.example") -> str:
    return json.dumps(
        {
            "apiVersion": "mtls.dev/v1alpha1",
            "kind": "MtlsCertificate",
            "metadata": {"name": name},
            "spec": {
                "secretName": f"{name}-out",
                "commonName": common_name,
                "subject": {"country": "IE", "organization": "Partner"},
                "duration": "8760h",
                "signer": {"ca": {"secretName": "internal-ca"}},
                "csr": csr,
            },
        }
    )


def test_outbound_signs_the_partners_openssl_csr(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path
) -> None:
    ours = Partner(tmp_path / "our-ca", name="Our Internal CA")  # our CA this time; `partner` only makes the CSR
    create_ca_secret(kubectl, namespace, ours)
    csr = partner.openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "apata.key",
        "-subj", "/C=IE/ST=Dublin/O=Partner/OU=Platform/CN=outbound.partner.example",
    ).decode()  # fmt: skip
    kubectl.apply(outbound_manifest("apata-out", csr), namespace)
    obj = wait_reason(kubectl, namespace, "apata-out", "Ready")
    assert obj["status"]["phase"] == "Ready" and obj["status"]["notAfter"]
    data = kubectl.secret_data("apata-out-out", namespace)
    assert "tls.key" not in data, "we never hold the partner's key"
    (partner.dir / "apata-outbound.crt").write_bytes(data["tls.crt"])
    (partner.dir / "our-ca.crt").write_bytes(data["ca.crt"])
    partner.openssl("verify", "-CAfile", "our-ca.crt", "apata-outbound.crt")
    # The partner can use it with their key: the certificate carries exactly their public key.
    assert partner.openssl("x509", "-in", "apata-outbound.crt", "-noout", "-pubkey") == partner.openssl(
        "pkey", "-in", "apata.key", "-pubout"
    )
    subject = partner.openssl("x509", "-in", "apata-outbound.crt", "-noout", "-subject").decode()
    assert "CN = outbound.partner.example" in subject


def test_outbound_rejects_weak_and_incomplete_csrs(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_ca_secret(kubectl, namespace, partner)
    weak = partner.openssl(
        "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", "weak.key", "-subj", "/C=IE/O=P/CN=weak.example",
    ).decode()  # fmt: skip
    no_subject = partner.openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ns.key", "-subj", "/CN=nosubject.example",
    ).decode()  # fmt: skip
    kubectl.apply(outbound_manifest("weak", weak, "weak.example"), namespace)
    kubectl.apply(outbound_manifest("nosubject", no_subject, "nosubject.example"), namespace)
    weak_obj = wait_reason(kubectl, namespace, "weak", "CSRRejected")
    assert "1024 bits; at least 2048 are required" in condition(weak_obj)["message"]
    ns_obj = wait_reason(kubectl, namespace, "nosubject", "CSRRejected")
    assert "missing required field(s): Country (C), Organisation (O)" in condition(ns_obj)["message"]
    assert ns_obj["status"]["phase"] == "Failed"
    assert kubectl.get("secret", "weak-out", namespace) is None
    assert any(e["reason"] == "CSRRejected" for e in kubectl.events(namespace, "weak"))


def test_outbound_signs_again_when_the_partner_sends_a_new_csr(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_ca_secret(kubectl, namespace, partner)
    subject = "/C=IE/O=Partner/CN=outbound.partner.example"
    first = partner.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k1.key", "-subj", subject)
    kubectl.apply(outbound_manifest("again", first.decode()), namespace)
    obj = wait_reason(kubectl, namespace, "again", "Ready")
    assert obj["status"]["revision"] == 1
    second = partner.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k2.key", "-subj", subject)
    kubectl.apply(outbound_manifest("again", second.decode()), namespace)
    wait_certificate(
        kubectl, namespace, "again", lambda o: o["status"].get("revision") == 2, "re-signed for the new CSR"
    )
    (partner.dir / "again.crt").write_bytes(kubectl.secret_data("again-out", namespace)["tls.crt"])
    assert partner.openssl("x509", "-in", "again.crt", "-noout", "-pubkey") == partner.openssl(
        "pkey", "-in", "k2.key", "-pubout"
    )
