"""Clients that keep talking through a rotation: real Pods mount the live Secret and make an mTLS request every second
(the partner guide's Node client) to a server Pod that trusts only the issuing CA and logs each client serial.

Measured per rotation: requests made and failed, how long after the new certificate was written the server first
saw its serial, and how much validity the old certificate had left when the server last saw it. Figures are printed
(README, "Clients and rotation"); the test asserts outcomes only: no failed request, the new serial reached the
server, the old certificate was never used past its notAfter.

Then the client that reads its files once at start: it fails once its first certificate expires, unless its
Deployment carries the operator's rollout annotation.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    Partner,
    certificate_manifest,
    create_ca_secret,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
)
from harness.images import CLIENTS_IMAGE
from mtls_operator.api.names import ROLLOUT_ANNOTATION, SERIALS_ANNOTATION
from mtls_operator.pki.certificates import openssl_serial

SCRIPTS = Path(__file__).parent / "clients"
SERVER_NAME = "server.mtls-test.internal"  # no cluster DNS: the client Pods map it to the Service IP (hostAliases)
# Short lives so a rotation and an expiry fit in a test: renewal starts ~30 s after issuance, the old one expires
# at 90 s (the CA signer backdates notBefore by a minute).
SHORT = {"duration": "90s", "renewBefore": "60s"}


def now() -> float:
    return time.time()


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def not_after_of(pem: bytes) -> float:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@dataclass
class Logs:
    """Every Pod's log of one app label, kept after the Pod is gone (a rolled client's first Pod is deleted)."""

    kubectl: Kubectl
    namespace: str
    app: str
    seen: dict[str, str] = field(default_factory=dict)

    def poll(self) -> None:
        pods = json.loads(self.kubectl.run("get", "pods", "-n", self.namespace, "-l", f"app={self.app}",
                                           "-o", "json").stdout)["items"]  # fmt: skip
        for pod in pods:
            name = pod["metadata"]["name"]
            proc = self.kubectl.run("logs", "-n", self.namespace, name, check=False)
            if proc.returncode == 0 and len(proc.stdout) >= len(self.seen.get(name, "")):
                self.seen[name] = proc.stdout

    def entries(self) -> list[dict[str, Any]]:
        return sorted((e for text in self.seen.values() for e in json_lines(text)), key=lambda e: e.get("t", 0))


def deploy_server(kubectl: Kubectl, namespace: str, issuer: Partner) -> str:
    """The server Pod and Service; its certificate from `issuer`, which is also the only CA it trusts."""
    (issuer.dir / "server.ext").write_text(f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth\n")
    csr = issuer.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                         "-subj", f"/CN={SERVER_NAME}")  # fmt: skip
    server_crt = issuer.sign(csr, days=30, out="server.crt", extra=["-extfile", "server.ext"])
    kubectl.run("create", "secret", "tls", "server-tls", "-n", namespace, f"--cert={server_crt}",
                f"--key={issuer.dir / 'server.key'}")  # fmt: skip
    kubectl.run("create", "configmap", "server-ca", "-n", namespace, f"--from-file=ca.crt={issuer.ca_crt}")
    kubectl.run("create", "configmap", "scripts", "-n", namespace, f"--from-file={SCRIPTS}")
    kubectl.apply(yaml.safe_dump_all([pod_workload("server", "server.js", [("tls", "secret", "server-tls"),
                                                                         ("ca", "configMap", "server-ca")]),
                                      {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server"},
                                       "spec": {"selector": {"app": "server"},
                                                "ports": [{"port": 8443, "targetPort": 8443}]}}]),
                  namespace)  # fmt: skip
    wait_for(lambda: pods_ready(kubectl, namespace, "server"), timeout=90, what="the server Pod Ready")
    return str(kubectl.get("service", "server", namespace)["spec"]["clusterIP"])


def pod_workload(
    app: str,
    script: str,
    volumes: list[tuple[str, str, str]],
    *,
    env: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    server_ip: str | None = None,
) -> dict[str, Any]:
    mounts = [{"name": "scripts", "mountPath": "/scripts"}] + [{"name": n, "mountPath": f"/{n}"} for n, _, _ in volumes]
    specs = [{"name": "scripts", "configMap": {"name": "scripts"}}] + [
        {"name": n, "secret": {"secretName": ref}} if kind == "secret" else {"name": n, "configMap": {"name": ref}}
        for n, kind, ref in volumes
    ]
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": app, "image": CLIENTS_IMAGE, "imagePullPolicy": "Never",
            "command": ["node", f"/scripts/{script}"],
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            "volumeMounts": mounts,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": specs,
    }  # fmt: skip
    if server_ip:
        pod["hostAliases"] = [{"ip": server_ip, "hostnames": [SERVER_NAME]}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "annotations": annotations or {}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": pod},
        },
    }


def deploy_client(
    kubectl: Kubectl, namespace: str, app: str, secret: str, server_ip: str, *, read: str = "each",
    annotations: dict[str, str] | None = None,
) -> None:  # fmt: skip
    workload = pod_workload(
        app, "client.js", [("tls", "secret", secret)], server_ip=server_ip, annotations=annotations,
        env={"CLIENT_NAME": app, "READ_FILES": read, "SERVER_HOST": SERVER_NAME},
    )  # fmt: skip
    kubectl.apply(yaml.safe_dump(workload), namespace)


def pods_ready(kubectl: Kubectl, namespace: str, app: str) -> list[str]:
    pods = json.loads(kubectl.run("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout)["items"]
    return [
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


@dataclass
class Rotation:
    old_serial: int
    old_not_after: float
    new_serial: int
    written_at: float  # when this test first saw the new certificate in the Secret


def in_service(kubectl: Kubectl, namespace: str, secret: str) -> bytes:
    return kubectl.secret_data(secret, namespace)["tls.crt"]


def watch_rotation(
    kubectl: Kubectl, namespace: str, secret: str, first: bytes, logs: list[Logs], timeout: float = 120
) -> Rotation:
    """Waits for `secret` to hold another certificate than `first` (read before anything could rotate it)."""
    old_serial, old_not_after = serial_of(first), not_after_of(first)
    deadline = now() + timeout
    while now() < deadline:
        current = kubectl.secret_data(secret, namespace)["tls.crt"]
        if serial_of(current) != old_serial:
            return Rotation(old_serial, old_not_after, serial_of(current), now())
        for log in logs:
            log.poll()
        time.sleep(0.5)
    raise AssertionError(f"{secret} was not rotated within {timeout}s")


def follow_until(deadline: float, logs: list[Logs]) -> None:
    while now() < deadline:
        for log in logs:
            log.poll()
        time.sleep(3)
    for log in logs:
        log.poll()


def figures(rotation: Rotation, client: Logs, server: Logs, app: str) -> dict[str, Any]:
    requests = [e for e in client.entries() if "ok" in e]
    first_ok = next(i for i, e in enumerate(requests) if e["ok"])
    counted = requests[first_ok:]
    served = [e for e in server.entries() if e.get("client") == app and "serial" in e]
    new_seen = [e["t"] for e in served if int(e["serial"], 16) == rotation.new_serial]
    old_seen = [e["t"] for e in served if int(e["serial"], 16) == rotation.old_serial]
    return {
        "requests": len(counted),
        "failed": sum(1 for e in counted if not e["ok"]),
        "errors": sorted({e.get("error", "") for e in counted if not e["ok"]}),
        "new_serial_seen_after_s": round(min(new_seen) - rotation.written_at, 1) if new_seen else None,
        "old_validity_left_at_last_use_s": round(rotation.old_not_after - max(old_seen), 1) if old_seen else None,
    }


def report(name: str, result: dict[str, Any], tmp_path: Path) -> None:
    print(f"\n{name}: {json.dumps(result)}")
    (tmp_path / f"{name}.json").write_text(json.dumps(result, indent=2))


def first_success(log: Logs, what: str) -> None:
    wait_for(lambda: (log.poll(), any(e.get("ok") for e in log.entries()))[1], timeout=60,
             what=f"{what}'s first successful request")  # fmt: skip


def start_client(kubectl: Kubectl, namespace: str, secret: str, server_ip: str) -> tuple[Logs, Logs]:
    """A re-reading client on `secret`, talking: (its logs, the server's logs)."""
    deploy_client(kubectl, namespace, "client", secret, server_ip)
    client, server = Logs(kubectl, namespace, "client"), Logs(kubectl, namespace, "server")
    first_success(client, "the client")
    return client, server


def assert_kept_talking(name: str, rotation: Rotation, client: Logs, server: Logs, tmp_path: Path) -> None:
    """Follows past the old certificate's expiry; no request failed, the new serial arrived in time."""
    follow_until(rotation.old_not_after + 15, [client, server])
    result = figures(rotation, client, server, "client")
    report(name, result, tmp_path)
    assert result["failed"] == 0, result
    assert result["new_serial_seen_after_s"] is not None, "the server never saw the new certificate"
    assert result["old_validity_left_at_last_use_s"] is not None and result["old_validity_left_at_last_use_s"] > 0


@pytest.fixture
def issuing_ca(node_kubectl: Kubectl, namespace: str, tmp_path: Path) -> Partner:
    ca = Partner(tmp_path / "internal-ca", name="Internal CA")
    create_ca_secret(node_kubectl, namespace, ca)
    return ca


def test_a_client_rereading_its_files_keeps_talking_through_a_ca_signed_rotation(
    release: None, node_kubectl: Kubectl, namespace: str, issuing_ca: Partner,
    tmp_path: Path,
) -> None:  # fmt: skip
    server_ip = deploy_server(node_kubectl, namespace, issuing_ca)
    node_kubectl.apply(certificate_manifest("rotating", spec={**CA_SIGNER, **SHORT}),
                       namespace)  # fmt: skip
    wait_ready(node_kubectl, namespace, "rotating", timeout=60)
    first = in_service(node_kubectl, namespace, "rotating-tls")
    client, server = start_client(node_kubectl, namespace, "rotating-tls", server_ip)
    rotation = watch_rotation(node_kubectl, namespace, "rotating-tls", first, [client, server])
    assert_kept_talking("ca-signer-rotation", rotation, client, server, tmp_path)


def test_a_client_rereading_its_files_keeps_talking_through_a_partner_signed_rotation(
    release: None, node_kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    partner = Partner(tmp_path / "partner")  # signs our CSRs by hand with openssl, and runs the server
    server_ip = deploy_server(node_kubectl, namespace, partner)
    node_kubectl.apply(certificate_manifest("manual", spec={"signer": {"manual": {"signedSecretName": "manual-signed"}},
                                                            "renewBefore": "60s"}), namespace)  # fmt: skip
    first_csr = wait_certificate(node_kubectl, namespace, "manual", lambda o: (o.get("status") or {}).get("csr"),
                                 "the first CSR", timeout=60)["status"]["csr"]  # fmt: skip
    stamp = "%Y%m%d%H%M%SZ"
    start = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).strftime(stamp)
    end = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90)).strftime(stamp)
    first = partner.sign_with_dates(first_csr, start, end, out="first.crt")
    put_signed(node_kubectl, namespace, "manual-signed", {"tls.crt": first, "ca.crt": partner.ca_crt})
    wait_ready(node_kubectl, namespace, "manual", timeout=60)
    first_pem = in_service(node_kubectl, namespace, "manual-tls")
    client, server = start_client(node_kubectl, namespace, "manual-tls", server_ip)
    # In the renewal window the operator publishes a CSR for a new key; the partner signs it like the first.
    second_csr = wait_certificate(
        node_kubectl, namespace, "manual", lambda o: (s := (o.get("status") or {}).get("csr")) and s != first_csr,
        "the renewal CSR", timeout=90,
    )["status"]["csr"]  # fmt: skip
    put_signed(node_kubectl, namespace, "manual-signed",
               {"tls.crt": partner.sign(second_csr, days=365, out="second.crt"), "ca.crt": partner.ca_crt})  # fmt: skip
    rotation = watch_rotation(node_kubectl, namespace, "manual-tls", first_pem, [client, server], timeout=60)
    assert_kept_talking("manual-signer-rotation", rotation, client, server, tmp_path)


def test_a_read_once_client_fails_at_expiry_unless_the_operator_rolls_its_deployment(
    release: None, node_kubectl: Kubectl, namespace: str, issuing_ca: Partner,
    tmp_path: Path,
) -> None:  # fmt: skip
    server_ip = deploy_server(node_kubectl, namespace, issuing_ca)
    for name in ("plain", "rolled"):
        node_kubectl.apply(certificate_manifest(name, spec={**CA_SIGNER, **SHORT}),
                           namespace)  # fmt: skip
    for name in ("plain", "rolled"):
        wait_ready(node_kubectl, namespace, name, timeout=60)
    firsts = {name: in_service(node_kubectl, namespace, f"{name}-tls") for name in ("plain", "rolled")}
    deploy_client(node_kubectl, namespace, "plain", "plain-tls", server_ip, read="once")
    deploy_client(node_kubectl, namespace, "rolled", "rolled-tls", server_ip, read="once",
                  annotations={ROLLOUT_ANNOTATION: "rolled"})  # fmt: skip
    logs = {app: Logs(node_kubectl, namespace, app) for app in ("plain", "rolled")}
    server = Logs(node_kubectl, namespace, "server")
    for app, log in logs.items():
        first_success(log, app)
    first_pods = {app: pods_ready(node_kubectl, namespace, app) for app in logs}
    rotations = {
        app: watch_rotation(node_kubectl, namespace, f"{app}-tls", firsts[app], [*logs.values(), server])
        for app in logs
    }
    follow_until(max(r.old_not_after for r in rotations.values()) + 20, [*logs.values(), server])

    plain = figures(rotations["plain"], logs["plain"], server, "plain")
    rolled = figures(rotations["rolled"], logs["rolled"], server, "rolled")
    report("read-once-without-rollout", plain, tmp_path)
    report("read-once-with-rollout", rolled, tmp_path)
    # Without the annotation: the same Pod, still on its first certificate, refused once that expired.
    assert pods_ready(node_kubectl, namespace, "plain") == first_pods["plain"]
    assert plain["failed"] > 0 and plain["new_serial_seen_after_s"] is None, plain
    # With it: the operator wrote the new serial into the pod template; a new Pod started with the new files.
    deployment = node_kubectl.get("deployment", "rolled", namespace)
    # (Its Pods may be on a later serial still: a 90 s certificate renews again 30 s after it is issued.)
    recorded = deployment["spec"]["template"]["metadata"]["annotations"][SERIALS_ANNOTATION]
    assert recorded.startswith("rolled=") and recorded != f"rolled={openssl_serial(rotations['rolled'].old_serial)}"
    assert pods_ready(node_kubectl, namespace, "rolled") != first_pods["rolled"]
    assert rolled["failed"] == 0 and rolled["new_serial_seen_after_s"] is not None, rolled
    events = [e["message"] for e in node_kubectl.events(namespace, "rolled") if e["reason"] == "WorkloadRolled"]
    first_roll = (
        f"rolled Deployment/rolled: its Pods start with serial {openssl_serial(rotations['rolled'].new_serial)}"
    )
    assert first_roll in events, events
    assert any(recorded.split("=", 1)[1] in message for message in events), (recorded, events)
    assert not [e for e in node_kubectl.events(namespace, "plain") if e["reason"] == "WorkloadRolled"]
