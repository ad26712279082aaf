"""Packaging against a real apiserver: helm lint/template/install/uninstall, values schema, manifests equal to
the chart, and RBAC proven by running the wheel-installed operator, as a non-root user, authenticated as the
chart's ServiceAccount (a TokenRequest token), in a control plane of its own (so no admin operator helps it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import controlplane
from harness.cluster import (
    CA_SIGNER,
    MUTATING_POLICY_API,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    admits,
    certificate_manifest,
    helm,
    own_control_plane,
    service_account_kubeconfig,
    wait_certificates_admitted,
    wait_for,
    wait_ready,
)
from mtls_operator.runtime.settings import shard_index_from

CHART = ROOT / "charts" / "mtls-operator"
NOBODY = 65534


def test_helm_lint_is_clean(cluster: controlplane.ControlPlane) -> None:
    proc = helm(cluster.kubeconfig, "lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("flag", "error"),
    [
        ("watchNamespace={a}", "additional properties 'watchNamespace' not allowed"),
        ("replicaCount=two", "/replicaCount': got string, want integer"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("hsm.modules={libsofthsm2.so}", "/hsm/modules/0"),  # a path in the container, never a search
    ],
)
def test_values_schema_rejects_typos_and_wrong_types(cluster: controlplane.ControlPlane, flag: str, error: str) -> None:
    proc = helm(cluster.kubeconfig, "template", "x", str(CHART), "--set", flag, check=False)
    assert proc.returncode != 0
    assert error in proc.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "watchNamespaces={team-a,team-b}"],
        ["--set", "replicaCount=2"],
        ["--set", "dashboards.enabled=true"],
        ["--set", "signers.kubernetes.enabled=true", "--set", "watchNamespaces={team-a}"],
        ["--set", "sharding.shards=3"],
        ["-f", str(CHART / "ci" / "softhsm-values.yaml")],
    ],
)
def test_helm_template_is_accepted_by_the_apiserver(
    cluster: controlplane.ControlPlane, kubectl: Kubectl, namespace: str, values: list[str]
) -> None:
    kubectl.run("apply", "-f", str(ROOT / "manifests" / "crd"))  # the CRD the rendered chart holds too
    kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
    rendered = helm(cluster.kubeconfig, "template", "dry", str(CHART), "-n", namespace, *values).stdout
    for ns in ("team-a", "team-b"):
        kubectl.run("create", "namespace", ns, check=False)
    proc = kubectl.run("apply", "--dry-run=server", "-f", "-", input=rendered)
    kind = "statefulset" if "sharding.shards=3" in values else "deployment"
    assert f"{kind}.apps/dry-mtls-operator created (server dry run)" in proc.stdout


def test_sharded_chart_runs_one_pod_per_shard(
    cluster: controlplane.ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """sharding.shards=2: the controller manager's StatefulSet controller creates pods -0 and -1, whose hostnames
    give the operator its shard index."""
    # Without the chart's cluster-wide admission policies: applied here they would outlive the test and judge the
    # session's other certificates (2-minute ones against the 1h floor).
    no_policies = [arg for kind in ("issuers", "certificates", "revocations")
                   for arg in ("--set", f"{kind}.admissionPolicy.enabled=false")]  # fmt: skip
    rendered = helm(cluster.kubeconfig, "template", "sh", str(CHART), "-n", namespace, "--set", "sharding.shards=2",
                    "--set", f"watchNamespaces={{{namespace}}}", *no_policies).stdout  # fmt: skip
    kubectl.run("apply", "-f", "-", input=rendered)

    def shard_pods() -> list[dict]:
        items = json.loads(kubectl.run("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
        return sorted(items, key=lambda p: p["metadata"]["name"]) if len(items) == 2 else []

    pods = wait_for(shard_pods, timeout=60, what="two shard pods")
    assert [p["metadata"]["name"] for p in pods] == ["sh-mtls-operator-0", "sh-mtls-operator-1"]
    for index, pod in enumerate(pods):
        args = pod["spec"]["containers"][0]["args"]
        assert "--shard-count=2" in args and not any(a.startswith("--leader-elect") for a in args)
        assert shard_index_from(pod["metadata"]["name"]) == index


def test_kubectl_manifests_equal_helm_template_defaults(cluster: controlplane.ControlPlane, kubectl: Kubectl) -> None:
    def objects(text: str) -> dict[tuple[str, str], dict]:
        docs = [d for d in yaml.safe_load_all(text) if d and d["kind"] not in ("Namespace", "CustomResourceDefinition")]
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    from_kustomize = objects(kubectl.run("kustomize", str(ROOT / "manifests")).stdout)
    from_helm = objects(helm(cluster.kubeconfig, "template", "mtls-operator", str(CHART), "-n", "mtls-system").stdout)
    assert from_kustomize == from_helm
    assert {k for k, _ in from_helm} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    }  # fmt: skip
    # The requester policy, apart (a kind clusters below it do not serve), as helm renders it where they do.
    from_folder = objects(kubectl.run("kustomize", str(ROOT / "manifests" / "admission-requester")).stdout)
    rendered = helm(cluster.kubeconfig, "template", "mtls-operator", str(CHART), "-n", "mtls-system",
                    "--api-versions", MUTATING_POLICY_API).stdout  # fmt: skip
    with_mutating = objects(rendered)
    assert from_folder == {k: v for k, v in with_mutating.items() if k[0].startswith("MutatingAdmissionPolicy")}
    assert {k for k, _ in from_folder} == {"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}
    # The README's install command, for real.
    kubectl.run("apply", "-k", str(ROOT / "manifests"))
    try:
        assert kubectl.get("deployment", "mtls-operator", "mtls-system") is not None
        assert kubectl.get("clusterrole", "mtls-operator", "") is not None
    finally:
        remove_admission_policies(kubectl)


def remove_admission_policies(kubectl: Kubectl) -> None:
    """The install's cluster-wide admission policies would judge every later test's certificates (the 1h floor):
    removed, and waited for until the apiserver stops applying them."""
    for policy in ("cluster-issuer-use", "certificate-floors", "revocation-requester"):
        name = f"mtls-operator-{policy}"
        kubectl.run("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
        kubectl.run("delete", "validatingadmissionpolicy", name, "--ignore-not-found")
    probe = certificate_manifest("floor-probe", spec={"duration": "2m", "renewBefore": "60s"})
    wait_for(lambda: admits(kubectl, probe, "default"), timeout=30, what="the floors policy no longer applied")


def test_helm_install_and_uninstall(cluster: controlplane.ControlPlane, kubectl: Kubectl, namespace: str) -> None:
    # This cluster's CRD was applied with kubectl (as a GitOps tool would): the chart leaves CRDs to it.
    helm(
        cluster.kubeconfig, "install", "inst", str(CHART), "-n", namespace, "--set", f"watchNamespaces={{{namespace}}}",
        "--set", "crds.enabled=false",
    )  # fmt: skip
    crd = kubectl.get("crd", "mtlscertificates.mtls.dev", "")
    assert crd is not None and "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {})
    deployment = kubectl.get("deployment", "inst-mtls-operator", namespace)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["args"] == [
        f"--namespace={namespace}", "--metrics-port=8080", "--secure-metrics-port=8443",
        f"--cluster-issuer-namespace={namespace}", "--cluster-issuer-use-policy=inst-mtls-operator-cluster-issuer-use",
        "--min-duration=1h", "--min-renew-before=1m",
    ]  # fmt: skip
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert kubectl.get("role", "inst-mtls-operator", namespace) is not None
    assert kubectl.get("serviceaccount", "inst-mtls-operator", namespace) is not None
    assert "kubectl mtls csr" in helm(cluster.kubeconfig, "status", "inst", "-n", namespace).stdout
    helm(cluster.kubeconfig, "uninstall", "inst", "-n", namespace, "--wait")
    assert kubectl.get("deployment", "inst-mtls-operator", namespace) is None
    assert kubectl.get("role", "inst-mtls-operator", namespace) is None


# --- RBAC for real: the operator runs as the chart's ServiceAccount ------------------------------------------


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[controlplane.ControlPlane, Kubectl]]:
    # No CRD yet: `helm install` creates it, as on a user's fresh cluster.
    with own_control_plane(tmp_path_factory.mktemp("isolated-cluster"), crd=False) as (plane, kube):
        yield plane, kube


@pytest.fixture(scope="module")
def world_readable_dir() -> Iterator[Path]:
    """pytest's tmp dirs are 0700; the non-root operator needs a directory it can read."""
    path = Path(tempfile.mkdtemp(prefix="mtls-nonroot-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel_venv(world_readable_dir: Path) -> Path:
    """What the image runs: the built wheel installed into a fresh venv (no source tree, no editable install)."""
    dist = world_readable_dir / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], check=True)
    venv = world_readable_dir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(dist.glob("mtls_operator-*.whl"))
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    return venv


def as_nobody(*cmd: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]


def test_wheel_runs_as_non_root(wheel_venv: Path) -> None:
    proc = subprocess.run(
        as_nobody(str(wheel_venv / "bin" / "mtls-operator"), "--help"), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "run the operator" in proc.stdout
    run_help = subprocess.run(
        as_nobody(str(wheel_venv / "bin" / "mtls-operator"), "run", "--help"), capture_output=True, text=True
    )
    assert "--all-namespaces" in run_help.stdout


def test_operator_as_service_account_issues_and_is_confined(
    isolated: tuple[controlplane.ControlPlane, Kubectl], wheel_venv: Path, world_readable_dir: Path, tmp_path: Path
) -> None:
    plane, kube = isolated
    for ns in ("mtls-system", "a", "b"):
        kube.run("create", "namespace", ns)
    helm(plane.kubeconfig, "install", "mtls-operator", str(CHART), "-n", "mtls-system", "--set", "watchNamespaces={a}")
    kube.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
    wait_certificates_admitted(kube, "a")
    sa_config = service_account_kubeconfig(plane, kube, "mtls-operator", "mtls-system", world_readable_dir)
    subject = "system:serviceaccount:mtls-system:mtls-operator"

    # Confined: no Secrets outside the watched namespace, by the authorizer and by a real request.
    assert kube.run("auth", "can-i", "get", "secrets", "-n", "b", f"--as={subject}", check=False).stdout.strip() == "no"
    assert kube.run("auth", "can-i", "get", "secrets", "-n", "a", f"--as={subject}").stdout.strip() == "yes"
    kube.run("create", "secret", "generic", "elsewhere", "-n", "b", "--from-literal=k=v")
    as_sa = Kubectl(sa_config)
    denied = as_sa.run("get", "secret", "elsewhere", "-n", "b", check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr

    # The wheel-installed operator, as a non-root user, authenticated only by the ServiceAccount token.
    log_dir = world_readable_dir / "logs"
    log_dir.mkdir()
    log_dir.chmod(0o777)
    operator = OperatorProcess(
        sa_config, log_dir, args=["--namespace", "a", "--cluster-issuer-namespace", "mtls-system"]
    )
    operator.command = as_nobody(str(wheel_venv / "bin" / "mtls-operator"))
    operator.start()
    try:
        partner = Partner(tmp_path / "partner")
        kube.run(
            "create", "secret", "tls", "internal-ca", "-n", "a", f"--cert={partner.ca_crt}", f"--key={partner.ca_key}"
        )
        kube.apply(certificate_manifest("auto", spec=CA_SIGNER), "a")
        kube.apply(certificate_manifest("hand"), "a")
        wait_ready(kube, "a", "auto", timeout=60)  # CA-signed issuance as the ServiceAccount
        csr = wait_for(
            lambda: (kube.get("mtlscertificate", "hand", "a") or {}).get("status", {}).get("csr"), timeout=60
        )
        signed = partner.sign(csr)
        kube.plugin("import", "hand", "-n", "a", "--cert", str(signed), "--ca", str(partner.ca_crt))
        wait_ready(kube, "a", "hand", timeout=60)  # manual import as the ServiceAccount
        assert any(e["reason"] == "Issued" for e in kube.events("a", "hand"))
        # Not watching b: an MtlsCertificate there is left alone.
        kube.apply(certificate_manifest("ignored"), "b")
        time.sleep(3)
        assert "Forbidden" not in operator.logs()
        assert (kube.get("mtlscertificate", "ignored", "b") or {}).get("status") is None
        assert os.stat(f"/proc/{operator.proc.pid}").st_uid == NOBODY
    finally:
        operator.stop()


def test_dashboard_configmap_carries_the_dashboard_file_for_the_sidecar(cluster: controlplane.ControlPlane) -> None:
    rendered = helm(
        cluster.kubeconfig, "template", "x", str(CHART), "--set", "dashboards.enabled=true",
        "--set", "dashboards.labelValue=yes", "--set", "dashboards.annotations.grafana_folder=mTLS",
    ).stdout  # fmt: skip
    configmaps = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"]
    assert len(configmaps) == 1
    meta = configmaps[0]["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "yes" and meta["annotations"] == {"grafana_folder": "mTLS"}
    shipped = json.loads((ROOT / "manifests" / "grafana" / "mtls-certificates.json").read_text())
    assert json.loads(configmaps[0]["data"]["mtls-certificates.json"]) == shipped
    default = helm(cluster.kubeconfig, "template", "x", str(CHART)).stdout
    assert "kind: ConfigMap" not in default


def test_the_hsm_example_mounts_the_library_and_allows_only_it(cluster: controlplane.ControlPlane) -> None:
    rendered = helm(cluster.kubeconfig, "template", "x", str(CHART), "-f", str(CHART / "ci" / "softhsm-values.yaml"))
    [deployment] = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert [a for a in container["args"] if a.startswith("--pkcs11")] == [
        "--pkcs11-module=/usr/lib/softhsm/libsofthsm2.so",
        "--pkcs11-probe-seconds=30",
        "--pkcs11-namespaced-token=team-a-ca=team-a",  # hsm.namespacedTokens: one flag per token and namespace
    ]
    assert {"name": "SOFTHSM2_CONF", "value": "/etc/softhsm/softhsm2.conf"} in container["env"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"softhsm-tokens": "/var/lib/softhsm-tokens", "softhsm-conf": "/etc/softhsm"}
    assert set(mounts) == {v["name"] for v in pod["volumes"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # the tokens get a volume of their own
    default = helm(cluster.kubeconfig, "template", "x", str(CHART), "--show-only", "templates/deployment.yaml").stdout
    assert "--pkcs11" not in default and "volumes:" not in default and "env:" not in default


def test_kubernetes_signer_rbac_only_when_enabled_and_never_approve(cluster: controlplane.ControlPlane) -> None:
    def rules(*values: str) -> list[dict]:
        rendered = helm(cluster.kubeconfig, "template", "x", str(CHART), *values).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("ClusterRole", "Role")]
        return [rule for d in docs for rule in d["rules"]]

    def csr_rules(found: list[dict]) -> list[dict]:
        return [r for r in found if "certificatesigningrequests" in r.get("resources", [])]  # not nonResourceURLs

    assert csr_rules(rules()) == []
    enabled = rules("--set", "signers.kubernetes.enabled=true", "--set", "watchNamespaces={a}")
    assert [sorted(r["verbs"]) for r in csr_rules(enabled)] == [["create", "get", "list", "watch"]]
    assert not [r for r in enabled if "approve" in r["verbs"] or "signers" in r.get("resources", [])]
    deployment = helm(
        cluster.kubeconfig, "template", "x", str(CHART), "--set", "signers.kubernetes.enabled=true"
    ).stdout
    assert "--kubernetes-signer" in deployment


def test_replicas_compete_for_a_lease_with_least_privilege(cluster: controlplane.ControlPlane) -> None:
    rendered = helm(cluster.kubeconfig, "template", "x", str(CHART), "-n", "ops", "--set", "replicaCount=2").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--leader-elect", "--leader-election-namespace=ops", "--leader-election-id=mtls-operator"} <= set(args)
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("leader-election"))
    assert role["metadata"]["namespace"] == "ops"
    named = next(r for r in role["rules"] if r.get("resourceNames"))
    assert named["resourceNames"] == ["mtls-operator"] and sorted(named["verbs"]) == ["get", "update"]
    assert "kopf.dev" not in rendered  # kopf peering is gone: it paused kopf, not our work queue


def test_prometheus_rule_points_every_alert_at_its_runbook_page(cluster: controlplane.ControlPlane) -> None:
    """The rules are the shipped file's, except each runbook_url, which follows prometheusRule.runbookURLTemplate:
    the default is the manual's page of that alert, and a team hosting the manual elsewhere points it there."""
    shipped = yaml.safe_load((ROOT / "manifests" / "prometheus" / "alerts.yaml").read_text())

    def rules(*values: str) -> list[dict]:
        rendered = helm(cluster.kubeconfig, "template", "x", str(CHART), "--set", "prometheusRule.enabled=true",
                        *values, "--show-only", "templates/prometheusrule.yaml").stdout  # fmt: skip
        groups = yaml.safe_load(rendered)["spec"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    default = rules()
    expected = [rule for group in shipped["groups"] for rule in group["rules"]]
    assert default == expected, "by default the PrometheusRule is the shipped file, runbook URLs included"
    moved = rules("--set", "prometheusRule.runbookURLTemplate=https://docs.example.com/rb/{alert}/")
    for rule, original in zip(moved, expected, strict=True):
        assert rule["annotations"]["runbook_url"] == f"https://docs.example.com/rb/{rule['alert'].lower()}/"
        assert {k: v for k, v in rule["annotations"].items() if k != "runbook_url"} == {
            k: v for k, v in original["annotations"].items() if k != "runbook_url"
        }
        assert rule["expr"] == original["expr"]
        page = ROOT / "docs" / "operations" / "runbooks" / f"{rule['alert'].lower()}.md"
        assert page.exists(), page
