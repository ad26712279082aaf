"""Session fixtures: a real control plane (etcd + kube-apiserver), the CRD, and the operator really running."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import controlplane
from harness.cluster import (
    DEFAULT_ARGS,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    install_session_admission,
    running_prometheus,
)
from harness.softhsm import SessionHSM, find_module


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    plane = controlplane.start(tmp_path_factory.mktemp("cluster"))
    try:
        yield plane
    finally:
        controlplane.stop(plane.directory)


@pytest.fixture(scope="session")
def kubectl(cluster: controlplane.ControlPlane) -> Kubectl:
    kube = Kubectl(cluster.kubeconfig)
    kube.run("apply", "-f", str(ROOT / "manifests" / "crd"))
    kube.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
    # As `helm install` does where the cluster serves it: requesters recorded at admission (cluster issuers need one).
    install_session_admission(kube)
    return kube


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SessionHSM:
    """The session's PKCS#11 tokens (SoftHSM2), made before the operator starts: the operator loads the library
    with this configuration, as a Pod would from its mounted SOFTHSM2_CONF."""
    module = find_module()
    if module is None:
        pytest.fail("SoftHSM2 is not installed: make deps installs it")
    return SessionHSM.create(tmp_path_factory.mktemp("softhsm"), module)


@pytest.fixture(scope="session")
def operator(
    cluster: controlplane.ControlPlane,
    kubectl: Kubectl,
    softhsm: SessionHSM,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("operator-logs"),
        [*DEFAULT_ARGS, *softhsm.operator_args()],
        env={"SOFTHSM2_CONF": str(softhsm.hsm.conf)},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def namespace(kubectl: Kubectl) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    return name


@pytest.fixture
def partner(tmp_path: Path) -> Partner:
    return Partner(tmp_path / "partner")


@pytest.fixture
def prometheus(operator: OperatorProcess, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the session's operator; yields its base URL."""
    with running_prometheus([f"127.0.0.1:{operator.metrics_port}"], tmp_path) as url:
        yield url
