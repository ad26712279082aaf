"""The operator's own Secret informer against the real apiserver: reads come from its cache, unrelated Secrets
cost a resourceVersion each, a restart re-reads nothing by GET, and it recovers by itself when the apiserver
restarts (its watches resume, or list again after 410 Gone). And two shards on one control plane split the
certificates between them, each reconciling, metering and caching only its own.

On a control plane of its own: the session's operator would act on these certificates too."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
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
    certificate_series,
    create_and_get_csr,
    create_ca_secret,
    metric_sum,
    own_control_plane,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
)
from mtls_operator.runtime.sharding import shard_of

# Small enough to be kept while nobody names them (64 KiB each at most), together more than the 16 MiB budget.
JUNK_FILLING_THE_BUDGET = 300


def create_labelled_junk(kubectl: Kubectl, namespace: str, prefix: str, count: int, size: int) -> None:
    """`count` Secrets of `size` bytes (base64-encoded) labelled as the operator's, ten per `kubectl create`."""
    blob = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    labels = {"app.kubernetes.io/managed-by": "mtls-operator", "mtls.dev/certificate": "junk"}
    for first in range(0, count, 10):
        items = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{prefix}-{i}", "namespace": namespace, "labels": labels},
                "data": {"tls.crt": blob},
            }
            for i in range(first, min(first + 10, count))
        ]
        # create, not apply: apply's last-applied annotation would double each Secret (past etcd's 1.5 MiB at 1 MiB).
        kubectl.run("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def secret_gets(op: OperatorProcess) -> float:
    return metric_sum(op, "mtls_operator_api_requests_total", verb="read", resource="secret")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[controlplane.ControlPlane, Kubectl]]:
    with own_control_plane(tmp_path_factory.mktemp("informer-cluster"), controller_manager=False) as (cluster, kube):
        yield cluster, kube


def test_reads_come_from_the_cache_and_it_recovers_from_an_apiserver_restart(
    plane: tuple[controlplane.ControlPlane, Kubectl], tmp_path: Path
) -> None:
    cluster, kubectl = plane
    ns = "inf"
    kubectl.run("create", "namespace", ns)
    partner = Partner(tmp_path / "partner")
    create_ca_secret(kubectl, ns, partner)
    (tmp_path / "logs").mkdir()
    op = OperatorProcess(cluster.kubeconfig, tmp_path / "logs", ["-n", ns])
    op.start()
    try:
        names = [f"c{i}" for i in range(3)]
        for name in names:
            kubectl.apply(certificate_manifest(name, spec=CA_SIGNER), ns)
        for name in names:
            wait_ready(kubectl, ns, name)

        # Unrelated Secrets: known by resourceVersion only, never read by GET, and they reconcile nothing.
        gets = secret_gets(op)
        for i in range(60):
            kubectl.run("create", "secret", "generic", f"unrelated-{i}", "-n", ns, "--from-literal=k=v")
        wait_for(lambda: metric_sum(op, "mtls_operator_cached_secrets", kind="version") >= 60, what="versions")
        assert secret_gets(op) == gets
        # Whole objects: the three live Secrets, and the CA Secret they reference (fetched once, by GET).
        assert metric_sum(op, "mtls_operator_cached_secrets", kind="object") == len(names) + 1

        # A restart re-reads everything through the informer's list: zero Secret GETs for unchanged certificates.
        # Even when labelled junk listed before them (names sort first) fills the budget for Secrets nobody named
        # yet: the operator lists its certificates before the Secrets, so it knows which ones are named.
        create_labelled_junk(kubectl, ns, "a-junk", JUNK_FILLING_THE_BUDGET, 60 * 1024)
        op.stop()
        op.start()
        wait_for(lambda: certificate_series(op, ns) >= set(names), timeout=60, what="resynced")
        reconciles = metric_sum(op, "mtls_operator_reconcile_duration_seconds_count")
        assert reconciles >= len(names)
        assert secret_gets(op) == 0

        # Changes made while the operator cannot watch, then an apiserver restart: it must find them by itself.
        csr = create_and_get_csr(kubectl, ns, "manual")
        revision = kubectl.get("mtlscertificate", "c0", ns)["status"]["revision"]
        assert op.proc is not None
        os.killpg(op.proc.pid, signal.SIGSTOP)
        try:
            kubectl.run("delete", "secret", "c0-tls", "-n", ns)  # lost: re-issued, with a new key
            put_signed(kubectl, ns, "manual-signed", {"tls.crt": partner.sign(csr), "ca.crt": partner.ca_crt})
            controlplane.stop_component(cluster, "kube-apiserver")
        finally:
            os.killpg(op.proc.pid, signal.SIGCONT)
        # Restarted once the operator has closed its half of the old connections: until then the kernel may keep
        # the apiserver's port in use ("bind: address already in use", seen once).
        time.sleep(3)
        controlplane.start_component(cluster, "kube-apiserver")
        wait_ready(kubectl, ns, "manual", timeout=90)
        wait_certificate(
            kubectl,
            ns,
            "c0",
            lambda o: o["status"]["revision"] > revision,
            "re-issued after its Secret was deleted",
            90,
        )
        wait_ready(kubectl, ns, "c0")
        assert kubectl.get("secret", "c0-tls", ns)["data"]["tls.crt"]
        relists = metric_sum(op, "mtls_operator_secret_relists_total")
        print(f"apiserver restart: {relists:.0f} relists (410 Gone), Secret GETs since restart: {secret_gets(op):.0f}")
        assert op.proc.poll() is None and "Traceback" not in op.logs()
    finally:
        op.stop()


def test_two_shards_split_the_certificates(plane: tuple[controlplane.ControlPlane, Kubectl], tmp_path: Path) -> None:
    _, kubectl = plane
    ns = "shards"
    kubectl.run("create", "namespace", ns)
    create_ca_secret(kubectl, ns, Partner(tmp_path / "partner"))
    names = [f"s{i}" for i in range(24)]
    expected = {i: {n for n in names if shard_of(ns, n, 2) == i} for i in (0, 1)}
    assert expected[0] and expected[1]  # the names are chosen so both shards have work
    shards = []
    for index in (0, 1):
        (tmp_path / f"shard{index}").mkdir()
        args = ["-n", ns, "--shard-count", "2", "--shard-index", str(index)]
        shards.append(OperatorProcess(plane[0].kubeconfig, tmp_path / f"shard{index}", args))
    try:
        for op in shards:
            op.start()
        for name in names:
            kubectl.apply(certificate_manifest(name, spec=CA_SIGNER), ns)
        for name in names:
            wait_ready(kubectl, ns, name, timeout=90)
        for index, op in enumerate(shards):
            # Metered only by its owner: a dashboard summing both shards counts each certificate once.
            wait_for(lambda op=op, i=index: certificate_series(op, ns) == expected[i], what=f"shard {index} series")
            issued = metric_sum(op, "mtls_certificate_issued_total")
            assert issued == len(expected[index]), f"shard {index} issued {issued}"
            # Cached whole: only its own certificates' Secrets (+ the CA); the other shard's are versions only once
            # the cache's sweep (every 10 s) has run.
            wait_for(lambda op=op, i=index: metric_sum(op, "mtls_operator_cached_secrets", kind="object")
                     == len(expected[i]) + 1, timeout=30, what=f"shard {index} caches only its own")  # fmt: skip
            assert metric_sum(op, "mtls_operator_shards", index=str(index)) == 2
        # Each Secret was written by its owner's process alone.
        for index, op in enumerate(shards):
            creates = metric_sum(op, "mtls_operator_api_requests_total", verb="create", resource="secret")
            assert creates == len(expected[index])
    finally:
        for op in shards:
            op.stop()


def rss_bytes(op: OperatorProcess) -> int:
    assert op.proc is not None
    with open(f"/proc/{op.proc.pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


FOREIGN = 400  # 1 MiB each, labelled as ours: 400 MiB the operator must not hold (over the chart's 512Mi limit)


def test_labelled_foreign_secrets_cost_a_name_not_their_bytes_and_certificates_keep_being_issued(
    plane: tuple[controlplane.ControlPlane, Kubectl], tmp_path: Path
) -> None:
    """Anyone may put `app.kubernetes.io/managed-by=mtls-operator` on a Secret: the operator keeps data only for
    Secrets a certificate of its own names, so labelled junk costs it a name and a version (also after a restart,
    which lists them all again), and the other tenants' certificates are issued meanwhile."""
    cluster, kubectl = plane
    ns, hostile = "mem", "mem-hostile"
    for name in (ns, hostile):
        kubectl.run("create", "namespace", name)
    create_ca_secret(kubectl, ns, Partner(tmp_path / "partner"))
    (tmp_path / "logs").mkdir()
    op = OperatorProcess(cluster.kubeconfig, tmp_path / "logs", ["-A"])
    op.start()
    try:
        kubectl.apply(certificate_manifest("before", spec=CA_SIGNER), ns)
        wait_ready(kubectl, ns, "before", timeout=60)
        time.sleep(12)  # a sweep of the cache has run (every 10 s)
        baseline = rss_bytes(op)
        objects_before = metric_sum(op, "mtls_operator_cached_secrets", kind="object")
        create_labelled_junk(kubectl, hostile, "junk", FOREIGN, 1024 * 1024)
        kubectl.apply(certificate_manifest("during", spec=CA_SIGNER), ns)
        wait_ready(kubectl, ns, "during", timeout=60)
        time.sleep(12)  # a sweep of the cache has run (every 10 s)
        grown = rss_bytes(op) - baseline
        whole = metric_sum(op, "mtls_operator_cached_secrets", kind="object")
        assert whole <= objects_before + 1, (objects_before, whole)  # + "during"'s Secret, not the hundred
        assert metric_sum(op, "mtls_operator_cached_secrets", kind="version") >= FOREIGN
        assert grown < 40 * 1024 * 1024, f"RSS grew {grown / 2**20:.0f} MiB for {FOREIGN} MiB of labelled junk"
        # A restart lists them all again: still names only, and the certificates are served.
        op.stop()
        op.start()
        kubectl.apply(certificate_manifest("after", spec=CA_SIGNER), ns)
        wait_ready(kubectl, ns, "after", timeout=60)
        time.sleep(12)
        assert rss_bytes(op) < baseline + 40 * 1024 * 1024
    finally:
        op.stop()
        kubectl.run("delete", "namespace", hostile, "--wait=false")
