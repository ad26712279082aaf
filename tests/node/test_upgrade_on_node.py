"""The upgrade from the previous release as users run it on a cluster: the previous release's image (built from its own,
unmodified Dockerfile) and chart running as a Pod, certificates of every kind, then `helm upgrade --take-ownership` to
HEAD's chart and image. The Pod is replaced; no key, certificate or published CSR changes, and HEAD's operator keeps
issuing. (tests/e2e/test_upgrade.py covers the same with the operator as a process and more certificate states.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import nodeplane
import pytest

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    Partner,
    certificate_manifest,
    create_ca_secret,
    helm,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
)
from harness.images import OPERATOR_IMAGE, OPERATOR_TAG, BuiltImages, build_release_image
from harness.nodechart import CHART, RELEASE, SYSTEM, key_fingerprints, operator_pods, pod_logs, wait_pods_ready
from harness.releases import checkout, previous_release
from harness.servicemonitor import prometheus_in_netns, scrape_config, servicemonitor_crd
from mtls_operator import __version__ as HEAD_VERSION

NS = "apps"


@pytest.fixture(scope="module")
def upgrade_plane(node_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[nodeplane.NodePlane]:
    """A node plane of its own: the session's release must not compete with the previous release's operator."""
    plane = nodeplane.start(tmp_path_factory.mktemp("upgrade-plane"))
    state = json.loads((plane.directory / nodeplane.STATE_FILE).read_text())
    try:
        yield plane
    finally:
        nodeplane.stop(plane.directory)
        assert not nodeplane.leftovers(plane.directory, state["netns"], state["cgroup_root"])


def scraped_by_its_servicemonitor(
    plane: nodeplane.NodePlane, kubectl: Kubectl, token_file: Path, workdir: Path, version: str
) -> bool:
    """A real Prometheus, configured from the live ServiceMonitor, scrapes the operator's Pod: `up` is 1 and the
    operator's build_info names `version`."""
    config = scrape_config(kubectl, SYSTEM, RELEASE, token_file)
    assert config["scrape_configs"][0]["static_configs"][0]["targets"], "the ServiceMonitor matches no endpoint"
    with prometheus_in_netns(plane, config, workdir) as query:

        def scraping() -> bool:
            up = query("up")
            info = query("mtls_operator_build_info")
            return (
                bool(up)
                and all(s["value"][1] == "1" for s in up)
                and any(s["metric"].get("version") == version for s in info)
            )

        wait_for(scraping, timeout=60, interval=1, what=f"Prometheus scrapes {version} through its ServiceMonitor")
    return True


def csr_of(kubectl: Kubectl, name: str) -> str:
    found = wait_certificate(kubectl, NS, name, lambda o: (o.get("status") or {}).get("csr"), "status.csr", 60)
    return str(found["status"]["csr"])


def test_helm_upgrade_from_the_previous_release_replaces_the_pod_and_keeps_every_key(
    upgrade_plane: nodeplane.NodePlane, node_images: BuiltImages, tmp_path: Path
) -> None:
    release = previous_release()
    old = checkout(release, tmp_path / "previous", "pyproject.toml", "README.md", "operator", "Dockerfile", "charts",
                   "manifests")  # fmt: skip
    archive = build_release_image(node_images, old, f"{OPERATOR_IMAGE}:{release.version}", tmp_path / "previous.tar")
    upgrade_plane.load_image(archive)
    upgrade_plane.load_image(node_images.operator_archive)
    kubectl = Kubectl(upgrade_plane.kubeconfig)
    kubectl.run("create", "namespace", SYSTEM)
    kubectl.run("label", "namespace", SYSTEM, "pod-security.kubernetes.io/enforce=restricted")
    # prometheus-operator's real ServiceMonitor CRD: the chart's ServiceMonitor is created and validated by it.
    kubectl.run("create", "-f", str(servicemonitor_crd()))
    kubectl.run("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s")
    helm(upgrade_plane.kubeconfig, "install", RELEASE, str(old / "charts" / "mtls-operator"), "-n", SYSTEM,
         "--set", f"image.repository={OPERATOR_IMAGE}", "--set", f"image.tag={release.version}",
         "--set", "image.pullPolicy=Never", "--set", "serviceMonitor.enabled=true")  # fmt: skip
    [previous_pod] = wait_pods_ready(kubectl, 1)
    assert previous_pod["spec"]["containers"][0]["image"] == f"{OPERATOR_IMAGE}:{release.version}"
    # Prometheus' own ServiceAccount: its token is what a ServiceMonitor's bearerTokenFile presents.
    kubectl.run("create", "namespace", "monitoring")
    kubectl.run("create", "serviceaccount", "prometheus", "-n", "monitoring")
    token_file = tmp_path / "prometheus-token"
    token_file.write_text(kubectl.run("create", "token", "prometheus", "-n", "monitoring", "--duration=1h").stdout)
    assert scraped_by_its_servicemonitor(upgrade_plane, kubectl, token_file, tmp_path / "before", release.version)

    # --- the previous release at work, in its Pod --------------------------------------------------------------
    kubectl.run("create", "namespace", NS)
    partner = Partner(tmp_path / "partner")
    create_ca_secret(kubectl, NS, partner)
    kubectl.apply(certificate_manifest("internal", spec=CA_SIGNER), NS)
    kubectl.apply(certificate_manifest("signed"), NS)
    kubectl.apply(certificate_manifest("waiting"), NS)
    put_signed(kubectl, NS, "signed-signed", {"tls.crt": partner.sign(csr_of(kubectl, "signed"))})
    for name in ("internal", "signed"):
        wait_ready(kubectl, NS, name, timeout=90)
    waiting_csr = csr_of(kubectl, "waiting")
    keys = key_fingerprints(kubectl, NS)
    certificates = {n: kubectl.secret_data(f"{n}-tls", NS)["tls.crt"] for n in ("internal", "signed")}

    # --- helm upgrade to HEAD's chart and image ------------------------------------------------------------------
    # As the CHANGELOG's upgrade notes say: /metrics moved behind RBAC, so Prometheus is named a metrics reader.
    helm(
        upgrade_plane.kubeconfig, "upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--take-ownership",
        "--set", f"image.repository={OPERATOR_IMAGE}", "--set", f"image.tag={OPERATOR_TAG}",
        "--set", "image.pullPolicy=Never", "--set", "serviceMonitor.enabled=true",
        "--set", "metrics.readers[0].kind=ServiceAccount", "--set", "metrics.readers[0].name=prometheus",
        "--set", "metrics.readers[0].namespace=monitoring",
    )  # fmt: skip
    [pod] = wait_pods_ready(kubectl, 1, exclude={previous_pod["metadata"]["name"]}, timeout=180)
    assert pod["spec"]["containers"][0]["image"] == f"{OPERATOR_IMAGE}:{OPERATOR_TAG}"
    kubectl.apply(certificate_manifest("after-upgrade", spec=CA_SIGNER), NS)
    wait_ready(kubectl, NS, "after-upgrade", timeout=90)
    for name in ("internal", "signed"):
        obj = wait_ready(kubectl, NS, name, timeout=60)
        assert obj["status"]["revision"] == 1, f"{name} was re-issued by the upgrade"
        assert kubectl.secret_data(f"{name}-tls", NS)["tls.crt"] == certificates[name]
    assert csr_of(kubectl, "waiting") == waiting_csr, "the CSR the partner has must stay the one published"
    now = key_fingerprints(kubectl, NS)
    assert {name: now[name] for name in keys} == keys, "a key changed across the upgrade"
    assert "ERROR" not in pod_logs(kubectl, pod["metadata"]["name"])
    assert [p["metadata"]["name"] for p in operator_pods(kubectl)] == [pod["metadata"]["name"]]
    # The ServiceMonitor, as upgraded (https, bearer token, TLS settings), still gets Prometheus its metrics.
    monitor = kubectl.get("servicemonitor", RELEASE, SYSTEM)
    assert monitor is not None and monitor["spec"]["endpoints"][0]["scheme"] == "https"
    assert scraped_by_its_servicemonitor(upgrade_plane, kubectl, token_file, tmp_path / "after", HEAD_VERSION)
