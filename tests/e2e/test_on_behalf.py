"""No confused deputy inside a namespace: a Secret a certificate names is read for its recorded requester only when
RBAC lets that user read it (lifecycle.onbehalf), on the real apiserver with the session's admission policies
recording (or checking) who asked."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from harness.cluster import (
    ADMIN,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    allow_certificates,
    certificate_manifest,
    condition,
    helm,
    own_control_plane,
    serves_mutating_policies,
    wait_ready,
    wait_reason,
)

AUTHENTICATED = ("system:authenticated",)


def test_a_ca_key_the_requester_may_not_read_signs_nothing_for_them(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    recorded_by_admission = serves_mutating_policies(kubectl)
    ca = Partner(tmp_path / "ca", name="Payments Internal CA")
    kubectl.run("create", "secret", "tls", "payments-ca", "-n", namespace, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}")
    # mallory and dev may create certificates; only dev may read the namespace's Secrets.
    allow_certificates(kubectl, namespace, "mallory", "dev")
    kubectl.run("create", "role", "secrets", "-n", namespace, "--verb=get", "--resource=secrets")
    kubectl.run("create", "rolebinding", "secrets-dev", "-n", namespace, "--role=secrets", "--user=dev")

    def apply_as(user: str, name: str) -> subprocess.CompletedProcess[str]:
        spec = {"duration": "2160h", "signer": {"ca": {"secretName": "payments-ca"}}}
        requester = None if recorded_by_admission else (user, AUTHENTICATED)
        manifest = certificate_manifest(name, spec=spec, requester=requester)
        return kubectl.run("apply", "--as", user, "-n", namespace, "-f", "-", input=manifest, check=False)

    proc = apply_as("mallory", "borrowed")
    assert proc.returncode == 0, proc.stderr
    refused = condition(wait_reason(kubectl, namespace, "borrowed", "SecretNotReadable", timeout=30))
    assert "mallory, recorded as this certificate's requester, may not read Secret payments-ca" in refused["message"]
    assert "tls.crt" not in (kubectl.secret_data("borrowed-tls", namespace) or {})  # nothing signed with it
    warnings = [e for e in kubectl.events(namespace) if e.get("reason") == "SecretNotReadable"]
    assert warnings and all("tls.key" not in e["message"] for e in warnings)

    proc = apply_as("dev", f"own-{uuid.uuid4().hex[:4]}")
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.split()[0].split("/")[-1]
    wait_ready(kubectl, namespace, name)
    # Given the right, mallory's certificate is signed without an edit (RBAC is asked again each minute; 2 s here).
    kubectl.run("create", "rolebinding", "secrets-mallory", "-n", namespace, "--role=secrets", "--user=mallory")
    wait_ready(kubectl, namespace, "borrowed", timeout=60)


def test_require_requester_refuses_a_certificate_nobody_is_recorded_for(tmp_path: Path) -> None:
    """--require-requester (chart certificates.requireRequester, the 0.3 default): a certificate with no recorded
    requester has no Secret read for it. A control plane of its own, with the validating policy only (as below
    Kubernetes' MutatingAdmissionPolicy), so a record is there only when the user writes it."""
    with own_control_plane(tmp_path / "plane", controller_manager=False) as (plane, kubectl):
        kubectl.run("create", "namespace", "apps")
        rendered = helm(plane.kubeconfig, "template", "mtls-operator", str(ROOT / "charts" / "mtls-operator"),
                        "--show-only", "templates/admission-policy.yaml").stdout  # fmt: skip
        kubectl.run("apply", "-f", "-", input=rendered)
        ca = Partner(tmp_path / "ca", name="Apps CA")
        kubectl.run("create", "secret", "tls", "apps-ca", "-n", "apps", f"--cert={ca.ca_crt}", f"--key={ca.ca_key}")
        (tmp_path / "logs").mkdir()
        args = ["-n", "apps", "--require-requester", "--cluster-issuer-use-policy", "mtls-operator-cluster-issuer-use"]
        operator = OperatorProcess(plane.kubeconfig, tmp_path / "logs", args)
        operator.start()
        try:
            spec = {"signer": {"ca": {"secretName": "apps-ca"}}}
            kubectl.apply(certificate_manifest("unrecorded", spec=spec, requester=None), "apps")
            refused = condition(wait_reason(kubectl, "apps", "unrecorded", "RequesterUnknown", timeout=30))
            assert "Secret apps-ca (spec.signer.ca.secretName) is read only for" in refused["message"]
            assert "tls.crt" not in (kubectl.secret_data("unrecorded-tls", "apps") or {})
            kubectl.apply(certificate_manifest("recorded", spec=spec, requester=ADMIN), "apps")
            wait_ready(kubectl, "apps", "recorded")
        finally:
            operator.stop()
        assert "Traceback" not in operator.logs()
