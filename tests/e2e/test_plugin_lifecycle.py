"""`kubectl mtls inspect`, `renew` and `import --key` (bring your own), and spec.publishCA, end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_and_get_csr,
    create_ca_secret,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)


def client_auth_signed(partner: Partner, csr: str, out: str) -> Path:
    (partner.dir / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    return partner.sign(csr, out=out, extra=["-extfile", "client.ext"])


def status(kubectl: Kubectl, namespace: str, name: str) -> dict:
    return (kubectl.get("mtlscertificate", name, namespace) or {}).get("status") or {}


def test_inspect_shows_what_is_in_service_and_never_the_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "seen")
    client_crt = client_auth_signed(partner, csr, "seen.crt")
    put_signed(kubectl, namespace, "seen-signed", {"tls.crt": client_crt, "ca.crt": partner.ca_crt})
    wait_ready(kubectl, namespace, "seen")
    report = json.loads(kubectl.plugin("inspect", "seen", "-n", namespace, "-o", "json").stdout)
    current = report["inService"]
    serial = partner.openssl("x509", "-in", str(client_crt), "-noout", "-serial").decode().strip().split("=")[1]
    fingerprint = partner.openssl("x509", "-in", str(client_crt), "-noout", "-fingerprint", "-sha256").decode()
    assert current["serialNumber"] == serial
    assert current["fingerprintSHA256"] == fingerprint.strip().split("=")[1]
    assert "CN=client.example.com" in current["subject"] and "CN=Partner Test CA" in current["issuer"]
    assert current["key"] == "RSA-2048" and current["extendedKeyUsages"] == ["clientAuth"]
    assert current["chainVerification"] == "verified to ca.crt"
    assert 364 < current["daysLeft"] <= 365
    assert report["pending"] is None
    text = kubectl.plugin("inspect", "seen", "-n", namespace).stdout
    assert "SHA-256 fingerprint:" in text and "PRIVATE KEY" not in text and "BEGIN" not in text


def test_renew_manual_publishes_one_new_csr_and_the_old_certificate_serves_meanwhile(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    first_csr = create_and_get_csr(kubectl, namespace, "rot")
    put_signed(kubectl, namespace, "rot-signed", {"tls.crt": partner.sign(first_csr, out="rot1.crt")})
    wait_ready(kubectl, namespace, "rot")
    live_before = kubectl.secret_data("rot-tls", namespace)

    out = kubectl.plugin("renew", "rot", "-n", namespace).stdout
    assert "renewal requested" in out
    obj = wait_certificate(kubectl, namespace, "rot", lambda o: (o.get("status") or {}).get("csr"), "new CSR")
    new_csr = obj["status"]["csr"]
    assert new_csr != first_csr and obj["status"]["phase"] == "Renewing"
    assert condition(obj)["status"] == "True"  # the old certificate still serves
    assert kubectl.secret_data("rot-tls", namespace) == live_before
    next_key = kubectl.secret_data("rot-tls-next", namespace)["tls.key"]
    events = [e for e in kubectl.events(namespace, "rot") if e["reason"] == "RenewalRequested"]
    assert len(events) == 1 and events[0]["type"] == "Normal"

    again = kubectl.plugin("renew", "rot", "-n", namespace).stdout  # idempotent: no second renewal
    assert "already requested" in again
    time.sleep(2)
    assert status(kubectl, namespace, "rot")["csr"] == new_csr
    assert kubectl.secret_data("rot-tls-next", namespace)["tls.key"] == next_key

    kubectl.plugin("import", "rot", "-n", namespace, "--cert", str(partner.sign(new_csr, out="rot2.crt")))
    obj = wait_certificate(kubectl, namespace, "rot", lambda o: o["status"].get("revision") == 2, "renewed")
    assert kubectl.secret_data("rot-tls", namespace)["tls.key"] == next_key
    annotation = obj["metadata"]["annotations"]["mtls.dev/renew-requested-at"]
    assert obj["status"]["lastRenewalRequest"] == annotation and "renewalRequest" not in obj["status"]
    time.sleep(2)
    assert status(kubectl, namespace, "rot")["revision"] == 2  # satisfied: nothing more happens


def test_renew_by_label_reissues_automatic_certificates_once(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_ca_secret(kubectl, namespace, partner)
    for name, labels in (("a1", "team: a"), ("a2", "team: a"), ("b1", "team: b")):
        manifest = certificate_manifest(name, spec=CA_SIGNER).replace(
            f"  name: {name}\n", f"  name: {name}\n  labels:\n    {labels}\n"
        )
        kubectl.apply(manifest, namespace)
    serials = {n: wait_ready(kubectl, namespace, n)["status"]["serialNumber"] for n in ("a1", "a2", "b1")}
    kubectl.plugin("renew", "-l", "team=a", "-n", namespace)
    for name in ("a1", "a2"):
        obj = wait_certificate(kubectl, namespace, name, lambda o: o["status"].get("revision") == 2, "re-issued")
        assert obj["status"]["serialNumber"] != serials[name]
        assert any(e["reason"] == "RenewalRequested" for e in kubectl.events(namespace, name))
    time.sleep(3)
    assert [status(kubectl, namespace, n)["revision"] for n in ("a1", "a2", "b1")] == [2, 2, 1]
    assert kubectl.plugin("renew", "-n", namespace, check=False).returncode == 2  # say which ones


def test_bring_your_own_key_and_certificate(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path: Path
) -> None:
    # Made before the operator, with the guide's own commands.
    partner.openssl("genrsa", "-out", str(tmp_path / "client.key"), "2048")
    partner.openssl("req", "-new", "-key", str(tmp_path / "client.key"), "-out", str(tmp_path / "client.csr"),
                    "-subj", "/C=IE/ST=Dublin/L=Dublin/O=My Company Inc./OU=IT/CN=client.example.com")  # fmt: skip
    client_crt = client_auth_signed(partner, (tmp_path / "client.csr").read_text(), "byo.crt")
    kubectl.apply(certificate_manifest("byo"), namespace)
    wait_reason(kubectl, namespace, "byo", "AwaitingSignature")

    # A key that does not belong to the certificate: refused locally, nothing written.
    partner.openssl("genrsa", "-out", str(tmp_path / "other.key"), "2048")
    bad = kubectl.plugin("import", "byo", "-n", namespace, "--cert", str(client_crt), "--key",
                         str(tmp_path / "other.key"), check=False)  # fmt: skip
    assert bad.returncode == 1 and "KeyMismatch" in bad.stderr
    assert kubectl.get("secret", "byo-signed", namespace) is None

    out = kubectl.plugin("import", "byo", "-n", namespace, "--cert", str(client_crt), "--key",
                         str(tmp_path / "client.key"), "--ca", str(partner.ca_crt)).stdout  # fmt: skip
    assert "in service" in out
    obj = wait_ready(kubectl, namespace, "byo")
    live = kubectl.secret_data("byo-tls", namespace)
    assert live["tls.key"] == (tmp_path / "client.key").read_bytes()
    assert live["tls.crt"].strip() == client_crt.read_bytes().strip()
    assert kubectl.get("secret", "byo-signed", namespace) is None  # the uploaded copy of the key is gone
    assert obj["status"]["revision"] == 1 and obj["status"]["renewalTime"]  # tracked and renewed like any other
    assert "csr" not in obj["status"]

    # With a certificate in service, --key is refused: renewals use keys the operator generates.
    again = kubectl.plugin("import", "byo", "-n", namespace, "--cert", str(client_crt), "--key",
                           str(tmp_path / "client.key"), check=False)  # fmt: skip
    assert again.returncode == 1 and "already has a certificate in service" in again.stderr


def test_bring_your_own_key_of_another_size_is_refused(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path: Path
) -> None:
    partner.openssl("genrsa", "-out", str(tmp_path / "big.key"), "4096")
    partner.openssl("req", "-new", "-key", str(tmp_path / "big.key"), "-out", str(tmp_path / "big.csr"),
                    "-subj", "/C=IE/O=My Company Inc./CN=client.example.com")  # fmt: skip
    crt = partner.sign((tmp_path / "big.csr").read_text(), out="big.crt")
    kubectl.apply(certificate_manifest("big"), namespace)
    proc = kubectl.plugin("import", "big", "-n", namespace, "--cert", str(crt), "--key", str(tmp_path / "big.key"),
                          check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "--key is RSA-4096 but spec.privateKey asks for RSA-2048" in proc.stderr


def configmap_bundle(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    found = kubectl.get("configmap", name, namespace)
    return None if found is None else found["data"]["ca.crt"]


def test_publish_ca_holds_old_and_new_during_a_rotation(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path: Path
) -> None:
    old_ca = Partner(tmp_path / "old", name="Our Old CA")
    new_ca = Partner(tmp_path / "new", name="Our New CA")
    create_ca_secret(kubectl, namespace, old_ca)
    csr = partner.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "p.key",
                          "-subj", "/C=IE/O=Partner/CN=outbound.partner.example").decode()  # fmt: skip
    spec = {
        "secretName": "out-tls", "commonName": "outbound.partner.example",
        "subject": {"country": "IE", "organization": "Partner"},
        **CA_SIGNER, "csr": csr, "publishCA": {"configMapName": "our-ca"},
    }  # fmt: skip
    kubectl.apply(json.dumps({"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsCertificate",
                              "metadata": {"name": "out"}, "spec": spec}), namespace)  # fmt: skip
    wait_ready(kubectl, namespace, "out")
    old_pem = old_ca.ca_crt.read_text()
    wait_for(lambda: configmap_bundle(kubectl, namespace, "our-ca") == old_pem, what="our CA published")

    # Rotate our CA: the partner's certificate in service still chains to the old one, the next one to the new.
    rotated = kubectl.run("create", "secret", "tls", "internal-ca", "-n", namespace, f"--cert={new_ca.ca_crt}",
                          f"--key={new_ca.ca_key}", "--dry-run=client", "-o", "yaml").stdout  # fmt: skip
    kubectl.run("apply", "-n", namespace, "-f", "-", input=rotated)
    new_pem = new_ca.ca_crt.read_text()
    both = wait_for(
        lambda: (b := configmap_bundle(kubectl, namespace, "our-ca")) and new_pem in b and b,
        what="old and new CA together",
    )
    assert old_pem in both and "PRIVATE KEY" not in both
    kubectl.plugin("renew", "out", "-n", namespace)  # re-sign the partner's CSR with the new CA
    wait_certificate(kubectl, namespace, "out", lambda o: o["status"].get("revision") == 2, "re-signed")
    wait_for(lambda: configmap_bundle(kubectl, namespace, "our-ca") == new_pem, what="only the new CA left")


def test_publish_ca_inbound_and_never_overwrites_a_foreign_configmap(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    publish = "  publishCA:\n    configMapName: partner-ca\n"
    csr = create_and_get_csr(kubectl, namespace, "in", extra_spec=publish)
    put_signed(kubectl, namespace, "in-signed", {"tls.crt": partner.sign(csr), "ca.crt": partner.ca_crt})
    wait_ready(kubectl, namespace, "in")
    wait_for(lambda: configmap_bundle(kubectl, namespace, "partner-ca") == partner.ca_crt.read_text(), what="published")

    kubectl.run("create", "configmap", "theirs", "-n", namespace, "--from-literal=ca.crt=keep me")
    kubectl.apply(certificate_manifest("in", extra_spec="  publishCA:\n    configMapName: theirs\n"), namespace)
    wait_for(
        lambda: [e for e in kubectl.events(namespace, "in") if e["reason"] == "PublishCAConflict"],
        what="PublishCAConflict event",
    )
    assert configmap_bundle(kubectl, namespace, "theirs") == "keep me"


def test_a_foreign_next_secret_stops_the_renewal_with_a_condition_and_costs_no_keys(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    """Someone else's `<secretName>-next` made every attempt generate a key and conflict (a key a second, no
    condition, the certificate expiring unrenewed). Now: SecretConflict, a Warning, no key; others unaffected."""
    csr = create_and_get_csr(kubectl, namespace, "blocked")
    put_signed(kubectl, namespace, "blocked-signed", {"tls.crt": partner.sign(csr, out="blocked.crt")})
    wait_ready(kubectl, namespace, "blocked")
    served = kubectl.secret_data("blocked-tls", namespace)
    kubectl.run("create", "secret", "generic", "blocked-tls-next", "-n", namespace, "--from-literal=note=theirs")
    generated = f"key for {namespace}/blocked "  # the operator's log line for each key it generates
    assert operator.logs().count(generated) == 1
    kubectl.plugin("renew", "blocked", "-n", namespace)
    obj = wait_reason(kubectl, namespace, "blocked", "SecretConflict", timeout=60)
    assert "blocked-tls-next exists and is not managed by this MtlsCertificate" in condition(obj)["message"]
    assert any(e["reason"] == "SecretConflict" and e["type"] == "Warning" for e in kubectl.events(namespace, "blocked"))
    kubectl.apply(certificate_manifest("bystander"), namespace)  # another certificate is served as usual
    wait_for(lambda: (kubectl.get("mtlscertificate", "bystander", namespace) or {}).get("status", {}).get("csr"),
             timeout=60, what="bystander CSR")  # fmt: skip
    time.sleep(3)
    assert operator.logs().count(generated) == 1, "no key was generated for the blocked renewal"
    assert kubectl.secret_data("blocked-tls-next", namespace) == {"note": b"theirs"}
    assert kubectl.secret_data("blocked-tls", namespace) == served
    assert operator.healthy()


def test_a_failing_certificate_cannot_poison_a_trust_bundle(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path: Path
) -> None:
    """A certificate that fails, naming as its CA a Secret holding any certificate at all, used to add that
    certificate (CN=Attacker CA) to the ConfigMap a server trusts. Only verified CAs are published now."""
    publish = "  publishCA:\n    configMapName: trust\n"
    csr = create_and_get_csr(kubectl, namespace, "honest", extra_spec=publish)
    put_signed(kubectl, namespace, "honest-signed", {"tls.crt": partner.sign(csr), "ca.crt": partner.ca_crt})
    wait_ready(kubectl, namespace, "honest")
    attacker = Partner(tmp_path / "attacker", name="Attacker CA")
    kubectl.run("create", "secret", "generic", "attacker-ca", "-n", namespace, f"--from-file=tls.crt={attacker.ca_crt}")
    kubectl.apply(certificate_manifest("poison", spec={**CA_SIGNER, "publishCA": {"configMapName": "trust"}})
                  .replace("internal-ca", "attacker-ca"), namespace)  # fmt: skip
    wait_reason(kubectl, namespace, "poison", "CAInvalid", timeout=60)
    time.sleep(3)  # the bundle is rebuilt after each reconcile of a certificate naming it
    bundle = wait_for(lambda: configmap_bundle(kubectl, namespace, "trust"), what="the bundle")
    assert bundle == partner.ca_crt.read_text(), "only the verified partner CA, never the attacker's certificate"
