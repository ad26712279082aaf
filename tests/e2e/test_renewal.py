"""Renewal against the real apiserver: the 30-day window, rotation without downtime, CA re-issue."""

from __future__ import annotations

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_and_get_csr,
    create_ca_secret,
    metric_value,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)


def renewing(obj: dict) -> bool:
    """Inside the renewal window with the next CSR published."""
    return condition(obj, "RenewalDue").get("status") == "True" and bool(obj["status"].get("csr"))


def test_20_day_certificate_starts_renewal_and_rotates_without_downtime(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    first_csr = create_and_get_csr(kubectl, namespace, "short")
    put_signed(kubectl, namespace, "short-signed", {"tls.crt": partner.sign(first_csr, days=20)})
    obj = wait_certificate(kubectl, namespace, "short", renewing, "RenewalDue with a new CSR")
    assert obj["status"]["phase"] == "Renewing"
    assert condition(obj)["status"] == "True", "the certificate in service still works"
    live = kubectl.secret_data("short-tls", namespace)
    next_key = kubectl.secret_data("short-tls-next", namespace)["tls.key"]
    assert next_key != live["tls.key"]
    second_csr = obj["status"]["csr"]
    assert second_csr != first_csr
    events = kubectl.events(namespace, "short")
    renewal = [e for e in events if e["reason"] == "RenewalDue"]
    assert renewal and renewal[0]["type"] == "Warning"
    assert "certificate expires in 19 days" in renewal[0]["message"] and "new CSR published" in renewal[0]["message"]
    assert metric_value(operator, "mtls_certificate_renewal_due", namespace, "short") == 1.0

    # A certificate for the OLD key, imported during renewal, is refused and nothing changes.
    put_signed(kubectl, namespace, "short-signed", {"tls.crt": partner.sign(first_csr, days=365, out="old-key.crt")})
    wait_reason(kubectl, namespace, "short", "KeyMismatch")
    assert kubectl.secret_data("short-tls", namespace) == live

    # The partner signs the new CSR: one update switches to the next key, the next Secret goes away.
    put_signed(kubectl, namespace, "short-signed", {"tls.crt": partner.sign(second_csr, days=365, out="new.crt")})
    obj = wait_certificate(
        kubectl,
        namespace,
        "short",
        lambda o: o["status"].get("revision") == 2 and o["status"]["phase"] == "Ready",
        "rotated",
    )
    assert condition(obj, "RenewalDue")["status"] == "False"
    rotated = kubectl.secret_data("short-tls", namespace)
    assert rotated["tls.key"] == next_key
    assert kubectl.get("secret", "short-tls-next", namespace) is None
    assert any(e["reason"] == "Renewed" for e in kubectl.events(namespace, "short"))
    assert wait_for(lambda: metric_value(operator, "mtls_certificate_renewal_due", namespace, "short") == 0.0)


def test_365_day_certificate_is_ready_without_renewal(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "long")
    put_signed(kubectl, namespace, "long-signed", {"tls.crt": partner.sign(csr, days=365)})
    obj = wait_ready(kubectl, namespace, "long")
    assert condition(obj, "RenewalDue")["status"] == "False"
    assert obj["status"]["renewalTime"] < obj["status"]["notAfter"]
    assert not [e for e in kubectl.events(namespace, "long") if e["reason"] == "RenewalDue"]
    assert kubectl.get("secret", "long-tls-next", namespace) is None


def test_10_day_certificate_warns_at_the_14_day_threshold(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "ten")
    put_signed(kubectl, namespace, "ten-signed", {"tls.crt": partner.sign(csr, days=10)})
    obj = wait_certificate(
        kubectl, namespace, "ten", lambda o: o["status"].get("expiryWarningDays") == 14, "14-day warning"
    )
    assert obj["status"]["phase"] == "Renewing"
    warnings = [e for e in kubectl.events(namespace, "ten") if e["reason"] == "RenewalDue"]
    assert len(warnings) == 1 and "expires in 9 days" in warnings[0]["message"]


def test_rotation_policy_never_reuses_the_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "pinned", extra_spec="  privateKey:\n    rotationPolicy: Never\n")
    put_signed(kubectl, namespace, "pinned-signed", {"tls.crt": partner.sign(csr, days=20)})
    obj = wait_certificate(kubectl, namespace, "pinned", renewing, "renewal with the same key")
    assert obj["status"]["csr"] == csr, "same key and subject: the RSA CSR is byte-identical"
    assert kubectl.get("secret", "pinned-tls-next", namespace) is None


def test_ca_signer_reissues_by_itself(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_ca_secret(kubectl, namespace, partner)
    spec = {"duration": "2m", "renewBefore": "1m50s", **CA_SIGNER}
    kubectl.apply(certificate_manifest("brief", spec=spec), namespace)
    first = wait_ready(kubectl, namespace, "brief")
    # Renewal is due 3-10 s after issuance: a slow poll may first see revision 2, so wait for one more than seen.
    seen = first["status"]["revision"]
    obj = wait_certificate(
        kubectl, namespace, "brief", lambda o: o["status"].get("revision", 0) > seen, "automatic re-issue", timeout=60
    )
    assert obj["status"]["serialNumber"] != first["status"]["serialNumber"]
    assert any(e["reason"] == "Renewed" for e in kubectl.events(namespace, "brief"))


def test_expired_certificate_import_is_rejected(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "stale")
    put_signed(
        kubectl,
        namespace,
        "stale-signed",
        {"tls.crt": partner.sign_with_dates(csr, "20200101000000Z", "20210101000000Z")},
    )
    wait_reason(kubectl, namespace, "stale", "Expired")
    assert kubectl.secret_data("stale-tls", namespace)["tls.crt"] == b""
