"""Least privilege, proven from the apiserver's own records, and the Pod admitted at the `restricted` level.

A control plane with audit logging; the chart installed with every feature on (kubernetes signer, two replicas with
leader election, one watched namespace); the operator run with nothing but the chart's ServiceAccount token while it
exercises every signer, renewal, publishCA and a Lease. Every (API group, resource, verb) the ServiceAccount used,
read from audit.log, is compared with what the chart's Roles and ClusterRoles grant: a grant never used fails the
test, and so does a request that was not granted.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import controlplane
from harness.cluster import (
    CA_SIGNER,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_and_get_csr,
    helm,
    own_control_plane,
    put_signed,
    service_account_kubeconfig,
    wait_certificate,
    wait_certificates_admitted,
    wait_for,
    wait_ready,
)
from mtls_operator.api.names import ROLLOUT_ANNOTATION, SERIALS_ANNOTATION

CHART = ROOT / "charts" / "mtls-operator"
VALUES = ["--set", "watchNamespaces={a}", "--set", "signers.kubernetes.enabled=true", "--set", "replicaCount=2",
          "--set", "workloadRollout.enabled=true",
          "--set", "signers.kubernetes.allowedSignerNames={kubernetes.io/kube-apiserver-client}"]  # fmt: skip
SUBJECT = "system:serviceaccount:mtls-system:mtls-operator"
Permission = tuple[str, str, str]  # (API group, resource[/subresource], verb)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[controlplane.ControlPlane, Kubectl]]:
    with own_control_plane(tmp_path_factory.mktemp("audited"), crd=False, audit=True) as (plane, kube):
        yield plane, kube


def granted(rendered: str) -> set[Permission]:
    """What the chart's Roles and ClusterRoles bound to the operator's ServiceAccount grant (the chart's other
    roles, such as the revoker role a platform team binds to people, are not the operator's)."""
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    bound = {
        (doc["roleRef"]["kind"], doc["roleRef"]["name"])
        for doc in docs
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s.get("kind") == "ServiceAccount" and s.get("name") == "mtls-operator" for s in doc["subjects"])
    }
    found = set()
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole") and (doc["kind"], doc["metadata"]["name"]) in bound:
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    found |= {(group, res, verb) for res in rule["resources"] for verb in rule["verbs"]}
    return found


def used(audit_log: Path) -> tuple[set[Permission], list[str]]:
    permissions, denied = set(), []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if event["user"]["username"] != SUBJECT or ref is None:
            continue  # non-resource URLs (/readyz, discovery) are everyone's by default
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, event["verb"])
        if (event.get("responseStatus") or {}).get("code") == 403:
            denied.append(f"{permission}: {event['requestURI']}")
        else:
            permissions.add(permission)
    return permissions, denied


def test_the_chart_grants_exactly_what_the_operator_uses(
    audited: tuple[controlplane.ControlPlane, Kubectl], tmp_path: Path
) -> None:
    plane, kube = audited
    for ns in ("mtls-system", "a"):
        kube.run("create", "namespace", ns)
    # The Pod Security admission plugin judges the chart's Pods at the strictest level.
    kube.run("label", "namespace", "mtls-system", "pod-security.kubernetes.io/enforce=restricted")
    rendered = helm(plane.kubeconfig, "template", "mtls-operator", str(CHART), "-n", "mtls-system", *VALUES).stdout
    helm(plane.kubeconfig, "install", "mtls-operator", str(CHART), "-n", "mtls-system", *VALUES)
    for crd in ("mtlscertificates", "mtlsissuers", "clustermtlsissuers", "mtlsrevocations"):
        kube.run("wait", "--for", "condition=established", "--timeout=60s", f"crd/{crd}.mtls.dev")
    wait_certificates_admitted(kube, "a")
    pods = wait_for(
        lambda: json.loads(kube.run("get", "pods", "-n", "mtls-system", "-o", "json").stdout)["items"],
        timeout=60, what="the ReplicaSet controller creates the Pods (admitted as restricted)",
    )  # fmt: skip
    assert len(pods) == 2
    rejected = [e for e in kube.events("mtls-system") if e["reason"] == "FailedCreate"]
    assert not rejected, rejected

    sa_dir = tmp_path / "sa"
    sa_dir.mkdir()
    sa_config = service_account_kubeconfig(plane, kube, "mtls-operator", "mtls-system", sa_dir)
    (tmp_path / "logs").mkdir()
    args = ["--namespace", "a", "--kubernetes-signer", "--leader-elect", "--leader-election-namespace", "mtls-system",
            "--roll-workloads", "--cluster-issuer-namespace", "mtls-system",
            "--cluster-issuer-use-policy", "mtls-operator-cluster-issuer-use",
            "--kubernetes-signer-name", "kubernetes.io/kube-apiserver-client"]  # fmt: skip
    operator = OperatorProcess(sa_config, tmp_path / "logs", args, secure_metrics=True)
    operator.start()
    try:
        exercise_everything(kube, tmp_path)
        exercise_metrics(kube, operator)
    finally:
        operator.stop()
    permissions, denied = used(plane.directory / "audit.log")
    assert not denied, f"the operator was refused: {denied}"
    grants = granted(rendered)
    assert permissions - grants == set(), "used without a grant"
    assert grants - permissions == set(), "granted but never used: remove it from the chart"


def opted_in_workload(kind: str, certificate: str) -> dict:
    """A workload that asks to be rolled when `certificate` rotates (no kubelet here: its Pods stay Pending)."""
    pod = {"containers": [{"name": "c", "image": "registry.invalid/client:1"}]}
    spec: dict = {"selector": {"matchLabels": {"app": "w"}},
                  "template": {"metadata": {"labels": {"app": "w"}}, "spec": pod}}  # fmt: skip
    if kind == "StatefulSet":
        spec["serviceName"] = "workload"
    metadata = {"name": "workload", "annotations": {ROLLOUT_ANNOTATION: certificate}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def exercise_issuers(kube: Kubectl, partner: Partner) -> None:
    """An MtlsIssuer in the watched namespace and a ClusterMtlsIssuer whose CA Secret lives in mtls-system (created
    after it: a Warning Event there first). Their status patches, the CA read there, namespaces and both kinds
    watched."""
    for kind, name, namespace in (("ClusterMtlsIssuer", "platform", ""), ("MtlsIssuer", "team", "a")):
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        spec: dict = {"ca": {"secretName": "issuer-ca"}}
        if kind == "MtlsIssuer":  # the revocations the operator makes by itself (and its finalizer)
            spec["revocation"] = {"revokeSuperseded": True, "revokeOnDelete": True}
        body = {"apiVersion": "mtls.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}
        kube.run("apply", "-f", "-", input=yaml.safe_dump(body))
    for namespace in ("mtls-system", "a"):
        kube.run("create", "secret", "tls", "issuer-ca", "-n", namespace, f"--cert={partner.ca_crt}",
                 f"--key={partner.ca_key}")  # fmt: skip
    for kind, name in (("ClusterMtlsIssuer", "platform"), ("MtlsIssuer", "team")):
        spec = {"signer": {"issuerRef": {"kind": kind, "name": name}}}
        kube.apply(certificate_manifest(f"via-{name}", spec=spec), "a")
        wait_ready(kube, "a", f"via-{name}", timeout=60)
    # Revocations: the certificate read by name, the revocation annotated and its status patched, each issuer's CRL
    # ConfigMap written (the cluster issuer's in mtls-system).
    kube.plugin("revoke", "via-platform", "-n", "a", "--reason", "superseded")
    wait_for(lambda: condition(kube.get("mtlsrevocation", "via-platform", "a"), "Published").get("status") == "True",
             timeout=60, what="revocation of via-platform published")  # fmt: skip
    # The team issuer revokes what a renewal superseded and what a deletion ends (its finalizer held until then).
    old = kube.get("mtlscertificate", "via-team", "a")["status"]["issuedBy"]["serialNumber"]  # type: ignore[index]
    wait_for(lambda: "mtls.dev/revoke-on-delete" in (kube.get("mtlscertificate", "via-team", "a") or {})
             .get("metadata", {}).get("finalizers", []), timeout=30, what="the revokeOnDelete finalizer")  # fmt: skip
    kube.plugin("renew", "via-team", "-n", "a")
    wait_for(lambda: kube.get("mtlsrevocation", f"superseded-{old.lower()}", "a"), timeout=60,
             what="the superseded certificate revoked")  # fmt: skip
    current = kube.get("mtlscertificate", "via-team", "a")["status"]["issuedBy"]["serialNumber"]  # type: ignore[index]
    kube.run("delete", "mtlscertificate", "via-team", "-n", "a", "--wait=false")
    wait_for(lambda: kube.get("mtlsrevocation", f"deleted-{current.lower()}", "a"), timeout=60,
             what="the deleted certificate revoked")  # fmt: skip
    wait_for(lambda: kube.get("mtlscertificate", "via-team", "a") is None, timeout=60, what="deletion finished")


def exercise_metrics(kube: Kubectl, operator: OperatorProcess) -> None:
    """/metrics as the chart serves it: each scrape's token reviewed (a TokenReview and a SubjectAccessReview)."""
    kube.run("create", "serviceaccount", "prometheus", "-n", "mtls-system")
    kube.run("create", "clusterrolebinding", "prometheus-metrics", "--clusterrole=mtls-operator-metrics-reader",
             "--serviceaccount=mtls-system:prometheus")  # fmt: skip
    token = kube.run("create", "token", "prometheus", "-n", "mtls-system").stdout.strip()
    request = urllib.request.Request(f"https://127.0.0.1:{operator.secure_metrics_port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=10) as resp:
        assert resp.status == 200 and b"mtls_operator_build_info" in resp.read()


def exercise_everything(kube: Kubectl, tmp_path: Path) -> None:
    """Every code path that talks to the API: each signer, renewal with a next key, publishCA, Events, the Lease,
    the workload rollout."""
    partner = Partner(tmp_path / "partner")
    kube.run("create", "secret", "tls", "internal-ca", "-n", "a", f"--cert={partner.ca_crt}", f"--key={partner.ca_key}")
    kube.apply(certificate_manifest("auto", spec={**CA_SIGNER, "publishCA": {"configMapName": "trust"}}), "a")
    wait_ready(kube, "a", "auto", timeout=60)
    wait_for(lambda: kube.get("configmap", "trust", "a"), what="publishCA ConfigMap created")
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):  # opted in: the renewal below rolls each of them
        kube.apply(yaml.safe_dump(opted_in_workload(kind, "auto")), "a")
    rotated = Partner(tmp_path / "rotated", name="Rotated CA")
    kube.run("apply", "-n", "a", "-f", "-", input=kube.run(
        "create", "secret", "tls", "internal-ca", "-n", "a", f"--cert={rotated.ca_crt}", f"--key={rotated.ca_key}",
        "--dry-run=client", "-o", "yaml").stdout)  # fmt: skip
    rotated_pem = rotated.ca_crt.read_text()
    wait_for(lambda: rotated_pem in (kube.get("configmap", "trust", "a") or {}).get("data", {}).get("ca.crt", ""),
             what="ConfigMap patched")  # fmt: skip
    kube.plugin("renew", "auto", "-n", "a")  # a new serial in service: the opted-in workloads roll
    for kind in ("deployment", "statefulset", "daemonset"):
        wait_for(lambda kind=kind: ((kube.get(kind, "workload", "a") or {})["spec"]["template"]["metadata"]
                                    .get("annotations") or {}).get(SERIALS_ANNOTATION),
                 timeout=30, what=f"the {kind} rolled for the renewed certificate")  # fmt: skip

    exercise_issuers(kube, partner)

    csr = create_and_get_csr(kube, "a", "hand")  # manual: key stored, CSR published, Events
    put_signed(kube, "a", "hand-signed", {"tls.crt": partner.sign(csr)})
    wait_ready(kube, "a", "hand", timeout=60)
    kube.plugin("renew", "hand", "-n", "a")  # next key in <secretName>-next, deleted when the new one is in
    new_csr = wait_certificate(kube, "a", "hand", lambda o: (o.get("status") or {}).get("csr"), "new CSR")["status"][
        "csr"
    ]
    put_signed(kube, "a", "hand-signed", {"tls.crt": partner.sign(new_csr, out="renewed.crt")})
    wait_certificate(kube, "a", "hand", lambda o: o["status"].get("revision") == 2, "renewed", 60)

    ca_from = "      caFrom:\n        configMapKeyRef:\n          name: kube-root-ca.crt\n"
    spec = f"  signer:\n    kubernetes:\n      signerName: kubernetes.io/kube-apiserver-client\n{ca_from}"
    kube.apply(certificate_manifest("cluster", common_name="bot", extra_spec=spec), "a")
    name = wait_certificate(kube, "a", "cluster", lambda o: (o.get("status") or {}).get("certificateSigningRequest"),
                            "CSR", 60)["status"]["certificateSigningRequest"]  # fmt: skip
    kube.run("certificate", "approve", name)
    wait_ready(kube, "a", "cluster", timeout=60)
    assert base64.b64decode(kube.get("secret", "cluster-tls", "a")["data"]["ca.crt"])
