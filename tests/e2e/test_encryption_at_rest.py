"""Keys encrypted at rest, proven where the bytes are: etcd itself, read over its JSON gateway.

A control plane whose apiserver encrypts Secrets (EncryptionConfiguration, secretbox); the operator issues
certificates of every signer that holds a key (ca, manual, issuerRef) and the outbound one (no key). etcd's value
of each Secret starts with the provider's prefix and holds neither PEM armour nor the DER of any private key, while
the API still returns the key. The same reads against the session's plane, which does not encrypt, find the key in
plaintext: the check can fail.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import controlplane
from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_and_get_csr,
    create_ca_secret,
    own_control_plane,
    put_signed,
    wait_ready,
)
from mtls_operator.pki.keys import load_private_key

PREFIX = b"k8s:enc:secretbox:v1:key1:"


def etcd_value(plane: controlplane.ControlPlane, key: str) -> bytes:
    """The raw value etcd stores under `key` (its v3 JSON gateway: base64 keys and values)."""
    request = urllib.request.Request(
        f"{plane.etcd_url}/v3/kv/range",
        data=json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        kvs = json.loads(resp.read()).get("kvs") or []
    assert len(kvs) == 1, f"etcd has no {key}"
    return base64.b64decode(kvs[0]["value"])


def key_encodings(pem: bytes) -> list[bytes]:
    """Every form the private key's bytes could take in storage: the PEM body, PKCS#8 and traditional DER."""
    key = load_private_key(pem)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    traditional = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return [pkcs8, traditional, body[:64]]


def issue_every_kind(kube: Kubectl, namespace: str, workdir: Path) -> list[str]:
    """Certificates of each signer; returns the Secrets that hold a private key."""
    partner = Partner(workdir / "partner")
    create_ca_secret(kube, namespace, partner)
    kube.apply(certificate_manifest("by-ca", spec=CA_SIGNER), namespace)
    issuer = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsIssuer", "metadata": {"name": "team"},
              "spec": {"ca": {"secretName": "internal-ca"}}}  # fmt: skip
    kube.apply(json.dumps(issuer), namespace)
    kube.apply(
        certificate_manifest("by-issuer", spec={"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "team"}}}),
        namespace,
    )
    csr = create_and_get_csr(kube, namespace, "by-hand")
    put_signed(kube, namespace, "by-hand-signed", {"tls.crt": partner.sign(csr)})
    outbound = {**CA_SIGNER, "csr": partner.own_csr("/C=IE/O=P/CN=partner.example.com").decode()}
    kube.apply(certificate_manifest("outbound", common_name="partner.example.com", spec=outbound), namespace)
    for name in ("by-ca", "by-issuer", "by-hand", "outbound"):
        wait_ready(kube, namespace, name, timeout=60)
    return ["by-ca-tls", "by-issuer-tls", "by-hand-tls", "internal-ca"]


def stored_in_plaintext(plane: controlplane.ControlPlane, kube: Kubectl, namespace: str, secret: str) -> list[str]:
    """What of the Secret's private key etcd holds readable (empty: nothing)."""
    data = kube.secret_data(secret, namespace)
    assert data is not None and b"PRIVATE KEY" in data["tls.key"], "the API returns the key"
    stored = etcd_value(plane, f"/registry/secrets/{namespace}/{secret}")
    found = [
        name
        for name, form in zip(
            ("PKCS#8 DER", "traditional DER", "PEM base64"), key_encodings(data["tls.key"]), strict=True
        )
        if form in stored
    ]
    if b"PRIVATE KEY" in stored:
        found.append("PEM armour")
    return found


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[controlplane.ControlPlane, Kubectl, Path]]:
    directory = tmp_path_factory.mktemp("encrypted")
    with own_control_plane(directory / "plane", encryption="secretbox") as (plane, kube):
        yield plane, kube, directory


def test_every_key_is_encrypted_in_etcd_and_readable_through_the_api(
    encrypted: tuple[controlplane.ControlPlane, Kubectl, Path],
) -> None:
    plane, kube, directory = encrypted
    kube.run("create", "namespace", "keys")
    (directory / "logs").mkdir()
    operator = OperatorProcess(plane.kubeconfig, directory / "logs", ["--namespace", "keys"])
    operator.start()
    try:
        secrets = issue_every_kind(kube, "keys", directory)
    finally:
        operator.stop()
    for secret in secrets:
        stored = etcd_value(plane, f"/registry/secrets/keys/{secret}")
        assert stored.startswith(PREFIX), (secret, stored[:40])
        assert stored_in_plaintext(plane, kube, "keys", secret) == [], secret
    outbound = etcd_value(plane, "/registry/secrets/keys/outbound-tls")
    assert outbound.startswith(PREFIX)  # no key in it, and still not in plaintext
    # The apiserver's own account of it: Secrets went through the secretbox transformer.
    metrics = kube.run("get", "--raw", "/metrics").stdout
    samples = [
        line for line in metrics.splitlines() if line.startswith("apiserver_storage_transformation_operations_total{")
    ]
    assert any(
        'transformation_type="to_storage"' in s and 'transformer_prefix="k8s:enc:secretbox:v1:"' in s for s in samples
    ), samples


def test_without_encryption_the_same_check_finds_the_key(
    cluster: controlplane.ControlPlane, kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    """The session's plane stores Secrets as they are: what a cluster without encryption at rest leaks to anyone
    who reads etcd or its backups."""
    kubectl.apply(certificate_manifest("plain", spec=CA_SIGNER), namespace)
    create_ca_secret(kubectl, namespace, Partner(tmp_path / "partner"))
    wait_ready(kubectl, namespace, "plain")
    assert not etcd_value(cluster, f"/registry/secrets/{namespace}/plain-tls").startswith(b"k8s:enc:")
    found = stored_in_plaintext(cluster, kubectl, namespace, "plain-tls")
    assert "PEM armour" in found and "PEM base64" in found, found
