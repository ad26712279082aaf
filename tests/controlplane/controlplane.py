"""Start and stop a real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).

Like controller-runtime's envtest, plus the controller manager: the garbage collector (owner references cascade),
the namespace controller, Deployments/ReplicaSets (Pods are created; with no kubelet they stay Pending), and the
certificates controllers (approval, the kubernetes.io/* signers with the cluster CA, the 24 h/1 h CSR cleaner).

Used by the pytest session fixture and by `make cluster-up` / `make cluster-down`:

    python tests/controlplane/controlplane.py up --dir .cluster     # starts in the background, writes kubeconfig
    python tests/controlplane/controlplane.py down --dir .cluster   # stops it; no process is left behind

The binaries are built once per machine by build.sh and cached outside the repository.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
STATE_FILE = "controlplane.json"


def build_binaries() -> Path:
    """Builds (or finds in the cache) etcd, kube-apiserver and kube-controller-manager; returns their directory."""
    out = subprocess.run([str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in ("localhost", *server_names)]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *server_ips)]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


# What in-cluster clients dial: the `kubernetes` Service's names (its IP and the node's come from the network).
IN_CLUSTER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def make_pki(pki: Path, network: Network | None = None) -> None:
    """CA, apiserver serving cert, admin client cert (group system:masters) and service-account signing keys.

    The CA's key is kept too: kube-controller-manager signs `kubernetes.io/kube-apiserver-client` CSRs with it, so
    those certificates authenticate to this apiserver (it trusts the same CA for client certificates). With a node
    network the serving certificate also names what Pods dial: the Service IP, the node IP and the Service's names.
    """
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtls-operator-test-ca")])
    ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        server_key,
        ca_name,
        ca_key,
        server=True,
        server_names=IN_CLUSTER_NAMES if network else (),
        server_ips=(network.service_ip, network.node_ip) if network else (),
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = _issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
            ]
        ),
        admin_key,
        ca_name,
        ca_key,
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    _write(pki / "ca.crt", ca_cert.public_bytes(pem))
    _write(pki / "ca.key", _key_pem(ca_key))
    _write(pki / "apiserver.crt", server_cert.public_bytes(pem))
    _write(pki / "apiserver.key", _key_pem(server_key))
    _write(pki / "admin.crt", admin_cert.public_bytes(pem))
    _write(pki / "admin.key", _key_pem(admin_key))
    _write(pki / "sa.key", _key_pem(sa_key))
    _write(
        pki / "sa.pub",
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def issue_client_certificate(pki: Path, name: str, common_name: str, organization: str) -> tuple[Path, Path]:
    """A client certificate from the plane's CA (`<name>.crt`/`.key` in pki/): a node's kubelet, kube-proxy, ..."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = _issue(subject, key, ca_cert.subject, ca_key)
    _write(pki / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    _write(pki / f"{name}.key", _key_pem(key))
    return pki / f"{name}.crt", pki / f"{name}.key"


@dataclass(frozen=True)
class Network:
    """Where a plane with a node runs: a network namespace (created and removed by the node plane, nodeplane.py).

    The control plane's processes run inside it (`prefix`), so Pods reach the apiserver at the node IP through the
    `kubernetes` Service; the host reaches the apiserver only through a loopback forwarder (forward.py).
    """

    netns: str
    node_ip: str
    service_ip: str
    service_cidr: str
    scheduler: Path  # kube-scheduler, built with the node's binaries (build-node.sh)

    @property
    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]


def write_kubeconfig(path: Path, server: str, pki: Path, user: str = "admin") -> None:
    # Paths, not inline data: every client (kopf, kubernetes, kubectl, helm) reads them the same way.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin", "namespace": "default"}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


@dataclass
class ControlPlane:
    directory: Path
    server: str
    kubeconfig: Path
    pids: list[int]
    etcd_url: str = ""  # plain HTTP on loopback (or in the node's namespace): tests read the stored bytes there

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Waits for the apiserver's /readyz; returns the seconds it took."""
        pki = self.directory / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return self._wait_healthy(f"{self.server}/readyz", context, "kube-apiserver", timeout)

    def wait_controller_manager(self, port: int, timeout: float = 60.0) -> float:
        """Waits for kube-controller-manager's /healthz (always allowed without credentials)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate; only liveness is read
        return self._wait_healthy(f"https://127.0.0.1:{port}/healthz", context, "kube-controller-manager", timeout)

    def wait_in_netns(self, network: Network, url: str, timeout: float = 60.0) -> float:
        """Waits for an unauthenticated /healthz that only the namespace can reach (kube-controller-manager's)."""
        probe = (
            "import ssl, sys, urllib.request\n"
            "context = ssl._create_unverified_context()  # liveness only\n"
            f"urllib.request.urlopen({url!r}, context=context, timeout=2)\n"
        )
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            for pid in self.pids:
                if not _alive(pid):
                    raise RuntimeError(f"control-plane process {pid} exited; see logs in {self.directory}")
            done = subprocess.run([*network.prefix, sys.executable, "-c", probe], capture_output=True)
            if done.returncode == 0:
                return time.monotonic() - start
            time.sleep(0.2)
        raise TimeoutError(f"{url} not healthy inside {network.netns} after {timeout}s")

    def _wait_healthy(self, url: str, context: ssl.SSLContext, what: str, timeout: float) -> float:
        start = time.monotonic()
        last_error: Exception | None = None
        while time.monotonic() - start < timeout:
            for pid in self.pids:
                if not _alive(pid):
                    raise RuntimeError(f"control-plane process {pid} exited; see logs in {self.directory}")
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as resp:
                    if resp.status == 200:
                        return time.monotonic() - start
            except Exception as exc:
                last_error = exc
            time.sleep(0.1)
        raise TimeoutError(f"{what} not ready after {timeout}s: {last_error}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child counts as dead.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def _spawn(directory: Path, name: str, cmd: list[str]) -> int:
    log = open(directory / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it from here
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc.pid


def controller_manager_command(binaries: Path, directory: Path, port: int, *, with_node: bool = False) -> list[str]:
    pki = directory / "pki"
    # Everything that works without nodes, kubelets or a cloud: those controllers would only log errors. With a
    # node, node-lifecycle too: it removes the node.kubernetes.io/not-ready taint once the kubelet reports Ready.
    disabled = [
        "node-ipam-controller",
        "persistentvolume-binder-controller",
        "persistentvolume-attach-detach-controller",
        "persistentvolume-expander-controller",
        "ttl-controller",
    ]
    if not with_node:
        disabled.append("node-lifecycle-controller")
    return [
        str(binaries / "kube-controller-manager"),
        f"--kubeconfig={directory / 'kubeconfig'}",
        f"--authentication-kubeconfig={directory / 'kubeconfig'}",
        f"--authorization-kubeconfig={directory / 'kubeconfig'}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={directory / 'kcm-certs'}",
        "--controllers=" + ",".join(["*"] + [f"-{name}" for name in disabled]),
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        "--use-service-account-credentials=false",
        "--v=1",
    ]


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def encryption_config(provider: str) -> str:
    """An EncryptionConfiguration for Secrets with one fresh 32-byte key (`secretbox`, `aesgcm` or `aescbc`), plus
    `identity` last so Secrets written before it was turned on stay readable (the documented migration path)."""
    if provider not in ("secretbox", "aesgcm", "aescbc"):
        raise ValueError(f"unknown encryption provider {provider!r}")
    key = base64.b64encode(os.urandom(32)).decode()
    return (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "  - resources: [secrets]\n    providers:\n"
        f"      - {provider}:\n          keys:\n            - name: key1\n              secret: {key}\n"
        "      - identity: {}\n"
    )


def start(
    directory: Path,
    *,
    controller_manager: bool = True,
    audit: bool = False,
    network: Network | None = None,
    encryption: str | None = None,
) -> ControlPlane:
    """Starts etcd, kube-apiserver and kube-controller-manager in the background (own process groups), ready.

    With a `network` (a node plane, nodeplane.py) every process runs inside its network namespace, the apiserver
    serves Pods (ServiceAccount admission, the `kubernetes` Service's endpoints, a serving certificate naming the
    Service IP), kube-scheduler runs too, and the kubeconfig's server is a loopback forwarder into the namespace.
    """
    binaries = build_binaries()
    directory = directory.resolve()
    if (directory / STATE_FILE).exists():
        stop(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    pki = directory / "pki"
    make_pki(pki, network)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    server = f"https://127.0.0.1:{api_port}"  # with a network: the forwarder's host port, the same number
    prefix = network.prefix if network else []
    etcd_cmd = [
        str(binaries / "etcd"),
        f"--data-dir={directory / 'etcd'}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]
    if network:
        serving = [
            "--bind-address=0.0.0.0",  # inside the namespace: loopback for the node's daemons, the node IP for Pods
            f"--advertise-address={network.node_ip}",  # the `kubernetes` Service's endpoint
            "--kubelet-preferred-address-types=InternalIP",  # logs/exec dial the node IP (there is no DNS)
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
        ]
    else:
        serving = [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # no kubernetes Service endpoints for a loopback address
            "--disable-admission-plugins=ServiceAccount",  # no Pods run: no tokens to mount
        ]
    apiserver_cmd = [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        f"--cert-dir={directory / 'certs'}",
        *serving,
        f"--secure-port={api_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={network.service_cidr if network else '10.0.0.0/24'}",
        "--allow-privileged=true",
        f"--service-account-issuer={server}/",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--v=1",
    ]
    if audit:  # every request of a ServiceAccount, as JSON lines in audit.log (least-privilege tests read it)
        (directory / "audit-policy.yaml").write_text(AUDIT_POLICY)
        apiserver_cmd += [f"--audit-policy-file={directory / 'audit-policy.yaml'}",
                          f"--audit-log-path={directory / 'audit.log'}", "--audit-log-mode=blocking"]  # fmt: skip
    if encryption:  # Secrets encrypted at rest by the apiserver (tests/e2e/test_encryption_at_rest.py)
        (directory / "encryption.yaml").write_text(encryption_config(encryption))
        (directory / "encryption.yaml").chmod(0o600)
        apiserver_cmd.append(f"--encryption-provider-config={directory / 'encryption.yaml'}")
    started = time.monotonic()
    etcd_cmd, apiserver_cmd = prefix + etcd_cmd, prefix + apiserver_cmd
    pids = [_spawn(directory, "etcd", etcd_cmd), _spawn(directory, "kube-apiserver", apiserver_cmd)]
    kubeconfig = directory / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki)
    plane = ControlPlane(directory=directory, server=server, kubeconfig=kubeconfig, pids=pids, etcd_url=etcd_url)
    # Commands are kept so a test can stop and start one component (an apiserver or etcd outage).
    state: dict = {"server": server, "pids": pids, "helpers": [],
                   "commands": {"etcd": etcd_cmd, "kube-apiserver": apiserver_cmd}}  # fmt: skip
    (directory / STATE_FILE).write_text(json.dumps(state))
    try:
        if network:
            # One kubeconfig for both sides: inside the namespace 127.0.0.1:<port> is the apiserver itself, on the
            # host it is this forwarder (the port was free on the host when picked).
            forwarder = [sys.executable, str(HERE / "forward.py"), f"--listen=127.0.0.1:{api_port}",
                         f"--netns=/run/netns/{network.netns}", f"--to=127.0.0.1:{api_port}"]  # fmt: skip
            state["helpers"].append(_spawn(directory, "forwarder", forwarder))
            (directory / STATE_FILE).write_text(json.dumps(state))
        plane.wait_ready()
        if controller_manager:
            kcm_port = free_port()
            kcm_cmd = prefix + controller_manager_command(binaries, directory, kcm_port, with_node=network is not None)
            pids.append(_spawn(directory, "kube-controller-manager", kcm_cmd))
            state["commands"]["kube-controller-manager"] = kcm_cmd
            (directory / STATE_FILE).write_text(json.dumps(state))
            if network:  # its /healthz is inside the namespace: the process staying up is the check there
                plane.wait_in_netns(network, f"https://127.0.0.1:{kcm_port}/healthz")
            else:
                plane.wait_controller_manager(kcm_port)
        if network:
            scheduler_cmd = [
                *prefix,
                str(network.scheduler),
                f"--kubeconfig={directory / 'kubeconfig'}",
                f"--authentication-kubeconfig={directory / 'kubeconfig'}",
                f"--authorization-kubeconfig={directory / 'kubeconfig'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ]
            state["helpers"].append(_spawn(directory, "kube-scheduler", scheduler_cmd))
            (directory / STATE_FILE).write_text(json.dumps(state))
    except Exception:
        stop(directory)
        raise
    seconds = time.monotonic() - started
    (directory / "ready-seconds").write_text(f"{seconds:.2f}\n")
    return plane


COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")  # the order of pids in the state file


def stop_component(plane: ControlPlane, name: str) -> None:
    """Kills one component (SIGKILL: a crash, not a graceful stop); start_component brings it back."""
    pid = plane.pids[COMPONENTS.index(name)]
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        _reap([pid])
        time.sleep(0.05)


def start_component(plane: ControlPlane, name: str) -> None:
    """Starts a stopped component again with its original command (and data), and waits for the apiserver."""
    state_file = plane.directory / STATE_FILE
    state = json.loads(state_file.read_text())
    index = COMPONENTS.index(name)
    log_name = f"{name}-restarted-{int(time.time())}"
    plane.pids[index] = _spawn(plane.directory, log_name, state["commands"][name])
    state["pids"] = plane.pids
    state_file.write_text(json.dumps(state))
    plane.wait_ready()


def stop(directory: Path, timeout: float = 15.0) -> None:
    """Stops every process of the control plane in `directory` (TERM, then KILL); idempotent."""
    state_file = directory / STATE_FILE
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    pids = state.get("helpers", []) + list(reversed(state["pids"]))
    for pid in pids:  # scheduler and forwarder, controller manager, apiserver, then etcd
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        _reap(pids)
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    _reap(pids)
    state_file.unlink()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "up", "down"])
    parser.add_argument("--dir", default=".cluster", type=Path, help="state directory (default .cluster)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build_binaries())
    elif args.command == "up":
        plane = start(args.dir)
        seconds = (plane.directory / "ready-seconds").read_text().strip()
        print(f"control plane ready at {plane.server} in {seconds}s; KUBECONFIG={plane.kubeconfig}")
    else:
        stop(args.dir)
        print("control plane stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
