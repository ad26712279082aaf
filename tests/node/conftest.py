"""The node suite's session: a control plane with a real node (nodeplane.py) and the images built by the project.

Opt-in by nature (root on Linux, containerd and friends from `make deps`). Where it cannot run it is skipped with the
reason, except when MTLS_REQUIRE_NODE=1 (CI): then a missing node fails the run instead of hiding the suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import nodeplane
import pytest

from harness.cluster import Kubectl
from harness.images import BuiltImages, build_images, remove_storage


@pytest.fixture(scope="session")
def node_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nodeplane.NodePlane]:
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
