"""A control plane with one real node: kubelet, containerd, runc and kube-proxy, all inside a network namespace.

Opt-in (root on Linux): the plain plane of controlplane.py stays what most tests use. This one runs Pods:

    python tests/controlplane/nodeplane.py up --dir .cluster-node     # control plane + node, Ready; writes kubeconfig
    python tests/controlplane/nodeplane.py down --dir .cluster-node   # removes every process, mount, cgroup, netns
    python tests/controlplane/nodeplane.py down --all                 # every node plane of this machine (stale ones)

What keeps the machine untouched (the host is shared):
- **Network**: one namespace per plane (`ip netns add mtls-node-…`), a bridge `cni0` holding the node IP, the Pod
  range and every iptables rule of kube-proxy and CNI. Nothing in it routes out; the host reaches the apiserver only
  through a loopback forwarder (forward.py).
- **Mounts and sysctls**: the node's daemons share one private mount namespace (held by a `sleep` process) with
  tmpfs over /run and /var/log, and regular files bind-mounted over the kernel settings the kubelet writes
  (vm.overcommit_memory, kernel.panic, ...): its writes land in those files, not in the machine's kernel.
- **cgroups**: the kubelet's `cgroupRoot` is `/mtls-node-…`, so every Pod's cgroup sits below it, in every hierarchy.
- **Teardown by PID**: the daemons, every process left in that mount namespace (containerd's shims) and every process
  in those cgroups are killed, the cgroups removed, the namespaces released, the state deleted. A watchdog process
  does the same when the process that started the plane dies (a killed test run), and `up` sweeps stale planes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import controlplane
from controlplane import ControlPlane, Network

HERE = Path(__file__).resolve().parent
STATE_FILE = "nodeplane.json"
REGISTRY = Path("/run/mtls-operator-test-nodes")  # one file per live plane, for `down --all` and sweeps
NODE_NAME = "node-1"
NODE_IP = "10.244.0.1"  # the bridge's address: the node's InternalIP and the Pods' gateway
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service
PAUSE_IMAGE = "localhost/mtls-operator-test/pause:3.10"
# The kernel settings the kubelet writes at start (pkg/kubelet/cm/container_manager_linux.go setupKernelTunables).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def supported() -> str | None:
    """None when a node plane can run here, else why not (the suite says it plainly and CI fails on it)."""
    if sys.platform != "linux":
        return "a node needs Linux"
    if os.geteuid() != 0:
        return "a node needs root (network namespaces, mounts, cgroups)"
    missing = [
        tool
        for tool in ("containerd", "runc", "ctr", "iptables", "ip", "nsenter", "unshare")
        if shutil.which(tool) is None
    ]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        return f"missing {', '.join(missing)} (make deps installs them)"
    return None


def build_binaries() -> Path:
    out = subprocess.run([str(HERE / "build-node.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True)


@dataclass
class NodePlane:
    """A running plane with a node: `control` is the control plane (kubeconfig, server), `directory` its state."""

    control: ControlPlane
    directory: Path
    netns: str

    @property
    def kubeconfig(self) -> Path:
        return self.control.kubeconfig

    @property
    def containerd_socket(self) -> Path:
        return self.directory / "containerd" / "containerd.sock"

    def load_image(self, archive: Path) -> None:
        """Imports a docker-archive or OCI archive into the node's containerd (the kubelet's `k8s.io` namespace)."""
        holder = json.loads((self.directory / STATE_FILE).read_text())["holder"]
        done = _run(
            *_in_node(holder),
            "ctr",
            f"--address={self.containerd_socket}",
            "-n",
            "k8s.io",
            "images",
            "import",
            str(archive),
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ctr images import {archive}: {done.stderr.strip()}")

    def in_netns(self, *cmd: str) -> list[str]:
        """A command line that runs `cmd` inside the plane's network namespace (to reach a Pod or Service IP)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *cmd]


def _in_node(holder: int) -> list[str]:
    return ["nsenter", f"--target={holder}", "--mount", "--net", "--"]


def _api(plane: ControlPlane, method: str, path: str, body: dict | None = None) -> dict:
    pki = plane.directory / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{plane.server}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


# --- network namespace -------------------------------------------------------------------------------------------


def create_netns(name: str) -> None:
    _run("ip", "netns", "add", name)
    for cmd in (
        ("link", "set", "lo", "up"),
        ("link", "add", "cni0", "type", "bridge"),
        ("addr", "add", f"{NODE_IP}/24", "dev", "cni0"),
        ("link", "set", "cni0", "up"),
    ):
        _run("ip", "-n", name, *cmd)
    # Per-namespace settings: routing between Pods and Service traffic through iptables on the bridge.
    for setting in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
        _run("nsenter", f"--net=/run/netns/{name}", "--", "sysctl", "-q", "-w", setting)


# --- the node's mount namespace ----------------------------------------------------------------------------------


def host_sysctl(setting: str) -> str:
    """The machine's own value (read outside the node's mount namespace)."""
    return Path(f"/proc/sys/{setting}").read_text()


def sysctl_copies(directory: Path) -> dict[str, str]:
    """What the node's daemons see (and the kubelet wrote) for each setting: the files bind-mounted over them."""
    return {s: (directory / "sysctl" / s.replace("/", ".")).read_text() for s in KUBELET_SYSCTLS}


def _start_holder(directory: Path, netns: str) -> int:
    """A `sleep` owning the node's mount namespace: private /run and /var/log, the kubelet's sysctls in files."""
    sysctl_dir = directory / "sysctl"
    sysctl_dir.mkdir()
    lines = ["set -e", "mount -t tmpfs -o mode=0755 tmpfs /run", "mount -t tmpfs -o mode=0755 tmpfs /var/log"]
    for setting in KUBELET_SYSCTLS:
        copy = sysctl_dir / setting.replace("/", ".")
        copy.write_text(host_sysctl(setting))
        lines.append(f"mount --bind {copy} /proc/sys/{setting}")
    lines.append(f"touch {directory / 'holder.ready'}")
    lines.append("exec sleep infinity")
    script = directory / "holder.sh"
    script.write_text("\n".join(lines) + "\n")
    cmd = [
        "nsenter",
        f"--net=/run/netns/{netns}",
        "--",
        "unshare",
        "--mount",
        "--propagation=slave",
        "--",
        "/bin/sh",
        str(script),
    ]
    pid = controlplane._spawn(directory, "holder", cmd)
    deadline = time.monotonic() + 10
    while not (directory / "holder.ready").exists():
        if time.monotonic() > deadline or not controlplane._alive(pid):
            raise RuntimeError(f"the node's mount namespace did not come up: {(directory / 'holder.log').read_text()}")
        time.sleep(0.05)
    # nsenter and unshare exec, and the script execs sleep: the spawned PID is the namespace's holder.
    return pid


# --- images ------------------------------------------------------------------------------------------------------


def oci_archive(path: Path, reference: str, files: dict[str, tuple[bytes, int]], config: dict) -> None:
    """Writes a one-layer OCI image archive (for `ctr images import`) from {path: (bytes, mode)}."""
    layer_raw = io.BytesIO()
    with tarfile.open(fileobj=layer_raw, mode="w") as layer:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            layer.addfile(info, io.BytesIO(data))
    diff_id = hashlib.sha256(layer_raw.getvalue()).hexdigest()
    layer_gz = gzip.compress(layer_raw.getvalue(), mtime=0)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
    }
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [blob(layer_gz, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }
    manifest_descriptor = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_descriptor["annotations"] = {"org.opencontainers.image.ref.name": reference}
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    with tarfile.open(path, mode="w") as archive:
        members = {
            "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
            "index.json": json.dumps(index).encode(),
        }
        members.update({f"blobs/sha256/{digest}": data for digest, data in blobs.items()})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))


def pause_archive(binaries: Path, directory: Path) -> Path:
    """The sandbox image, from the module's pause.c (nothing to pull it from here): user 65535, /pause."""
    path = directory / "pause.tar"
    oci_archive(
        path,
        PAUSE_IMAGE,
        {"pause": ((binaries / "pause").read_bytes(), 0o755)},
        {"User": "65535:65535", "Entrypoint": ["/pause"]},
    )
    return path


# --- configuration -----------------------------------------------------------------------------------------------


def _containerd_config(directory: Path) -> Path:
    base = directory / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{base / "containerd.sock"}"
[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE on this kind of machine: never lower a container's OOM score below containerd's own.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc")}"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{directory / "cni"}"
"""
    (directory / "cni").mkdir()
    conflist = {
        "cniVersion": "1.0.0",
        "name": "mtls-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the namespace: no NAT to an outside
                "hairpinMode": True,  # a Pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],  # Service IPs via the node; nothing routes past it
                    "dataDir": str(directory / "cni-ipam"),
                },
            }
        ],
    }
    (directory / "cni" / "10-mtls-node.conflist").write_text(json.dumps(conflist, indent=2))
    path = base / "config.toml"
    base.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _kubelet_config(directory: Path, cgroup_root: str) -> Path:
    pki = directory / "control" / "pki"
    (directory / "resolv.conf").write_text("# no cluster DNS in the test plane\n")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this kind of machine is cgroup v1 (hybrid); the kubelet warns (KEP 5573)
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},  # the apiserver's kubelet client certificate
        },
        "authorization": {"mode": "AlwaysAllow"},  # only holders of the plane CA's certificates get this far
        "podCIDR": POD_CIDR,
        "resolvConf": str(directory / "resolv.conf"),
        "failSwapOn": False,
        # Test machines run with little free disk: evict on nothing but real exhaustion, and never GC images
        # (they cannot be pulled again).
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # Mounted Secrets refresh within syncFrequency plus the watch's delay: 10 s here (1 min by default).
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        "protectKernelDefaults": False,
        "containerRuntimeEndpoint": f"unix://{directory / 'containerd' / 'containerd.sock'}",
    }
    path = directory / "kubelet-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


# --- start / stop ------------------------------------------------------------------------------------------------


def start(directory: Path, *, audit: bool = False) -> NodePlane:
    """Starts a control plane and one node inside a fresh network namespace, and waits for the node to be Ready."""
    reason = supported()
    if reason:
        raise RuntimeError(f"no node plane here: {reason}")
    sweep()
    controlplane.build_binaries()
    node_binaries = build_binaries()
    directory = directory.resolve()
    stop(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    suffix = secrets.token_hex(3)
    netns = f"mtls-node-{suffix}"
    cgroup_root = f"/mtls-node-{suffix}"
    state: dict = {"netns": netns, "cgroup_root": cgroup_root, "owner": os.getpid(), "daemons": [], "holder": None}
    REGISTRY.mkdir(parents=True, exist_ok=True)
    (REGISTRY / f"{netns}.json").write_text(json.dumps({"directory": str(directory)}))
    _save(directory, state)
    started = time.monotonic()
    try:
        create_netns(netns)
        network = Network(
            netns=netns,
            node_ip=NODE_IP,
            service_ip=SERVICE_IP,
            service_cidr=SERVICE_CIDR,
            scheduler=node_binaries / "kube-scheduler",
        )
        control = controlplane.start(directory / "control", audit=audit, network=network)
        state["watchdog"] = controlplane._spawn(
            directory,
            "watchdog",
            [sys.executable, str(Path(__file__).resolve()), "watchdog", f"--dir={directory}", f"--owner={os.getpid()}"],
        )
        _save(directory, state)
        _bind_node_roles(control)
        pki = control.directory / "pki"
        controlplane.issue_client_certificate(pki, "kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        controlplane.issue_client_certificate(pki, "kube-proxy", "system:kube-proxy", "system:node-proxiers")
        controlplane.write_kubeconfig(directory / "kubelet.kubeconfig", control.server, pki, user="kubelet")
        controlplane.write_kubeconfig(directory / "kube-proxy.kubeconfig", control.server, pki, user="kube-proxy")
        holder = _start_holder(directory, netns)
        state["holder"] = holder
        _save(directory, state)
        node = NodePlane(control=control, directory=directory, netns=netns)
        containerd_config = _containerd_config(directory)
        _daemon(directory, state, "containerd", ["containerd", f"--config={containerd_config}"])
        _wait_for(lambda: node.containerd_socket.exists(), 30, "containerd's socket", directory / "containerd.log")
        node.load_image(pause_archive(node_binaries, directory))
        kubelet_config = _kubelet_config(directory, cgroup_root)
        _create_cgroups(cgroup_root)
        _daemon(
            directory,
            state,
            "kubelet",
            [
                str(node_binaries / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={directory / 'kubelet.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--root-dir={directory / 'kubelet'}",
                f"--cert-dir={directory / 'kubelet-pki'}",
                "--v=1",
            ],
        )
        _daemon(
            directory,
            state,
            "kube-proxy",
            [
                str(node_binaries / "kube-proxy"),
                f"--kubeconfig={directory / 'kube-proxy.kubeconfig'}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_CIDR}",
                # nf_conntrack_max is machine-wide: leave it alone (the namespace's own settings are fine).
                "--conntrack-max-per-core=0",
                "--metrics-bind-address=127.0.0.1:10249",
                "--healthz-bind-address=127.0.0.1:10256",
                "--v=1",
            ],
        )
        _wait_node_ready(control, directory, state)
    except Exception:
        stop(directory)
        raise
    (directory / "ready-seconds").write_text(f"{time.monotonic() - started:.2f}\n")
    return NodePlane(control=control, directory=directory, netns=netns)


def _save(directory: Path, state: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state))


def _daemon(directory: Path, state: dict, name: str, cmd: list[str]) -> None:
    state["daemons"].append(controlplane._spawn(directory, name, _in_node(state["holder"]) + cmd))
    _save(directory, state)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise TimeoutError(f"{what} not there after {timeout}s; {log}:\n{tail}")
        time.sleep(0.1)


def _bind_node_roles(control: ControlPlane) -> None:
    """The apiserver authorizes with RBAC only (no Node authorizer): the kubelet gets system:node via its group."""
    _api(
        control,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "mtls-test-plane:nodes"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
        },
    )


def _wait_node_ready(control: ControlPlane, directory: Path, state: dict, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = "not registered"
    while time.monotonic() < deadline:
        for pid in state["daemons"]:
            if not controlplane._alive(pid):
                raise RuntimeError(f"node daemon {pid} exited; see the logs in {directory}")
        try:
            node = _api(control, "GET", f"/api/v1/nodes/{NODE_NAME}")
        except Exception as exc:  # not registered yet
            last = str(exc)
        else:
            ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
            tainted = any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints", []))
            if ready and ready[0]["status"] == "True" and not tainted:
                return
            last = json.dumps({"ready": ready, "taints": node["spec"].get("taints", [])})
        time.sleep(0.2)
    raise TimeoutError(f"node {NODE_NAME} not Ready after {timeout}s: {last}; logs in {directory}")


def _processes_in_mount_ns(holder: int) -> list[int]:
    try:
        target = os.readlink(f"/proc/{holder}/ns/mnt")
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != holder:
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "mnt") == target:
                    found.append(int(entry.name))
    return found


def _cgroup_dirs(cgroup_root: str) -> list[Path]:
    """The plane's cgroup in every hierarchy that has one (v1 controllers and the unified one), deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        top = hierarchy / cgroup_root.lstrip("/")
        if top.is_dir():
            # Bottom-up; the kubelet may be removing cgroups meanwhile (os.walk skips what vanished).
            found.extend(Path(path) for path, _, _ in os.walk(top, topdown=False))
    return found


def _create_cgroups(cgroup_root: str) -> None:
    """The kubelet wants its cgroupRoot to exist in every hierarchy; cpuset's needs the parent's CPUs and nodes."""
    for hierarchy in CGROUP_ROOT.iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        top = hierarchy / cgroup_root.lstrip("/")
        top.mkdir(exist_ok=True)
        for inherited in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / inherited).exists() and not (top / inherited).read_text().strip():
                (top / inherited).write_text((hierarchy / inherited).read_text())


def _processes_in_cgroups(cgroup_root: str) -> set[int]:
    pids: set[int] = set()
    for directory in _cgroup_dirs(cgroup_root):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
    return pids


def stop(directory: Path, timeout: float = 20.0) -> None:
    """Removes the plane in `directory`: processes (by PID), cgroups, mounts (with their namespace), the netns."""
    directory = directory.resolve()
    state_file = directory / STATE_FILE
    if not state_file.exists():
        return
    with open(directory / "stop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not state_file.exists():  # the watchdog (or the fixture) finished first
            return
        state = json.loads(state_file.read_text())
        daemons = list(reversed(state.get("daemons", [])))  # kube-proxy, kubelet, then containerd
        for pid in daemons:
            controlplane._signal_group(pid, signal.SIGTERM)
        _wait_gone(daemons, timeout / 2)
        holder = state.get("holder")
        for _ in range(5):  # shims start no new processes once containerd is gone; a few rounds catch stragglers
            leftovers = set(daemons) | _processes_in_cgroups(state["cgroup_root"])
            if holder:
                leftovers |= set(_processes_in_mount_ns(holder))
            leftovers.discard(os.getpid())
            leftovers = {pid for pid in leftovers if controlplane._alive(pid)}
            if not leftovers:
                break
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait_gone(list(leftovers), 5)
        # A cgroup whose last process was just killed can stay busy for a moment (EBUSY): retry for a few seconds
        # (a teardown once left a container's cgroup behind).
        deadline = time.monotonic() + 5
        while True:
            busy = []
            for cgroup in _cgroup_dirs(state["cgroup_root"]):
                try:
                    cgroup.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    busy.append(cgroup)
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if holder:  # the last process of the mount namespace: its tmpfs and bind mounts go with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder, signal.SIGKILL)
            _wait_gone([holder], 5)
        controlplane.stop(directory / "control")
        _run("ip", "netns", "del", state["netns"], check=False)
        watchdog = state.get("watchdog")
        if watchdog and watchdog != os.getpid():
            controlplane._signal_group(watchdog, signal.SIGKILL)
            controlplane._reap([watchdog])
        with contextlib.suppress(FileNotFoundError):
            (REGISTRY / f"{state['netns']}.json").unlink()
        state_file.unlink()


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(controlplane._alive(pid) for pid in pids):
        controlplane._reap(pids)
        time.sleep(0.05)
    controlplane._reap(pids)


def leftovers(directory: Path, netns: str, cgroup_root: str) -> list[str]:
    """What a stopped plane left behind (tests assert this is empty): netns, cgroups, registry entry, processes."""
    found = []
    if netns in _run("ip", "netns", "list").stdout.split():
        found.append(f"network namespace {netns}")
    found += [f"cgroup {path}" for path in _cgroup_dirs(cgroup_root)]
    if (REGISTRY / f"{netns}.json").exists():
        found.append(f"registry entry {netns}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(directory) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(f"process {entry.name}: {(entry / 'cmdline').read_bytes()[:120]!r}")
    return found


def sweep() -> None:
    """Removes node planes whose starting process is gone (a test run killed before its watchdog could act)."""
    if not REGISTRY.exists():
        return
    for entry in REGISTRY.glob("*.json"):
        directory = Path(json.loads(entry.read_text())["directory"])
        state_file = directory / STATE_FILE
        if not state_file.exists():
            entry.unlink(missing_ok=True)
            _run("ip", "netns", "del", entry.stem, check=False)
            continue
        owner = json.loads(state_file.read_text()).get("owner")
        if owner is not None and not controlplane._alive(owner):  # None: started by `up`, stopped by `down`
            stop(directory)


def watchdog(directory: Path, owner: int) -> None:
    """Tears the plane down when its owner dies without doing so (kill -9 of the test run)."""
    while (directory / STATE_FILE).exists():
        if not controlplane._alive(owner):
            stop(directory)
            return
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "up", "down", "watchdog"])
    parser.add_argument("--dir", default=".cluster-node", type=Path)
    parser.add_argument("--all", action="store_true", help="down: every node plane of this machine")
    parser.add_argument("--owner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build_binaries())
    elif args.command == "up":
        node = start(args.dir)
        # `up` from a shell: the plane outlives this process, so the watchdog must not tear it down.
        state = json.loads((node.directory / STATE_FILE).read_text())
        controlplane._signal_group(state.pop("watchdog"), signal.SIGKILL)
        state["owner"] = None
        _save(node.directory, state)
        seconds = (node.directory / "ready-seconds").read_text().strip()
        print(f"node plane ready in {seconds}s; KUBECONFIG={node.kubeconfig}")
    elif args.command == "watchdog":
        watchdog(args.dir.resolve(), args.owner)
    elif args.all:
        for entry in REGISTRY.glob("*.json") if REGISTRY.exists() else ():
            stop(Path(json.loads(entry.read_text())["directory"]))
        print("every node plane stopped")
    else:
        stop(args.dir)
        print("node plane stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
