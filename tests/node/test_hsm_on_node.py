"""The chart's HSM values for real: the operator Pod, under Pod Security `restricted`, loads a PKCS#11 library
(SoftHSM2, in an image built FROM the same Dockerfile on a base that has it), reads the library's configuration
from a ConfigMap (extraEnv SOFTHSM2_CONF) and its token from a Secret (extraVolumes/extraVolumeMounts), and an
issuer whose CA key is in that token signs a certificate that openssl verifies.

The token was made on the host, its key generated inside it; only SoftHSM's encrypted token files travel to the
Pod. They are mounted file by file (subPath): a Secret volume presents its files as symlinks, and SoftHSM lists
only regular files as token objects (measured: the token is found, its keys are not).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nodeplane
import pytest
import yaml

from harness.cluster import Kubectl, certificate_manifest, condition, helm, wait_for, wait_ready
from harness.images import OPERATOR_IMAGE, SOFTHSM_TAG, BuiltImages, build_softhsm_image
from harness.nodechart import BASE_VALUES, CHART, RELEASE, SYSTEM, install, operator_pods, pod_logs, wait_pods_ready
from harness.softhsm import PIN, SoftHSM, find_module

MODULE_IN_IMAGE = "/usr/lib/softhsm/libsofthsm2.so"  # where Debian's softhsm2 puts it, in the image as on the host
# Not Debian's /var/lib/softhsm/tokens: the package makes /var/lib/softhsm root:softhsm 2770, closed to UID 10001.
TOKENS_IN_POD = "/var/lib/softhsm-tokens"


@pytest.fixture(scope="module")
def softhsm_image(
    node_plane: nodeplane.NodePlane, node_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> str:
    archive = build_softhsm_image(node_images, tmp_path_factory.mktemp("softhsm-image") / "operator-softhsm.tar")
    node_plane.load_image(archive)
    return SOFTHSM_TAG


@pytest.fixture
def token(tmp_path: Path) -> Iterator[tuple[SoftHSM, Path]]:
    module = find_module()
    assert module is not None, "SoftHSM2 is not installed: make deps installs it"
    hsm = SoftHSM.create(tmp_path / "softhsm", module)
    hsm.init_token("pod-ca", PIN)
    hsm.make_ca("pod-ca", PIN, "issuing", tmp_path / "pod-ca.crt")
    yield hsm, tmp_path / "pod-ca.crt"
    hsm.remove()


def hsm_values(token_dir: Path, files: list[str], tag: str, namespace: str) -> dict[str, Any]:
    mounts = [
        {"name": "softhsm-token", "mountPath": f"{TOKENS_IN_POD}/{token_dir.name}/{f}", "subPath": f, "readOnly": True}
        for f in files
    ]
    return {
        "image": {"tag": tag},
        # The token is the tenant's: given to its namespace, so its MtlsIssuer may use it.
        "hsm": {
            "modules": [MODULE_IN_IMAGE],
            "probeSeconds": 5,
            "namespacedTokens": [{"token": "pod-ca", "namespaces": [namespace]}],
        },
        "extraVolumes": [
            {"name": "softhsm-token", "secret": {"secretName": "softhsm-token"}},
            {"name": "softhsm-conf", "configMap": {"name": "softhsm-conf"}},
        ],
        "extraVolumeMounts": [*mounts, {"name": "softhsm-conf", "mountPath": "/etc/softhsm", "readOnly": True}],
        "extraEnv": [{"name": "SOFTHSM2_CONF", "value": "/etc/softhsm/softhsm2.conf"}],
    }


def test_an_issuer_signs_through_a_pkcs11_library_mounted_into_the_operator_pod(
    release: None,
    node_plane: nodeplane.NodePlane,
    node_kubectl: Kubectl,
    softhsm_image: str,
    token: tuple[SoftHSM, Path],
    namespace: str,
    tmp_path: Path,
) -> None:
    hsm, ca_file = token
    [token_dir] = list(hsm.tokens.iterdir())
    files = sorted(p.name for p in token_dir.iterdir())
    node_kubectl.run("create", "secret", "generic", "softhsm-token", "-n", SYSTEM,
                     *(f"--from-file={f}={token_dir / f}" for f in files))  # fmt: skip
    conf = f"directories.tokendir = {TOKENS_IN_POD}\nobjectstore.backend = file\nlog.level = ERROR\n"
    node_kubectl.run("create", "configmap", "softhsm-conf", "-n", SYSTEM, f"--from-literal=softhsm2.conf={conf}")
    values = tmp_path / "hsm-values.yaml"
    values.write_text(yaml.safe_dump(hsm_values(token_dir, files, softhsm_image, namespace)))
    before = {p["metadata"]["name"] for p in operator_pods(node_kubectl)}
    pod: dict[str, Any] = {"metadata": {"name": ""}}
    sets = [arg for key, value in BASE_VALUES.items() if key != "image.tag" for arg in ("--set", f"{key}={value}")]
    try:
        helm(node_plane.kubeconfig, "upgrade", "--install", RELEASE, str(CHART), "-n", SYSTEM, *sets, "-f", str(values))
        [pod] = wait_pods_ready(node_kubectl, 1, exclude=before, timeout=180)
        assert pod["spec"]["containers"][0]["image"] == f"{OPERATOR_IMAGE}:{SOFTHSM_TAG}"

        node_kubectl.run("create", "configmap", "pod-ca", "-n", namespace, f"--from-file=ca.crt={ca_file}")
        node_kubectl.run("create", "secret", "generic", "pod-ca-pin", "-n", namespace, f"--from-literal=pin={PIN}")
        issuer = {
            "apiVersion": "mtls.dev/v1alpha1",
            "kind": "MtlsIssuer",
            "metadata": {"name": "in-pod-hsm"},
            "spec": {
                "ca": {
                    "pkcs11": {
                        "module": MODULE_IN_IMAGE,
                        "tokenLabel": "pod-ca",
                        "keyLabel": "issuing",
                        "pinSecretRef": {"name": "pod-ca-pin"},
                    },
                    "certificate": {"configMapName": "pod-ca"},
                },
                "policy": {"keys": {"allowedAlgorithms": ["RSA"]}},
            },
        }
        node_kubectl.apply(yaml.safe_dump(issuer), namespace)

        def issuer_ready() -> dict[str, Any] | None:
            found = node_kubectl.get("mtlsissuer", "in-pod-hsm", namespace)
            return found if condition(found).get("status") == "True" else None

        try:
            ready = condition(wait_for(issuer_ready, timeout=60, what="the HSM issuer Ready in the Pod"))
        except AssertionError:
            found = node_kubectl.get("mtlsissuer", "in-pod-hsm", namespace)
            logs = pod_logs(node_kubectl, pod["metadata"]["name"])[-3000:]
            raise AssertionError(f"{condition(found)}\n{logs}") from None
        assert "PKCS#11 key label 'issuing' on token label 'pod-ca'" in ready["message"], ready

        spec = {"duration": "2160h", "signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "in-pod-hsm"}}}
        node_kubectl.apply(certificate_manifest("through-pod-hsm", spec=spec), namespace)
        wait_ready(node_kubectl, namespace, "through-pod-hsm", timeout=90)
        data = node_kubectl.secret_data("through-pod-hsm-tls", namespace)
        assert data is not None
        (tmp_path / "leaf.crt").write_bytes(data["tls.crt"])
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca_file), "-purpose", "sslclient", str(tmp_path / "leaf.crt")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        install(node_plane)  # back to the session's image and values for the tests after this one
        wait_pods_ready(node_kubectl, 1, exclude=before | {pod["metadata"]["name"]}, timeout=180)
        for kind, name in (("secret", "softhsm-token"), ("configmap", "softhsm-conf")):
            node_kubectl.run("delete", kind, name, "-n", SYSTEM, "--ignore-not-found")
