"""The chart installed for real on a node: the image built from the Dockerfile, a namespace enforcing Pod Security
`restricted`, the kubelet probing /healthz and /readyz, the samples issued by the operator's Pod, leader handover
between two Pods, sharding across a StatefulSet, and a `helm upgrade` that rolls the Pod without a second key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nodeplane

from harness.cluster import (
    ROOT,
    Kubectl,
    Partner,
    certificate_manifest,
    condition,
    create_ca_secret,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)
from harness.images import OPERATOR_IMAGE, OPERATOR_TAG
from harness.nodechart import (
    RELEASE,
    SYSTEM,
    install,
    key_fingerprints,
    metrics_status,
    operator_pods,
    pod_logs,
    pod_metrics,
    seconds_between,
    wait_pods_ready,
)

SAMPLES = ROOT / "manifests" / "samples"


def awaiting_signature(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") == "AwaitingSignature"


def test_operator_pod_runs_ready_under_restricted_pod_security(release: None, node_kubectl: Kubectl) -> None:
    [pod] = wait_pods_ready(node_kubectl, 1)
    ns = node_kubectl.get("namespace", SYSTEM, "")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"{OPERATOR_IMAGE}:{OPERATOR_TAG}"
    # The kubelet used the probes: Ready (the readiness probe on /readyz passed) after the startup probe on /healthz.
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The kubelet's own count of the probes it ran for this Pod (its /metrics/probes, through the apiserver).
    probes = node_kubectl.run("get", "--raw", f"/api/v1/nodes/{pod['spec']['nodeName']}/proxy/metrics/probes").stdout
    for probe_type in ("Startup", "Readiness"):  # liveness first runs 20 s in: not yet, this early
        assert (
            any(
                line.startswith("prober_probe_total{")
                and f'probe_type="{probe_type}"' in line
                and f'pod="{pod["metadata"]["name"]}"' in line
                and 'result="successful"' in line
                and float(line.rsplit(" ", 1)[1]) > 0
                for line in probes.splitlines()
            )
            or probe_type == "Liveness"
        ), f"no successful {probe_type} probe counted:\n{probes[-2000:]}"
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["restartCount"] == 0
    started = status["state"]["running"]["startedAt"]
    ready_at = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
    print(f"operator container started -> Pod Ready: {seconds_between(started, ready_at):.0f} s (1 s resolution)")
    # Sized from the Pod's CPU limit (1 CPU in the chart's defaults), not from the node's cores.
    logs = pod_logs(node_kubectl, pod["metadata"]["name"])
    assert "key generation threads: 1 (CPU limit 1," in logs, logs[-2000:]
    assert "ERROR" not in logs, logs[-3000:]


def test_metrics_answer_only_a_token_allowed_to_get_them(release: None, node_kubectl: Kubectl) -> None:
    """The chart's metrics path as Prometheus meets it: HTTPS on 8443, a TokenReview and a SubjectAccessReview."""
    [pod] = wait_pods_ready(node_kubectl, 1)
    name = pod["metadata"]["name"]
    node_kubectl.run("create", "serviceaccount", "not-a-metrics-reader", "-n", SYSTEM)
    try:
        stranger = node_kubectl.run("create", "token", "not-a-metrics-reader", "-n", SYSTEM).stdout.strip()
        assert metrics_status(node_kubectl, name, None) == 401
        assert metrics_status(node_kubectl, name, "not-a-token") == 401
        assert metrics_status(node_kubectl, name, stranger) == 403  # authenticated, but not bound to the reader role
        assert metrics_status(node_kubectl, name, "own") == 200  # bound by the chart's metrics.readers
    finally:
        node_kubectl.run("delete", "serviceaccount", "not-a-metrics-reader", "-n", SYSTEM)


def test_every_sample_reaches_its_documented_phase_through_the_pod(
    release: None, node_kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    partner = Partner(tmp_path / "partner", name="Internal CA")
    create_ca_secret(node_kubectl, namespace, partner)  # the `internal-ca` the CA samples name
    create_ca_secret(node_kubectl, namespace, partner, name="team-ca")  # issuer.yaml's MtlsIssuer
    create_ca_secret(node_kubectl, SYSTEM, partner, name="platform-ca")  # cluster-issuer.yaml: the release namespace
    node_kubectl.run("label", "namespace", namespace, "mtls.dev/team=payments")
    for sample in sorted(SAMPLES.glob("*.yaml")):
        node_kubectl.run("apply", "-n", namespace, "-f", str(sample))
    wait_ready(node_kubectl, namespace, "billing-client", timeout=60)  # ca-signed: Ready by itself
    wait_ready(node_kubectl, namespace, "apata-outbound", timeout=60)  # the partner's CSR signed by our CA
    # inbound-partner-signed: AwaitingSignature until the partner's openssl signs the CSR we send them.
    wait_certificate(node_kubectl, namespace, "apata-client", awaiting_signature, "AwaitingSignature", timeout=60)
    csr = node_kubectl.plugin("csr", "apata-client", "-n", namespace).stdout
    signed = partner.sign(csr)
    node_kubectl.plugin("import", "apata-client", "-n", namespace, "--cert", str(signed), "--ca", str(partner.ca_crt))
    wait_ready(node_kubectl, namespace, "apata-client", timeout=60)
    # kubernetes-signed: a CertificateSigningRequest the operator created and never approves; a person does.
    request = wait_for(
        lambda: (
            (node_kubectl.get("mtlscertificate", "apiserver-client", namespace) or {})
            .get("status", {})
            .get("certificateSigningRequest")
        ),
        timeout=60,
        what="the CertificateSigningRequest's name",
    )
    node_kubectl.run("certificate", "approve", request)
    obj = wait_ready(node_kubectl, namespace, "apiserver-client", timeout=60)
    assert obj["status"]["phase"] == "Ready"
    wait_ready(node_kubectl, namespace, "team-client", timeout=60)  # issuer.yaml: RSA 3072 under its MtlsIssuer
    # cluster-issuer.yaml: the platform's policy signs api.<namespace>.partners.example.com only; in this namespace
    # (not `payments`) its sample certificate is refused with the rule named, as the README's example shows.
    refused = wait_reason(node_kubectl, namespace, "api-client", "PolicyViolation", timeout=60)
    assert "policy.allowedCommonNames" in condition(refused)["message"]
    for name in ("billing-client", "apata-outbound", "apata-client"):
        assert node_kubectl.get("mtlscertificate", name, namespace)["status"]["phase"] == "Ready"
    [pod] = operator_pods(node_kubectl)
    assert "ERROR" not in pod_logs(node_kubectl, pod["metadata"]["name"])


def test_helm_upgrade_rolls_the_pod_without_a_second_key(
    release: None, node_plane: nodeplane.NodePlane, node_kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    create_ca_secret(node_kubectl, namespace, Partner(tmp_path / "ca"))
    for index in range(3):
        node_kubectl.apply(certificate_manifest(f"c{index}", spec={"signer": {"ca": {"secretName": "internal-ca"}}}),
                           namespace)  # fmt: skip
    for index in range(3):
        wait_ready(node_kubectl, namespace, f"c{index}", timeout=60)
    keys = key_fingerprints(node_kubectl, namespace)
    [before] = operator_pods(node_kubectl)
    install(node_plane, **{"podAnnotations.rolled": "once"})
    [after] = wait_pods_ready(node_kubectl, 1, exclude={before["metadata"]["name"]})
    assert after["metadata"]["annotations"]["rolled"] == "once"
    # The new Pod resynced every certificate: a new one is issued, and the old ones kept their keys.
    node_kubectl.apply(certificate_manifest("after-roll", spec={"signer": {"ca": {"secretName": "internal-ca"}}}),
                       namespace)  # fmt: skip
    wait_ready(node_kubectl, namespace, "after-roll", timeout=60)
    now = key_fingerprints(node_kubectl, namespace)
    assert {name: now[name] for name in keys} == keys, "a key changed across the roll"
    for index in range(3):
        assert node_kubectl.get("mtlscertificate", f"c{index}", namespace)["status"]["revision"] == 1


def test_two_replicas_hand_over_when_the_holder_pod_is_deleted(
    release: None, node_plane: nodeplane.NodePlane, node_kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    install(node_plane, replicaCount="2")
    pods = wait_pods_ready(node_kubectl, 2)
    create_ca_secret(node_kubectl, namespace, Partner(tmp_path / "ca"))
    node_kubectl.apply(
        certificate_manifest("before", spec={"signer": {"ca": {"secretName": "internal-ca"}}}), namespace
    )
    wait_ready(node_kubectl, namespace, "before", timeout=60)
    lease = wait_for(lambda: node_kubectl.get("lease", "mtls-operator", SYSTEM), what="the leader Lease")
    holder = lease["spec"]["holderIdentity"]  # <pod name>_<random>: one identity per process
    holder_pod = holder.rsplit("_", 1)[0]
    assert holder_pod in {p["metadata"]["name"] for p in pods}, holder
    keys = key_fingerprints(node_kubectl, namespace)
    node_kubectl.run("delete", "pod", "-n", SYSTEM, holder_pod, "--wait=false")
    new_holder = wait_for(
        lambda: (
            (h := (node_kubectl.get("lease", "mtls-operator", SYSTEM) or {}).get("spec", {}).get("holderIdentity"))
            and h != holder
            and h
        ),
        timeout=60,
        what="another Pod holding the Lease",
    )
    node_kubectl.apply(certificate_manifest("after", spec={"signer": {"ca": {"secretName": "internal-ca"}}}), namespace)
    wait_ready(node_kubectl, namespace, "after", timeout=60)
    assert key_fingerprints(node_kubectl, namespace)["before-tls"] == keys["before-tls"]
    assert node_kubectl.get("mtlscertificate", "before", namespace)["status"]["revision"] == 1
    assert new_holder.rsplit("_", 1)[0] in {p["metadata"]["name"] for p in operator_pods(node_kubectl)} - {holder_pod}
    install(node_plane, replicaCount="1")
    wait_pods_ready(node_kubectl, 1)


def test_two_shards_split_the_certificates_between_statefulset_pods(
    release: None, node_plane: nodeplane.NodePlane, node_kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    install(node_plane, **{"sharding.shards": "2"})
    pods = wait_pods_ready(node_kubectl, 2)
    assert {p["metadata"]["name"] for p in pods} == {f"{RELEASE}-0", f"{RELEASE}-1"}
    create_ca_secret(node_kubectl, namespace, Partner(tmp_path / "ca"))
    names = [f"s{index}" for index in range(8)]
    for name in names:
        node_kubectl.apply(
            certificate_manifest(name, spec={"signer": {"ca": {"secretName": "internal-ca"}}}), namespace
        )
    for name in names:
        wait_ready(node_kubectl, namespace, name, timeout=90)
    prefix = "mtls_certificate_expiration_timestamp_seconds{"

    def served_by(pod: str) -> set[str]:
        return {
            line.split('name="', 1)[1].split('"', 1)[0]
            for line in pod_metrics(node_kubectl, pod).splitlines()
            if line.startswith(prefix) and f'namespace="{namespace}"' in line
        }

    shares = {pod: served_by(pod) for pod in (f"{RELEASE}-0", f"{RELEASE}-1")}
    assert shares[f"{RELEASE}-0"] | shares[f"{RELEASE}-1"] == set(names)
    assert not shares[f"{RELEASE}-0"] & shares[f"{RELEASE}-1"], shares
    assert all(shares.values()), f"one shard got nothing: {shares}"
    for name in names:
        assert condition(node_kubectl.get("mtlscertificate", name, namespace)).get("status") == "True"
    install(node_plane, **{"sharding.shards": "1"})
    wait_pods_ready(node_kubectl, 1)
