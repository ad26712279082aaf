"""The platform's floors on duration and renewBefore (policy.floors): refused at `kubectl apply` by the chart's
admission policy, and by the operator itself for what gets past it; other tenants' certificates keep being issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    chart_template_applied,
    condition,
    create_ca_secret,
    wait_for,
    wait_ready,
    wait_reason,
)


def test_the_operator_enforces_the_floor_itself_and_other_certificates_are_served(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    create_ca_secret(kubectl, namespace, Partner(tmp_path / "ca"))
    # No admission policy here: what a cluster without it (or an object from before it) gets.
    kubectl.apply(certificate_manifest("storm", spec={**CA_SIGNER, "duration": "1s", "renewBefore": "0s"}), namespace)
    kubectl.apply(certificate_manifest("fine", spec={**CA_SIGNER, "duration": "2m", "renewBefore": "60s"}), namespace)
    refused = condition(wait_reason(kubectl, namespace, "storm", "DurationBelowFloor"))
    assert "spec.duration 1s is below this cluster's floor of 1m" in refused["message"], refused
    wait_ready(kubectl, namespace, "fine")
    assert kubectl.secret_data("storm-tls", namespace) is None  # nothing issued, no key generated for it
    events = [e for e in kubectl.events(namespace, "storm") if e["reason"] == "DurationBelowFloor"]
    assert len(events) == 1 and events[0].get("count", 1) == 1  # said once, not in a loop


@pytest.fixture
def floors_policy(kubectl: Kubectl, tmp_path: Path) -> Iterator[None]:
    """The chart's policy rendered with the floors the session operator runs with (1m, 30s)."""
    floors = ("--set", "certificates.minDuration=1m", "--set", "certificates.minRenewBefore=30s")
    with chart_template_applied(kubectl, tmp_path, "certificate-floors-policy.yaml", *floors):
        yield


def test_a_duration_below_the_floor_is_refused_at_apply(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, floors_policy: None
) -> None:
    storm = certificate_manifest("storm", spec={**CA_SIGNER, "duration": "1s", "renewBefore": "0s"})

    def refused() -> str | None:
        proc = kubectl.apply(storm, namespace, check=False)
        if proc.returncode == 0:
            kubectl.run("delete", "mtlscertificate", "storm", "-n", namespace, "--ignore-not-found")
            return None
        return proc.stderr

    message = wait_for(refused, timeout=30, what="the admission policy refuses the storm")
    assert "spec.duration 1s is below this cluster's floor of 1m" in message, message
    late = certificate_manifest("late", spec={**CA_SIGNER, "duration": "2h", "renewBefore": "1s"})
    proc = kubectl.apply(late, namespace, check=False)
    assert proc.returncode != 0 and "spec.renewBefore 1s is below this cluster's floor of 30s" in proc.stderr
