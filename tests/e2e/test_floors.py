"""The platform's floors on duration and renewBefore (policy.floors): refused at `kubectl apply` by the chart's
admission policy, and by the operator itself for what gets past it; other tenants' certificates keep being issued."""

from __future__ import annotations

from pathlib import Path

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


def test_a_duration_below_the_floor_is_refused_at_apply(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    # An object from before the policy (the operator refuses to issue for it meanwhile).
    kubectl.apply(certificate_manifest("older", spec={**CA_SIGNER, "duration": "30s", "renewBefore": "10s"}), namespace)
    floors = ("--set", "certificates.minDuration=1m", "--set", "certificates.minRenewBefore=30s")
    with chart_template_applied(kubectl, tmp_path, "certificate-floors-policy.yaml", *floors):
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
        # What leaves the fields as they were is not judged again: the older object can be annotated (a renewal
        # request, a finalizer let go) and deleted.
        kubectl.run("annotate", "mtlscertificate", "older", "-n", namespace, "team=payments")
        proc = kubectl.run("patch", "mtlscertificate", "older", "-n", namespace, "--type=merge", "-p",
                           '{"spec":{"duration":"20s"}}', check=False)  # fmt: skip
        assert proc.returncode != 0 and "below this cluster's floor" in proc.stderr
