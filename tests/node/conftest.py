"""The node suite's session: a control plane with a real node (nodeplane.py) and the images built by the project.

Opt-in by nature (root on Linux, containerd and friends from `make deps`). Where it cannot run it is skipped with the
reason, except when MTLS_REQUIRE_NODE=1 (CI): then a missing node fails the run instead of hiding the suite.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import nodeplane
import pytest

from harness.cluster import Kubectl, helm
from harness.images import BuiltImages, build_images, remove_storage
from harness.nodechart import RELEASE, SYSTEM, install, wait_pods_ready


@pytest.fixture(scope="session")
def host_sysctls_before() -> dict[str, str]:
    """The machine's kernel settings before any node plane of this session started."""
    return {setting: nodeplane.host_sysctl(setting) for setting in nodeplane.KUBELET_SYSCTLS}


@pytest.fixture(scope="session")
def node_plane(
    host_sysctls_before: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[nodeplane.NodePlane]:
    reason = nodeplane.supported()
    if reason:
        if os.environ.get("MTLS_REQUIRE_NODE") == "1":
            pytest.fail(f"the node suite must run here (MTLS_REQUIRE_NODE=1) but cannot: {reason}")
        pytest.skip(f"node suite skipped: {reason}")
    directory = tmp_path_factory.mktemp("node-plane")
    plane = nodeplane.start(directory)
    state = (plane.directory / nodeplane.STATE_FILE).read_text()
    try:
        yield plane
    finally:
        netns, cgroup_root = json.loads(state)["netns"], json.loads(state)["cgroup_root"]
        nodeplane.stop(plane.directory)
        left = nodeplane.leftovers(plane.directory, netns, cgroup_root)
        assert not left, f"the node plane left things behind: {left}"


@pytest.fixture(scope="session")
def node_images(node_plane: nodeplane.NodePlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImages]:
    workdir = tmp_path_factory.mktemp("images")
    try:
        images = build_images(workdir)
        node_plane.load_image(images.operator_archive)
        node_plane.load_image(images.clients_archive)
        yield images
    finally:
        remove_storage(workdir)


@pytest.fixture(scope="session")
def node_kubectl(node_plane: nodeplane.NodePlane) -> Kubectl:
    return Kubectl(node_plane.kubeconfig)


@pytest.fixture(scope="session")
def release(node_plane: nodeplane.NodePlane, node_images: BuiltImages, node_kubectl: Kubectl) -> Iterator[None]:
    """The chart installed from this tree, as users install it, in a namespace enforcing Pod Security restricted."""
    node_kubectl.run("create", "namespace", SYSTEM)
    node_kubectl.run("label", "namespace", SYSTEM, "pod-security.kubernetes.io/enforce=restricted",
                     "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip
    install(node_plane)
    wait_pods_ready(node_kubectl, 1)
    try:
        yield
    finally:
        helm(node_plane.kubeconfig, "uninstall", RELEASE, "-n", SYSTEM, "--wait", check=False)


@pytest.fixture
def namespace(node_kubectl: Kubectl) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    node_kubectl.run("create", "namespace", name)
    return name
