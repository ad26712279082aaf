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
    # The operator's own ServiceAccount reads /metrics in these tests (pod_metrics); Prometheus' would in production.
    "metrics.readers[0].kind": "ServiceAccount",
    "metrics.readers[0].name": "mtls-operator",
    "metrics.readers[0].namespace": SYSTEM,
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


def metrics_status(kubectl: Kubectl, pod: str, token: str | None) -> int:
    """The HTTP status of GET /metrics inside the Pod with `token` ("own": the Pod's ServiceAccount; None: none)."""
    argv = [] if token is None else [token]
    return int(kubectl.run("exec", "-n", SYSTEM, pod, "--", "python3", "-c", METRICS_STATUS_SCRIPT, *argv).stdout)


def pod_logs(kubectl: Kubectl, pod: str, namespace: str = SYSTEM) -> str:
    return kubectl.run("logs", "-n", namespace, pod, "--tail=-1").stdout


# /metrics is HTTPS behind a TokenReview and a SubjectAccessReview (the chart's default): read inside the Pod with
# the Pod's own ServiceAccount token, which BASE_VALUES binds to the metrics-reader ClusterRole, as Prometheus' is.
METRICS_SCRIPT = """
import ssl, urllib.request
token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read().strip()
request = urllib.request.Request('https://127.0.0.1:8443/metrics', headers={'Authorization': 'Bearer ' + token})
print(urllib.request.urlopen(request, context=ssl._create_unverified_context()).read().decode())
"""


def pod_metrics(kubectl: Kubectl, pod: str) -> str:
    """/metrics read inside the Pod (its IP exists only in the node's network namespace)."""
    return kubectl.run("exec", "-n", SYSTEM, pod, "--", "python3", "-c", METRICS_SCRIPT).stdout


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


METRICS_STATUS_SCRIPT = """
import ssl, sys, urllib.error, urllib.request
headers = {}
if len(sys.argv) > 1:
    token = sys.argv[1]
    if token == 'own':
        token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read().strip()
    headers['Authorization'] = 'Bearer ' + token
request = urllib.request.Request('https://127.0.0.1:8443/metrics', headers=headers)
try:
    print(urllib.request.urlopen(request, context=ssl._create_unverified_context()).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""
