"""Helpers for e2e tests: kubectl, the operator as a real process, openssl as the partner, and waiting."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mtls_operator.api.requester import groups_record

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtls-operator" / "bin"

REQUESTED_BY = "mtls.dev/requested-by"
REQUESTED_BY_GROUPS = "mtls.dev/requested-by-groups"
# The tests' kubeconfig user (tests/controlplane: a client certificate CN=admin, O=system:masters), as the apiserver
# authenticates it: what a MutatingAdmissionPolicy records for certificates the tests apply.
ADMIN = ("admin", ("system:masters", "system:authenticated"))

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.25, what: str = "") -> T:
    """Polls until `check` returns something truthy; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value: {last!r}")


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{VENV_BIN}:{TOOLS_BIN}:{os.environ['PATH']}"}

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(TOOLS_BIN / "kubectl"), *args], input=input, capture_output=True, text=True, env=self.env
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, manifest: str, namespace: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-n", namespace, "-f", "-", input=manifest, check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def secret_data(self, name: str, namespace: str) -> dict[str, bytes] | None:
        obj = self.get("secret", name, namespace)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        items = json.loads(self.run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]

    def plugin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(VENV_BIN / "kubectl-mtls"), *args], capture_output=True, text=True, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl mtls {' '.join(args)} failed: {proc.stderr}")
        return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLUSTER_ISSUER_NAMESPACE = "mtls-system"  # the session operator's --cluster-issuer-namespace


# The signer names the tests ask for: the apiserver-client built-in (listed by name, as a platform team must) and
# any example.com/ signer the tests play themselves.
# The tests' certificates live minutes (2m/1m50s, 90s/60s): the platform floors are lowered for them (policy.floors);
# every HEAD operator the harness starts gets them unless its arguments say otherwise.
TEST_FLOORS = ("--min-duration", "1m", "--min-renew-before", "30s")
# RBAC's answer on a requester's `use` remembered 2 s instead of a minute: a test revokes a grant and renews.
TEST_USE_REVIEW = ("--use-review-seconds", "2")
# The e2e session's admission policies, as `helm install` of release "session" makes them (install_session_admission):
# cluster issuers sign only while the `use` policy is in force, and believe requester records only because of it.
SESSION_RELEASE = "session"
SESSION_USE_POLICY = f"{SESSION_RELEASE}-mtls-operator-cluster-issuer-use"
DEFAULT_ARGS = (
    "--all-namespaces", "--kubernetes-signer", "--kubernetes-signer-name", "kubernetes.io/kube-apiserver-client",
    "--kubernetes-signer-name", "example.com/*", "--cluster-issuer-namespace", CLUSTER_ISSUER_NAMESPACE,
    "--cluster-issuer-use-policy", SESSION_USE_POLICY,
)  # fmt: skip


class OperatorProcess:
    """The operator really running, as `mtls-operator run`, logging to a file the tests can read."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        args: list[str] | None = None,
        *,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        secure_metrics: bool = False,
    ) -> None:
        """`command`/`env`: another build of the operator (a previous release run from its source)."""
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.args = args or list(DEFAULT_ARGS)
        if command is None and "--min-duration" not in self.args:  # a previous release has no such flag
            self.args = [*self.args, *TEST_FLOORS]
        if command is None and "--use-review-seconds" not in self.args:
            self.args = [*self.args, *TEST_USE_REVIEW]
        # /metrics: HTTPS behind a TokenReview on its own port (the default), or plain on metrics_port as the
        # tests and benchmarks read it (and as a previous release serves it).
        self.secure_metrics_port = free_port() if secure_metrics else None
        if command is None:
            secure = ["--secure-metrics-port", str(self.secure_metrics_port)]
            self.args = [*self.args, *(secure if secure_metrics else ["--insecure-metrics"])]
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.command = command or [str(VENV_BIN / "mtls-operator")]
        self.extra_env = env or {}

    @property
    def log_files(self) -> list[Path]:
        return sorted(self.log_dir.glob("operator-*.log"))

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_files)

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.extra_env}
        self.proc = subprocess.Popen(
            [*self.command, "run", *self.args, "--metrics-port", str(self.metrics_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        wait_for(self.healthy, timeout=60, what="operator /healthz")

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Partner:
    """The partner, played by real openssl commands in a working directory."""

    def __init__(self, workdir: Path, name: str = "Partner Test CA", ca_days: int = 3650) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_crt = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.ca_key), "-out", str(self.ca_crt),
            "-days", str(ca_days), "-subj", f"/C=IE/O=Partner/CN={name}",
        )  # fmt: skip

    def openssl(self, *args: str, input: bytes | None = None) -> bytes:
        proc = subprocess.run(["openssl", *args], input=input, capture_output=True, cwd=self.dir)
        if proc.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout

    def sign(
        self, csr_pem: str | bytes, days: int = 365, out: str = "client.crt", extra: list[str] | None = None
    ) -> Path:
        """openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days N -sha256"""
        csr = self.dir / "client.csr"
        csr.write_bytes(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
        self.openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_crt), "-CAkey", str(self.ca_key),
            "-CAcreateserial", "-out", out, "-days", str(days), "-sha256", *(extra or []),
        )  # fmt: skip
        return self.dir / out

    def sign_with_dates(self, csr_pem: str | bytes, start: str, end: str, out: str = "dated.crt") -> Path:
        """`openssl ca -startdate/-enddate`: for certificates that are expired or not yet valid."""
        (self.dir / "ca.cnf").write_text(
            "[ca]\ndefault_ca = d\n[d]\ndir = .\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
            "default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n"
        )
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("01\n")
        csr = self.dir / "dated.csr"
        csr.write_bytes(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
        self.openssl(
            "ca", "-batch", "-config", "ca.cnf", "-cert", str(self.ca_crt), "-keyfile", str(self.ca_key),
            "-in", str(csr), "-out", out, "-startdate", start, "-enddate", end, "-notext", "-preserveDN",
        )  # fmt: skip
        return self.dir / out

    def own_csr(self, subject: str = "/C=IE/O=My Company Inc./CN=client.example.com") -> bytes:
        """A CSR for a key of the partner's own (not ours): what a mix-up of requests produces."""
        return self.openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-subj", subject,
        )  # fmt: skip


CA_SIGNER: dict[str, Any] = {"signer": {"ca": {"secretName": "internal-ca"}}}  # the tests' CA Secret


def certificate_manifest(
    name: str,
    *,
    common_name: str = "client.example.com",
    secret_name: str | None = None,
    spec: Mapping[str, Any] | None = None,
    extra_spec: str = "",
    requester: tuple[str, Sequence[str]] | None = ADMIN,
) -> str:
    """An MtlsCertificate with the partner guide's subject. `spec`: more spec fields as values (rendered by a YAML
    dumper, so nothing is mistyped by hand); `extra_spec`: raw spec lines, for the bad-input tests that need them.
    `requester`: (user, groups) recorded as who asks for it, as a user does where no MutatingAdmissionPolicy records
    it (where one does, it writes the same for the tests' admin; None: nothing recorded)."""
    fields = textwrap.indent(yaml.safe_dump(dict(spec), sort_keys=False), "  ") if spec else ""
    annotations = ""
    if requester is not None:
        recorded = {REQUESTED_BY: requester[0], REQUESTED_BY_GROUPS: groups_record(requester[1])}
        annotations = "  annotations:\n" + textwrap.indent(yaml.safe_dump(recorded, sort_keys=False), "    ")
    return f"""
apiVersion: mtls.dev/v1alpha1
kind: MtlsCertificate
metadata:
  name: {name}
{annotations}spec:
  secretName: {secret_name or name + "-tls"}
  commonName: {common_name}
  subject:
    country: IE
    state: Dublin
    locality: Dublin
    organization: My Company Inc.
    organizationalUnit: IT
{fields}{extra_spec}
"""


def allow_certificates(kubectl: Kubectl, namespace: str, *users: str) -> None:
    """RBAC: these users may create and change MtlsCertificates in the namespace, nothing more."""
    kubectl.run("create", "role", "certificates", "-n", namespace, "--verb=get,list,create,update,patch",
                "--resource=mtlscertificates.mtls.dev")  # fmt: skip
    for user in users:
        kubectl.run("create", "rolebinding", f"certificates-{user}", "-n", namespace, "--role=certificates",
                    f"--user={user}")  # fmt: skip


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    if not obj:
        return {}
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


# --- waiting on MtlsCertificates, and the user's steps the tests repeat -------------------------------------


def wait_certificate(
    kubectl: Kubectl,
    namespace: str,
    name: str,
    predicate: Callable[[dict[str, Any]], Any],
    what: str,
    timeout: float = 30,
) -> dict[str, Any]:
    """Polls the MtlsCertificate until `predicate(obj)` holds; returns the object."""
    return wait_for(
        lambda: (obj := kubectl.get("mtlscertificate", name, namespace)) and predicate(obj) and obj,
        timeout=timeout,
        what=f"{name}: {what}",
    )


def wait_ready(kubectl: Kubectl, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    return wait_certificate(kubectl, namespace, name, lambda o: condition(o).get("status") == "True", "Ready", timeout)


def wait_reason(kubectl: Kubectl, namespace: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    return wait_certificate(
        kubectl, namespace, name, lambda o: condition(o).get("reason") == reason, f"reason {reason}", timeout
    )


def create_and_get_csr(kubectl: Kubectl, namespace: str, name: str, extra_spec: str = "") -> str:
    kubectl.apply(certificate_manifest(name, extra_spec=extra_spec), namespace)
    wait_for(
        lambda: (kubectl.get("mtlscertificate", name, namespace) or {}).get("status", {}).get("csr"),
        timeout=60,
        what=f"{name} status.csr",
    )
    return kubectl.plugin("csr", name, "-n", namespace).stdout


def put_signed(kubectl: Kubectl, namespace: str, name: str, files: dict[str, Path | bytes]) -> None:
    kubectl.run("delete", "secret", name, "-n", namespace, "--ignore-not-found")
    args = []
    for key, value in files.items():
        if isinstance(value, bytes):
            path = Path(kubectl.kubeconfig).parent / f"{namespace}-{key}"
            path.write_bytes(value)
            value = path
        args.append(f"--from-file={key}={value}")
    kubectl.run("create", "secret", "generic", name, "-n", namespace, *args)


def create_ca_secret(kubectl: Kubectl, namespace: str, partner: Partner, name: str = "internal-ca") -> None:
    kubectl.run("create", "secret", "tls", name, "-n", namespace, f"--cert={partner.ca_crt}", f"--key={partner.ca_key}")


def certificate_series(op: OperatorProcess, namespace: str) -> set[str]:
    """Names of the certificates of `namespace` that this operator process reports (one series each)."""
    prefix = "mtls_certificate_expiration_timestamp_seconds{"
    return {
        line.split('name="', 1)[1].split('"', 1)[0]
        for line in op.metrics().splitlines()
        if line.startswith(prefix) and f'namespace="{namespace}"' in line
    }


def metric_sum(op: OperatorProcess, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in op.metrics().splitlines():
        named = line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metric_value(operator: OperatorProcess, metric: str, namespace: str, name: str) -> float | None:
    for line in operator.metrics().splitlines():
        if line.startswith(metric + "{") and f'namespace="{namespace}"' in line and f'name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def http_get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.read()  # type: ignore[no-any-return]
    except OSError:
        return None


@contextlib.contextmanager
def running_prometheus(targets: list[str], workdir: Path) -> Iterator[str]:
    """A real Prometheus (Debian's package) scraping `targets` every second with the shipped alert rules."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is required (Debian package prometheus; `make deps` installs it)"
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ROOT / "manifests/prometheus/alerts.yaml")],
                "scrape_configs": [{"job_name": "mtls-operator", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{url}/-/ready") is not None, timeout=30, what="prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def service_account_kubeconfig(plane: Any, kube: Kubectl, sa: str, ns: str, out_dir: Path) -> Path:
    """A kubeconfig that authenticates only with a ServiceAccount token (what the operator's Pod would use)."""
    token = kube.run("create", "token", sa, "-n", ns, "--duration=1h").stdout.strip()
    ca = out_dir / "ca.crt"
    shutil.copyfile(plane.directory / "pki" / "ca.crt", ca)
    ca.chmod(0o644)
    path = out_dir / "sa-kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": plane.server, "certificate-authority": str(ca)}}],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa, "namespace": ns}}],
                "current-context": "c",
            }
        )
    )
    path.chmod(0o644)
    return path


@contextlib.contextmanager
def own_control_plane(directory: Path, *, crd: bool = True, **options: Any) -> Iterator[tuple[Any, Kubectl]]:
    """A control plane of a test's own (for tests that break or audit it), with HEAD's CRD installed unless `crd`
    is False; stopped after. `options` go to controlplane.start (controller_manager=False, audit=True)."""
    import controlplane

    plane = controlplane.start(directory, **options)
    try:
        kube = Kubectl(plane.kubeconfig)
        if crd:
            kube.run("apply", "-f", str(ROOT / "manifests" / "crd"))
            for name in ("mtlscertificates", "mtlsissuers", "clustermtlsissuers", "mtlsrevocations"):
                kube.run("wait", "--for", "condition=established", "--timeout=60s", f"crd/{name}.mtls.dev")
        yield plane, kube
    finally:
        controlplane.stop(plane.directory)


@contextlib.contextmanager
def chart_template_applied(kubectl: Kubectl, workdir: Path, template: str, *values: str) -> Iterator[None]:
    """One template of the chart (e.g. an admission policy) rendered by helm with `values` (--set a=b ...) and
    applied to the cluster, deleted again afterwards."""
    rendered = helm(kubectl.kubeconfig, "template", "mtls-operator", str(ROOT / "charts" / "mtls-operator"),
                    *values, "--show-only", f"templates/{template}").stdout  # fmt: skip
    path = workdir / f"applied-{template}"
    path.write_text(rendered)
    kubectl.run("apply", "-f", str(path))
    try:
        yield
    finally:
        kubectl.run("delete", "-f", str(path), "--ignore-not-found")


MUTATING_POLICY_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


def serves_mutating_policies(kubectl: Kubectl) -> bool:
    names = kubectl.run("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout.split()
    return any(name.startswith("mutatingadmissionpolicies") for name in names)


def install_session_admission(kubectl: Kubectl) -> None:
    """What `helm install` of release "session" puts in front of certificates: the ValidatingAdmissionPolicy that
    checks `use` of cluster issuers and the requester records, and where the cluster serves one the
    MutatingAdmissionPolicy that writes those records. Waited for until the apiserver applies them."""
    chart = str(ROOT / "charts" / "mtls-operator")
    templates = ["templates/admission-policy.yaml"]
    extra: tuple[str, ...] = ()
    if serves_mutating_policies(kubectl):
        templates.append("templates/requester-policy.yaml")
        extra = ("--api-versions", MUTATING_POLICY_API)
    only = [arg for template in templates for arg in ("--show-only", template)]
    rendered = helm(kubectl.kubeconfig, "template", SESSION_RELEASE, chart, *extra, *only).stdout
    kubectl.run("apply", "-f", "-", input=rendered)
    forged = certificate_manifest("record-probe", requester=("somebody-else", ()))

    def judged() -> bool:
        args = ("apply", "--dry-run=server", "-n", "default", "-o", "json", "-f", "-")
        proc = kubectl.run(*args, input=forged, check=False)
        if proc.returncode != 0:
            return not extra  # refused by the validating policy: in force (where nothing rewrites the record first)
        annotations = json.loads(proc.stdout)["metadata"].get("annotations") or {}
        return bool(extra) and annotations.get(REQUESTED_BY) == ADMIN[0]  # rewritten by the mutating policy

    wait_for(judged, timeout=30, what="the session's admission policies in force")


def wait_certificates_admitted(kubectl: Kubectl, namespace: str) -> None:
    """Until the apiserver admits an MtlsCertificate in `namespace` (a server-side dry run). Right after a CRD is
    created next to a MutatingAdmissionPolicy that matches it, creates fail for a few seconds ("Resource kind …
    not found … a delay between when CustomResourceDefinitions are created and when they are available"): the
    policy needs the CRD's published schema, which trails `condition=established`."""
    probe = certificate_manifest("admission-probe")
    wait_for(lambda: admits(kubectl, probe, namespace), timeout=60, what=f"MtlsCertificates admitted in {namespace}")


def admits(kubectl: Kubectl, manifest: str, namespace: str) -> bool:
    """Whether the apiserver, admission included, would accept `manifest` in `namespace` now (a server-side dry run)."""
    proc = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest, check=False)
    return proc.returncode == 0


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": "/tmp/mtls-helm-cache",
           "HELM_CONFIG_HOME": "/tmp/mtls-helm-config", "HELM_DATA_HOME": "/tmp/mtls-helm-data"}  # fmt: skip
    proc = subprocess.run([str(TOOLS_BIN / "helm"), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc
