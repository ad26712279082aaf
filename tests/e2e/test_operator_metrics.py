"""Metrics against the real apiserver: series follow the object, vanish with it, and survive a restart."""

from __future__ import annotations

import datetime

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_ca_secret,
    metric_value,
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
