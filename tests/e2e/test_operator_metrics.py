"""Metrics against the real apiserver: series follow the object, vanish with it, and survive a restart."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_and_get_csr,
    create_ca_secret,
    metric_value,
    put_signed,
    wait_for,
    wait_ready,
)


def test_series_follow_the_object_and_are_rebuilt_after_restart(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_ca_secret(kubectl, namespace, partner)
    kubectl.apply(certificate_manifest("metered", spec=CA_SIGNER), namespace)
    kubectl.apply(certificate_manifest("pending"), namespace)
    obj = wait_ready(kubectl, namespace, "metered")
    # A scrape is a moment, not a transaction with the status write: the gauge follows it within a poll.
    expiry = wait_for(
        lambda: metric_value(operator, "mtls_certificate_expiration_timestamp_seconds", namespace, "metered"),
        what="expiry gauge",
    )
    assert abs(expiry - _epoch(obj["status"]["notAfter"])) < 1
    pending_since = wait_for(
        lambda: metric_value(
            operator, "mtls_certificate_awaiting_signature_since_timestamp_seconds", namespace, "pending"
        )
    )
    assert (
        metric_value(operator, "mtls_certificate_awaiting_signature_since_timestamp_seconds", namespace, "metered")
        is None
    )
    assert metric_value(operator, "mtls_certificate_issued_total", namespace, "metered") == 1.0

    operator.stop()
    operator.start()
    assert wait_for(
        lambda: metric_value(operator, "mtls_certificate_expiration_timestamp_seconds", namespace, "metered") == expiry,
        what="gauge rebuilt after restart",
    )
    assert wait_for(
        lambda: (
            metric_value(operator, "mtls_certificate_awaiting_signature_since_timestamp_seconds", namespace, "pending")
            == pending_since
        )
    )
    kubectl.run("delete", "mtlscertificate", "metered", "-n", namespace)
    wait_for(
        lambda: (
            not [
                line
                for line in operator.metrics().splitlines()
                if f'namespace="{namespace}"' in line and 'name="metered"' in line
            ]
        ),
        what="series of the deleted object gone",
    )


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def test_a_partners_ca_that_expires_soon_is_in_status_and_metered(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    # The partner's CA (openssl req -x509 -days 45) expires long before the certificate it signed for a year.
    partner = Partner(tmp_path / "short-lived-ca", name="Partner Short CA", ca_days=45)
    csr = create_and_get_csr(kubectl, namespace, "hand")
    put_signed(kubectl, namespace, "hand-signed", {"tls.crt": partner.sign(csr, days=365), "ca.crt": partner.ca_crt})
    obj = wait_ready(kubectl, namespace, "hand")
    ca_expiry = x509.load_pem_x509_certificate(partner.ca_crt.read_bytes()).not_valid_after_utc
    assert obj["status"]["chainNotAfter"] == ca_expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert obj["status"]["chainNotAfterSubject"] == "Partner Short CA"
    gauge = wait_for(
        lambda: metric_value(operator, "mtls_certificate_chain_expiration_timestamp_seconds", namespace, "hand"),
        what="chain expiry gauge",
    )
    assert gauge == ca_expiry.timestamp()
    assert gauge < _epoch(obj["status"]["renewalTime"]), "the alert's condition: the CA goes before the renewal"
