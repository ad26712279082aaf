"""The node plane keeps the machine untouched: the kubelet's kernel settings stay in files, nothing routes out of
the node's namespace, and a test run killed with SIGKILL leaves no process, cgroup, mount or namespace behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nodeplane

from harness.cluster import wait_for

# The values the kubelet sets (pkg/kubelet/cm: setupKernelTunables) when they differ.
KUBELET_WANTS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}


def test_the_kubelets_kernel_settings_land_in_files_not_in_the_machine(
    node_plane: nodeplane.NodePlane, host_sysctls_before: dict[str, str]
) -> None:
    seen_by_node = nodeplane.sysctl_copies(node_plane.directory)
    for setting, wanted in KUBELET_WANTS.items():
        assert seen_by_node[setting].strip() == wanted, f"the kubelet did not write {setting}: {seen_by_node}"
        assert nodeplane.host_sysctl(setting) == host_sysctls_before[setting], f"{setting} reached the machine"


def test_nothing_routes_out_of_the_nodes_namespace(node_plane: nodeplane.NodePlane) -> None:
    routes = subprocess.run(["ip", "-n", node_plane.netns, "route", "show"], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()  # fmt: skip
    assert routes == [f"{nodeplane.POD_CIDR} dev cni0 proto kernel scope link src {nodeplane.NODE_IP}"], routes
    host_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert nodeplane.NODE_IP not in host_addresses, "the node's address leaked onto the machine"


def test_a_killed_test_run_leaves_nothing_behind(tmp_path: Path, node_plane: nodeplane.NodePlane) -> None:
    # A second plane, started by a process that is then killed with SIGKILL (no finally, no atexit).
    directory = tmp_path / "killed"
    starter = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import nodeplane; "
        "nodeplane.start(__import__('pathlib').Path(sys.argv[2])); print('up', flush=True); time.sleep(3600)"
    )
    here = Path(nodeplane.__file__).parent
    proc = subprocess.Popen([sys.executable, "-c", starter, str(here), str(directory)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        state = json.loads((directory / nodeplane.STATE_FILE).read_text())
        assert nodeplane.leftovers(directory, state["netns"], state["cgroup_root"]), "the plane did not come up"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    start = time.monotonic()
    left = wait_for(
        lambda: not nodeplane.leftovers(directory, state["netns"], state["cgroup_root"]) or None,
        timeout=60,
        what="the watchdog removing the killed run's plane",
    )
    print(f"watchdog cleaned up {time.monotonic() - start:.1f} s after the kill")
    assert left
    mounts = Path("/proc/mounts").read_text()
    assert str(directory) not in mounts
