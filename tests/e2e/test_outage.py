"""An apiserver outage under a running operator: it recovers by itself, logs the outage once, and says so on
/healthz (alive) and /readyz (not ready). On a control plane of its own: the test kills its apiserver."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import controlplane
from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_ca_secret,
    own_control_plane,
    wait_certificate,
    wait_for,
    wait_ready,
)

SHORT = {"duration": "2m", "renewBefore": "90s", **CA_SIGNER}


def probe(op: OperatorProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}{path}", timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[controlplane.ControlPlane, Kubectl, OperatorProcess]]:
    with own_control_plane(tmp_path / "cluster", controller_manager=False) as (cluster, kube):
        (tmp_path / "logs").mkdir()
        op = OperatorProcess(cluster.kubeconfig, tmp_path / "logs")
        op.start()
        try:
            yield cluster, kube, op
        finally:
            op.stop()


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_operator_rides_out_an_outage_and_logs_it_once(
    plane: tuple[controlplane.ControlPlane, Kubectl, OperatorProcess], tmp_path: Path, component: str
) -> None:
    cluster, kubectl, op = plane
    kubectl.run("create", "namespace", "o")
    create_ca_secret(kubectl, "o", Partner(tmp_path / "ca"))
    names = [f"short{i}" for i in range(3)]
    for name in names:
        kubectl.apply(certificate_manifest(name, spec=SHORT), "o")
    for name in names:
        wait_ready(kubectl, "o", name)
    log_before = op.logs()

    controlplane.stop_component(cluster, component)
    down = time.monotonic()
    status, text = wait_for(
        lambda: (r := probe(op, "/readyz"))[0] == 503 and r, timeout=30, what="/readyz reports the outage"
    )
    assert "Kubernetes API unreachable" in text
    alive = probe(op, "/healthz")
    assert alive[0] == 200 and "unreachable" in alive[1]  # alive: a restart would not help
    time.sleep(max(0.0, 25 - (time.monotonic() - down)))  # renewals fall due during the outage
    controlplane.start_component(cluster, component)

    wait_for(lambda: probe(op, "/readyz")[0] == 200, timeout=60, what="/readyz ready again")
    revisions = {n: kubectl.get("mtlscertificate", n, "o")["status"]["revision"] for n in names}
    for name in names:  # recovered by itself: the next renewals happen without restarting the operator
        wait_certificate(
            kubectl, "o", name, lambda o, n=name: o["status"]["revision"] > revisions[n], "renewed after", 90
        )
    assert op.proc is not None and op.proc.poll() is None and op.starts == 1
    during = op.logs()[len(log_before) :]
    assert during.count("Kubernetes API unreachable") == 1, during[-3000:]
    assert during.count("Kubernetes API reachable again") == 1
    assert "reconcile of" not in during and "Traceback" not in during, during[-3000:]
    assert "urllib3" not in during  # no line per retried connection
    print(f"{component} outage: {len(during.splitlines())} log lines from the operator")
