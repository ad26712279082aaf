"""The operator's chart on a node plane: install with the image built by the session, find its Pods, read them."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import nodeplane

from harness.cluster import ROOT, Kubectl, helm, wait_for
from harness.images import OPERATOR_IMAGE, OPERATOR_TAG
from mtls_operator.api.names import TLS_KEY

CHART = ROOT / "charts" / "mtls-operator"
RELEASE = "mtls-operator"
SYSTEM = "mtls-system"
POD_SELECTOR = f"app.kubernetes.io/name=mtls-operator,app.kubernetes.io/instance={RELEASE}"
BASE_VALUES = {
    "image.repository": OPERATOR_IMAGE,
    "image.tag": OPERATOR_TAG,
    "image.pullPolicy": "Never",  # loaded into the node's containerd; there is no registry
    "signers.kubernetes.enabled": "true",
    "signers.kubernetes.allowedSignerNames": "{kubernetes.io/kube-apiserver-client}",  # the kubernetes-signed sample
    "workloadRollout.enabled": "true",
    "certificates.minDuration": "1m",  # the rotation tests' certificates live 90 seconds
    "certificates.minRenewBefore": "30s",
}


def install(plane: nodeplane.NodePlane, **values: str) -> None:
    """`helm upgrade --install` with the base values plus `values` (every other value back to its default)."""
    settings = {**BASE_VALUES, **values}
    args = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    helm(plane.kubeconfig, "upgrade", "--install", RELEASE, str(CHART), "-n", SYSTEM, *args)


def operator_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    items = json.loads(kubectl.run("get", "pods", "-n", SYSTEM, "-l", POD_SELECTOR, "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def wait_pods_ready(
    kubectl: Kubectl, count: int, exclude: frozenset[str] | set[str] = frozenset(), timeout: float = 120
) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        pods = [p for p in operator_pods(kubectl) if p["metadata"]["name"] not in exclude]
        return pods if len(pods) == count and all(ready(p) for p in pods) else None

    return wait_for(check, timeout=timeout, interval=0.5, what=f"{count} operator Pod(s) Ready")


def pod_logs(kubectl: Kubectl, pod: str, namespace: str = SYSTEM) -> str:
    return kubectl.run("logs", "-n", namespace, pod, "--tail=-1").stdout


def pod_metrics(kubectl: Kubectl, pod: str) -> str:
    """/metrics read inside the Pod (its IP exists only in the node's network namespace)."""
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/metrics').read().decode())"
    return kubectl.run("exec", "-n", SYSTEM, pod, "--", "python3", "-c", script).stdout


def key_fingerprints(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """Every private key the operator holds in `namespace`: Secret name -> SHA-256 of tls.key."""
    items = json.loads(kubectl.run("get", "secrets", "-n", namespace, "-o", "json").stdout)["items"]
    return {
        s["metadata"]["name"]: hashlib.sha256(s["data"][TLS_KEY].encode()).hexdigest()
        for s in items
        if TLS_KEY in (s.get("data") or {})
    }


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()
