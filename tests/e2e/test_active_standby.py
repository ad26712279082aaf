"""Two real operator processes with --leader-elect on one control plane: only the Lease holder writes.

The scenario the issue found splitting kopf's peering: kill -9 the active one, the standby takes over; the old
one comes back and must stand by while the new active one renews. Runs on a control plane of its own, so the
session's operator (which watches every namespace) does not act on these certificates.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_and_get_csr,
    metric_sum,
    own_control_plane,
    put_signed,
    wait_for,
    wait_ready,
)

NS = "ha"
WRITE_VERBS = ("create", "patch", "replace", "delete")
SHORT = {"duration": "2m", "renewBefore": "90s", **CA_SIGNER}


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Kubectl]]:
    with own_control_plane(tmp_path_factory.mktemp("ha-cluster"), controller_manager=False) as pair:
        yield pair


@pytest.fixture(scope="module")
def plane(control_plane: tuple[Any, Kubectl]) -> Kubectl:
    return control_plane[1]


def writes(op: OperatorProcess) -> float:
    return sum(metric_sum(op, "mtls_operator_api_requests_total", verb=verb) for verb in WRITE_VERBS)


def replica(kubectl: Kubectl, tmp_path: Path, name: str) -> OperatorProcess:
    log_dir = tmp_path / name
    log_dir.mkdir()
    args = ["-n", NS, "--leader-elect", "--leader-election-namespace", NS, "--leader-election-id", "mtls-ha"]
    proc = OperatorProcess(kubectl.kubeconfig, log_dir, args)
    proc.start()
    return proc


def one_leader(first: OperatorProcess, second: OperatorProcess) -> tuple[OperatorProcess, OperatorProcess]:
    """(the one holding the Lease, the one standing by), once exactly one holds it."""
    both = (first, second)
    wait_for(lambda: sum(metric_sum(r, "mtls_operator_leader") for r in both) == 1, timeout=30, what="one leader")
    return (first, second) if metric_sum(first, "mtls_operator_leader") == 1 else (second, first)


def revision(kubectl: Kubectl, name: str) -> int:
    return int(((kubectl.get("mtlscertificate", name, NS) or {}).get("status") or {}).get("revision") or 0)


def test_only_the_lease_holder_writes_and_failover_keeps_every_key(plane: Kubectl, tmp_path: Path) -> None:
    kubectl = plane
    kubectl.run("create", "namespace", NS)
    partner = Partner(tmp_path / "partner")
    kubectl.run("create", "secret", "tls", "internal-ca", "-n", NS,
                f"--cert={partner.ca_crt}", f"--key={partner.ca_key}")  # fmt: skip
    first = replica(kubectl, tmp_path, "a")
    wait_for(lambda: metric_sum(first, "mtls_operator_leader") == 1, timeout=30, what="a holds the Lease")
    second = replica(kubectl, tmp_path, "b")
    time.sleep(3)  # a few election rounds
    assert metric_sum(second, "mtls_operator_leader") == 0
    try:
        for name in ("r1", "r2", "r3"):
            kubectl.apply(certificate_manifest(name, spec=SHORT), NS)
        csrs = {name: create_and_get_csr(kubectl, NS, name) for name in ("m1", "m2")}
        keys = {name: kubectl.secret_data(f"{name}-tls", NS)["tls.key"] for name in ("m1", "m2")}
        for name in ("r1", "r2", "r3"):
            wait_ready(kubectl, NS, name)
        assert writes(first) > 0 and writes(second) == 0
        assert metric_sum(second, "mtls_certificate_phase") == 0  # a standby reports nothing: no double counting

        killed = time.monotonic()
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
        wait_for(lambda: metric_sum(second, "mtls_operator_leader") == 1, timeout=60, interval=0.5, what="b takes over")
        failover = time.monotonic() - killed
        print(f"failover after kill -9: {failover:.1f}s")
        assert failover < 60

        # The issuances in flight (CSRs published by a, keys stored) finish under b with the same keys.
        for name, csr in csrs.items():
            put_signed(kubectl, NS, f"{name}-signed", {"tls.crt": partner.sign(csr, out=f"{name}.crt")})
        for name in csrs:
            wait_ready(kubectl, NS, name)
            assert kubectl.secret_data(f"{name}-tls", NS)["tls.key"] == keys[name]

        # The old one comes back: it stands by while b renews the 2-minute certificates.
        comeback = replica(kubectl, tmp_path, "a-again")
        try:
            before = {name: revision(kubectl, name) for name in ("r1", "r2", "r3")}
            wait_for(
                lambda: all(revision(kubectl, n) > before[n] for n in before),
                timeout=90,
                interval=1,
                what="every short certificate renewed after the comeback",
            )
            assert metric_sum(comeback, "mtls_operator_leader") == 0 and writes(comeback) == 0
            assert metric_sum(second, "mtls_operator_leader") == 1
            assert metric_sum(second, "mtls_certificate_renewals_total") >= 3
            assert "active: reconciling" in second.logs() and "active: reconciling" not in comeback.logs()
        finally:
            comeback.stop()
    finally:
        second.stop()
        first.stop()


def crl_status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return ((kubectl.get("mtlsissuer", name, NS) or {}).get("status") or {}).get("crl") or {}


def crl_listing(kubectl: Kubectl, revoked: int) -> dict[str, Any] | None:
    crl = crl_status(kubectl, "failover")
    return crl if crl.get("revokedCertificates") == revoked else None


def test_the_crl_number_only_grows_across_a_leader_change(plane: Kubectl, tmp_path: Path) -> None:
    """Revocation's promise across failover: the new leader signs the next CRL with a larger number (servers keep the
    CRL with the largest), lists what the old leader listed plus what came after, and nothing is lost with the kill."""
    from mtls_operator.pki.crl import read_crl, revocation_in

    kubectl = plane
    kubectl.run("create", "namespace", NS, check=False)
    ca = Partner(tmp_path / "crl-ca", name="Failover CRL CA")
    kubectl.run("create", "secret", "tls", "failover-ca", "-n", NS, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}")
    issuer = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsIssuer", "metadata": {"name": "failover"},
              "spec": {"ca": {"secretName": "failover-ca"}, "crl": {"lifetime": "1m"}}}  # fmt: skip
    first = replica(kubectl, tmp_path, "crl-a")
    second = replica(kubectl, tmp_path, "crl-b")
    try:
        active, standby = one_leader(first, second)
        kubectl.apply(yaml.safe_dump(issuer), NS)
        spec = {"duration": "2160h", "signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "failover"}}}
        for name in ("f1", "f2"):
            kubectl.apply(certificate_manifest(name, spec=spec), NS)
        serials = {name: wait_ready(kubectl, NS, name)["status"]["issuedBy"]["serialNumber"] for name in ("f1", "f2")}
        kubectl.plugin("revoke", "f1", "-n", NS, "--reason", "cessationOfOperation", "--timeout", "60")
        before = wait_for(lambda: crl_listing(kubectl, 1), timeout=30, what="the old leader's CRL lists f1")

        assert active.proc is not None
        os.killpg(active.proc.pid, signal.SIGKILL)
        active.proc.wait()
        wait_for(lambda: metric_sum(standby, "mtls_operator_leader") == 1, timeout=60, interval=0.5, what="takeover")
        kubectl.plugin("revoke", "f2", "-n", NS, "--reason", "superseded", "--timeout", "90")
        after = wait_for(lambda: crl_listing(kubectl, 2), timeout=30, what="the new leader's CRL lists f1 and f2")
        assert int(after["number"]) > int(before["number"])
        text = (kubectl.get("configmap", "mtlsissuer-failover-crl", NS) or {})["data"]["ca.crl"]
        crl = read_crl(text.encode())
        assert all(revocation_in(crl, int(serial, 16)) is not None for serial in serials.values())
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == int(after["number"])
        # The new leader keeps signing at half the lifetime, numbers still growing.
        wait_for(lambda: int(crl_status(kubectl, "failover").get("number") or 0) > int(after["number"]),
                 timeout=60, interval=1, what="re-signed by the new leader")  # fmt: skip
        assert writes(standby) > 0
    finally:
        first.stop()
        second.stop()


def test_graceful_stop_hands_the_lease_over_at_once(plane: Kubectl, tmp_path: Path) -> None:
    kubectl = plane
    kubectl.run("create", "namespace", NS, check=False)
    first = replica(kubectl, tmp_path, "g1")
    second = replica(kubectl, tmp_path, "g2")
    try:
        active, standby = one_leader(first, second)
        stopped = time.monotonic()
        active.stop()  # SIGTERM: stop writing, then release the Lease
        wait_for(lambda: metric_sum(standby, "mtls_operator_leader") == 1, timeout=15, what="standby takes over")
        assert time.monotonic() - stopped < 10  # no waiting out the 15 s lease
    finally:
        first.stop()
        second.stop()


def test_a_holder_whose_apiserver_goes_silent_steps_down(control_plane: tuple[Any, Kubectl], tmp_path: Path) -> None:
    """SIGSTOP on the real kube-apiserver: its kernel still accepts connections, nothing answers (as with a
    connection that died without a reset). The holder must step down by its renew deadline, before any standby
    could take the Lease over; before the fix its Lease request hung for good and it went on acting as leader."""
    plane_, kubectl = control_plane
    kubectl.run("create", "namespace", NS, check=False)
    only = replica(kubectl, tmp_path, "silent")
    try:
        wait_for(lambda: metric_sum(only, "mtls_operator_leader") == 1, timeout=30, what="it holds the Lease")
        apiserver = plane_.pids[1]  # controlplane.COMPONENTS: etcd, kube-apiserver, ...
        os.kill(apiserver, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            wait_for(lambda: metric_sum(only, "mtls_operator_leader") == 0, timeout=30, what="the holder steps down")
            stepped_down = time.monotonic() - frozen
        finally:
            os.kill(apiserver, signal.SIGCONT)
        # renew deadline 10 s after its last renewal (at most one 2 s retry period before the freeze), lease 15 s
        assert stepped_down < 13, f"stepped down {stepped_down:.1f} s after the apiserver went silent"
        assert "standby: not reconciling (could not renew the Lease" in only.logs()
        wait_for(lambda: metric_sum(only, "mtls_operator_leader") == 1, timeout=60, what="it leads again")
    finally:
        only.stop()
