"""Deleting is not losing: with the real garbage collector (kube-controller-manager) running.

secretDeletionPolicy Retain (the default) keeps the key and the partner-signed certificate when the
MtlsCertificate goes; a re-created object of the same name adopts them. Delete keeps the old owned behaviour.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cluster import (
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_and_get_csr,
    own_control_plane,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)


def delete_certificate(kubectl: Kubectl, namespace: str, name: str) -> None:
    kubectl.run("delete", "mtlscertificate", name, "-n", namespace, "--wait=true")
    time.sleep(5)  # give the garbage collector time to act, were the Secrets owned


def test_delete_and_recreate_keeps_key_and_certificate(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "keep")
    put_signed(kubectl, namespace, "keep-signed", {"tls.crt": partner.sign(csr), "ca.crt": partner.ca_crt})
    wait_ready(kubectl, namespace, "keep")
    live = kubectl.get("secret", "keep-tls", namespace)
    assert not live["metadata"].get("ownerReferences"), "Retain: nothing for the garbage collector to follow"
    assert live["metadata"]["labels"]["mtls.dev/certificate"] == "keep"
    before = kubectl.secret_data("keep-tls", namespace)

    delete_certificate(kubectl, namespace, "keep")
    assert kubectl.secret_data("keep-tls", namespace) == before
    kubectl.apply(certificate_manifest("keep"), namespace)
    obj = wait_ready(kubectl, namespace, "keep")
    assert kubectl.secret_data("keep-tls", namespace) == before  # same key, same certificate
    assert "csr" not in obj["status"]
    reasons = [
        e["reason"] for e in kubectl.events(namespace, "keep") if e["involvedObject"]["uid"] == obj["metadata"]["uid"]
    ]
    assert "Adopted" in reasons and "CSRCreated" not in reasons
    adopted = kubectl.get("secret", "keep-tls", namespace)["metadata"]
    assert adopted["annotations"]["mtls.dev/certificate-uid"] == obj["metadata"]["uid"]


def test_delete_while_awaiting_signature_keeps_the_published_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "pending")
    key = kubectl.secret_data("pending-tls", namespace)["tls.key"]
    delete_certificate(kubectl, namespace, "pending")
    again = create_and_get_csr(kubectl, namespace, "pending")
    assert again == csr, "the CSR the partner may already hold must stay valid"
    assert kubectl.secret_data("pending-tls", namespace)["tls.key"] == key
    put_signed(kubectl, namespace, "pending-signed", {"tls.crt": partner.sign(csr)})  # signed from the OLD CSR
    wait_ready(kubectl, namespace, "pending")


def test_delete_policy_lets_the_garbage_collector_remove_the_secret(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    create_and_get_csr(kubectl, namespace, "gone", extra_spec="  secretDeletionPolicy: Delete\n")
    owners = kubectl.get("secret", "gone-tls", namespace)["metadata"]["ownerReferences"]
    assert [o["kind"] for o in owners] == ["MtlsCertificate"]
    kubectl.run("delete", "mtlscertificate", "gone", "-n", namespace)
    wait_for(lambda: kubectl.get("secret", "gone-tls", namespace) is None, timeout=60, what="garbage-collected")


def test_retained_secret_that_does_not_fit_the_new_spec_is_not_adopted(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    create_and_get_csr(kubectl, namespace, "misfit")
    before = kubectl.get("secret", "misfit-tls", namespace)
    delete_certificate(kubectl, namespace, "misfit")
    kubectl.apply(certificate_manifest("misfit", extra_spec="  privateKey:\n    size: 4096\n"), namespace)
    obj = wait_reason(kubectl, namespace, "misfit", "SecretConflict")
    assert "holds a RSA-2048 key, the spec asks for RSA-4096" in condition(obj)["message"]
    after = kubectl.get("secret", "misfit-tls", namespace)
    assert (
        after["data"] == before["data"]
        and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )


@pytest.fixture
def own_plane(tmp_path: Path) -> Iterator[tuple[Kubectl, OperatorProcess]]:
    """A control plane of its own (with the garbage collector): this test deletes the CRD itself."""
    with own_control_plane(tmp_path / "cluster") as (plane, kube):
        (tmp_path / "logs").mkdir()
        op = OperatorProcess(plane.kubeconfig, tmp_path / "logs")
        op.start()
        try:
            yield kube, op
        finally:
            op.stop()


def test_keys_survive_deleting_the_crd(own_plane: tuple[Kubectl, OperatorProcess], tmp_path: Path) -> None:
    kubectl, op = own_plane
    kubectl.run("create", "namespace", "crd")
    partner = Partner(tmp_path / "partner")
    csr = create_and_get_csr(kubectl, "crd", "survivor")
    put_signed(kubectl, "crd", "survivor-signed", {"tls.crt": partner.sign(csr)})
    wait_ready(kubectl, "crd", "survivor")
    before = kubectl.secret_data("survivor-tls", "crd")
    kubectl.run("delete", "crd", "mtlscertificates.mtls.dev", "--wait=true")
    time.sleep(5)
    assert kubectl.secret_data("survivor-tls", "crd") == before
    # kopf's watch ends with 404 when its CRD goes, and the process exits: in a cluster the kubelet restarts it,
    # and the new process waits until the CRD is served again. Play the kubelet here.
    assert op.proc is not None
    wait_for(lambda: op.proc.poll() is not None, timeout=60, what="operator exits without its CRD")  # type: ignore[union-attr]
    kubectl.run("apply", "-f", str(ROOT / "manifests" / "crd"))
    op.start()
    kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
    kubectl.apply(certificate_manifest("survivor"), "crd")
    wait_certificate(
        kubectl, "crd", "survivor", lambda o: condition(o).get("status") == "True", "Ready after re-install", 90
    )
    assert kubectl.secret_data("survivor-tls", "crd") == before


def test_kill_between_switch_and_cleanup_leaves_no_next_key_behind(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    """Replays what a kill -9 between the live write and the delete of <secretName>-next leaves, then restarts."""
    csr = create_and_get_csr(kubectl, namespace, "orphan")
    put_signed(kubectl, namespace, "orphan-signed", {"tls.crt": partner.sign(csr)})
    wait_ready(kubectl, namespace, "orphan")
    kubectl.plugin("renew", "orphan", "-n", namespace)
    new_csr = wait_certificate(
        kubectl, namespace, "orphan", lambda o: (o.get("status") or {}).get("csr"), "renewal CSR"
    )["status"]["csr"]
    next_key = kubectl.secret_data("orphan-tls-next", namespace)["tls.key"]
    operator.stop()
    time.sleep(1.1)  # the partner signs later than the request (certificates carry whole seconds)
    renewed = partner.sign(new_csr, out="renewed.crt").read_bytes()
    put_signed(kubectl, namespace, "orphan-signed", {"tls.crt": renewed})  # the user imported it; the switch began
    switch = {"data": {"tls.key": base64.b64encode(next_key).decode(), "tls.crt": base64.b64encode(renewed).decode()}}
    kubectl.run("patch", "secret", "orphan-tls", "-n", namespace, "--type=merge", "-p", json.dumps(switch))
    operator.start()  # status still says Renewing; the next key is in service
    wait_for(lambda: kubectl.get("secret", "orphan-tls-next", namespace) is None, what="orphaned next key removed")
    # Ready stays True through a renewal (the old certificate serves meanwhile): wait for the phase, which the
    # status write after the cleanup sets.
    wait_certificate(kubectl, namespace, "orphan", lambda o: o["status"].get("phase") == "Ready", "phase Ready")
    assert kubectl.secret_data("orphan-tls", namespace)["tls.key"] == next_key
