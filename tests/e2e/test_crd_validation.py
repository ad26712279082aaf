"""The CRD rejects bad input at `kubectl apply`, with a message a user understands (real apiserver)."""

from __future__ import annotations

import pytest
import yaml

from harness.cluster import (
    ROOT,
    Kubectl,
)

BASE = {
    "secretName": "s-tls",
    "commonName": "client.example.com",
    "subject": {"country": "IE", "organization": "My Company Inc."},
}


def manifest(spec: dict) -> str:
    import json

    return json.dumps(
        {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsCertificate", "metadata": {"name": "bad"}, "spec": spec}
    )


def with_(**changes: object) -> dict:
    spec = {**BASE, **changes}
    return {k: v for k, v in spec.items() if v is not None}


INVALID = [
    ("missing CN", with_(commonName=None), "spec.commonName: Required value"),
    ("CN of 65 chars", with_(commonName="a" * 65), "spec.commonName: Too long"),  # the error type, not its wording
    ("CN not a hostname", with_(commonName="my host!"), "commonName must be a DNS hostname"),
    ("country Ireland", with_(subject={"country": "Ireland", "organization": "X"}), "two-letter upper-case"),
    ("no organization", with_(subject={"country": "IE"}), "spec.subject.organization: Required value"),
    ("RSA 1024", with_(privateKey={"algorithm": "RSA", "size": 1024}), "at least 2048"),
    ("ECDSA 2048", with_(privateKey={"algorithm": "ECDSA", "size": 2048}), "256 or 384 for ECDSA"),
    (
        "renewBefore >= duration",
        with_(duration="720h", renewBefore="720h"),
        "renewBefore must be shorter than duration",
    ),
    (
        "two signers",
        with_(signer={"manual": {}, "ca": {"secretName": "ca"}}),
        "exactly one of manual, ca, kubernetes or issuerRef",
    ),
    (
        "csr with manual signer",
        with_(csr="-----BEGIN CERTIFICATE REQUEST-----\nMII=\n-----END CERTIFICATE REQUEST-----\n"),
        "requires a CA: set signer.ca.secretName or signer.issuerRef",
    ),
    ("bad duration", with_(duration="one year"), "duration must be a Go duration"),
    ("unknown field", with_(colour="blue"), 'unknown field "spec.colour"'),
    ("empty signer", with_(signer={}), "exactly one of manual, ca, kubernetes or issuerRef"),
    ("csr not PEM", with_(signer={"ca": {"secretName": "ca"}}, csr="hello"), "csr must be a PEM certificate request"),
    ("unknown algorithm", with_(privateKey={"algorithm": "DSA"}), "Unsupported value"),
    ("bad renewBefore", with_(renewBefore="30d"), "renewBefore must be a Go duration"),
]


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_rejected_with_its_message(
    kubectl: Kubectl, namespace: str, case: str, spec: dict, message: str
) -> None:
    proc = kubectl.apply(manifest(spec), namespace, check=False)
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert message in proc.stderr, f"{case}: {proc.stderr}"
    assert kubectl.get("mtlscertificate", "bad", namespace) is None


def test_valid_minimal_object_gets_defaults(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(manifest(BASE), namespace)
    obj = kubectl.get("mtlscertificate", "bad", namespace)
    assert obj is not None
    assert obj["spec"]["duration"] == "8760h"
    assert obj["spec"]["renewBefore"] == "720h"
    assert obj["spec"]["signer"] == {"manual": {}}


def test_all_samples_apply_cleanly(kubectl: Kubectl, namespace: str) -> None:
    proc = kubectl.run("apply", "-n", namespace, "--dry-run=server", "-f", str(ROOT / "manifests" / "samples"))
    documents = [
        d for p in (ROOT / "manifests" / "samples").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d
    ]
    assert proc.stdout.count("created (server dry run)") == len(documents)


def test_kubectl_explain_teaches_the_api(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "mtlscertificate.spec.commonName").stdout
    assert "hostname used to connect" in " ".join(out.split())


def test_short_names(kubectl: Kubectl, namespace: str) -> None:
    for short in ("mtlscert", "mtlscerts"):
        kubectl.run("get", short, "-n", namespace)


def test_the_apiserver_is_the_kubernetes_version_asked_for(kubectl: Kubectl) -> None:
    """K8S_VERSION (make e2e-oldest) really selects the apiserver: otherwise the oldest suite would prove nothing."""
    import json
    import os
    import re

    newest = re.search(r"k8s.io/kubernetes (v\S+)", (ROOT / "tests/controlplane/go.mod").read_text())
    assert newest is not None
    wanted = "v" + os.environ["K8S_VERSION"].removeprefix("v") if os.environ.get("K8S_VERSION") else newest.group(1)
    server = json.loads(kubectl.run("version", "-o", "json").stdout)["serverVersion"]
    assert server["gitVersion"] == wanted
