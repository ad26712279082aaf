"""Every file a partner really sends, through both import paths, at first issuance and at renewal; then the live
Secret used by real client stacks against an `openssl s_server` that trusts only the partner's root.

The partner is openssl with a root and an issuing (intermediate) CA, exporting as real CAs do: DER `.cer`,
PKCS#7 `.p7b` in PEM and DER (`openssl crl2pkcs7 -nocrl -certfile ...`), the intermediate in the CA file, the root
first, a private key pasted into the bundle. The server requires a client certificate and has only the root, so a
client that does not send the intermediate is refused: Go sends tls.crt exactly as it is, Node completes a chain
from its own files, Java sends what its key store holds.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from harness.cluster import (
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    free_port,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
)

CLIENTS = ROOT / "tests" / "e2e" / "clients"
CN = "client.example.com"


class ChainedPartner(Partner):
    """A partner whose root signs an issuing CA, which signs client certificates (as commercial CAs do)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, name="Partner Root CA")
        (self.dir / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        self.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "inter.key", "-out", "inter.csr",
                     "-subj", "/C=IE/O=Partner/CN=Partner Issuing CA")  # fmt: skip
        self.openssl("x509", "-req", "-in", "inter.csr", "-CA", str(self.ca_crt), "-CAkey", str(self.ca_key),
                     "-CAcreateserial", "-out", "inter.crt", "-days", "3650", "-extfile", "ca.ext")  # fmt: skip
        self.inter_crt = self.dir / "inter.crt"
        (self.dir / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                     "-subj", "/C=IE/O=Partner/CN=localhost")  # fmt: skip
        self.openssl("x509", "-req", "-in", "server.csr", "-CA", str(self.ca_crt), "-CAkey", str(self.ca_key),
                     "-CAcreateserial", "-out", "server.crt", "-days", "30", "-extfile", "server.ext")  # fmt: skip

    def sign_by_intermediate(self, csr: str, out: str, extfile: str | None = None) -> Path:
        (self.dir / f"{out}.csr").write_text(csr)
        self.openssl("x509", "-req", "-in", f"{out}.csr", "-CA", "inter.crt", "-CAkey", "inter.key",
                     "-CAcreateserial", "-out", f"{out}.crt", "-days", "365", "-sha256",
                     *(["-extfile", extfile] if extfile else []))  # fmt: skip
        return self.dir / f"{out}.crt"

    def der(self, pem: Path) -> bytes:
        return self.openssl("x509", "-in", str(pem), "-outform", "der")

    def p7b(self, *pems: Path, der: bool = False) -> bytes:
        files = [arg for pem in pems for arg in ("-certfile", str(pem))]
        return self.openssl("crl2pkcs7", "-nocrl", *files, *(["-outform", "der"] if der else []))


Files = tuple[bytes, bytes | None]  # (tls.crt, ca.crt) as the partner sent them
FORMATS: dict[str, Callable[[ChainedPartner, Path], Files]] = {
    "der-leaf": lambda p, leaf: (p.der(leaf), p.inter_crt.read_bytes() + p.ca_crt.read_bytes()),
    "der-root": lambda p, leaf: (leaf.read_bytes() + p.inter_crt.read_bytes(), p.der(p.ca_crt)),
    "p7b-pem-everything": lambda p, leaf: (p.p7b(p.ca_crt, leaf, p.inter_crt), None),
    "p7b-der-everything": lambda p, leaf: (p.p7b(leaf, p.inter_crt, p.ca_crt, der=True), None),
    "p7b-chain-der-root": lambda p, leaf: (p.p7b(leaf, p.inter_crt, der=True), p.der(p.ca_crt)),
    "intermediate-in-ca": lambda p, leaf: (leaf.read_bytes(), p.inter_crt.read_bytes() + p.ca_crt.read_bytes()),
    "root-first-leaf-last": lambda p, leaf: (p.ca_crt.read_bytes() + p.inter_crt.read_bytes() + leaf.read_bytes(),
                                             None),
    "crlf-bom-text": lambda p, leaf: (b"\xef\xbb\xbf" + p.openssl("x509", "-in", str(leaf), "-text").replace(
        b"\n", b"\r\n"), p.inter_crt.read_bytes() + p.ca_crt.read_bytes()),
    "key-pasted": lambda p, leaf: ((p.dir / "inter.key").read_bytes() + leaf.read_bytes() + p.inter_crt.read_bytes(),
                                   p.ca_crt.read_bytes()),
}  # fmt: skip
PATHS = ("plugin", "secret")
CASES = [(fmt, path) for fmt in FORMATS for path in PATHS]


def case_name(fmt: str, path: str) -> str:
    return f"{fmt}-{path}"[:50].rstrip("-")


@dataclass
class MtlsServer:
    url: str
    ca: Path  # the partner root: what the client must trust for the server


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory) -> ChainedPartner:
    return ChainedPartner(tmp_path_factory.mktemp("chained-partner"))


@pytest.fixture(scope="module")
def server(partner: ChainedPartner) -> Iterator[MtlsServer]:
    """openssl s_server requiring a client certificate, trusting only the partner's root (no intermediate)."""
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", "server.crt", "-key", "server.key",
         "-CAfile", str(partner.ca_crt), "-Verify", "3", "-verify_return_error", "-www", "-quiet"],
        cwd=partner.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    wait_for(listening, what="openssl s_server")
    try:
        yield MtlsServer(f"https://localhost:{port}/", partner.ca_crt)
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built with the machine's Go toolchain, standard library only."""
    out = tmp_path_factory.mktemp("goclient") / "goclient"
    subprocess.run([shutil.which("go") or "go", "build", "-o", str(out), str(CLIENTS / "goclient.go")], check=True,
                   capture_output=True, cwd=CLIENTS)  # fmt: skip
    return out


def live_files(kubectl: Kubectl, namespace: str, secret: str, workdir: Path) -> dict[str, Path]:
    data = kubectl.secret_data(secret, namespace)
    assert data is not None
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, value in data.items():
        paths[key] = workdir / key
        paths[key].write_bytes(value)
    return paths


def go_handshake(go_client: Path, server: MtlsServer, files: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(go_client), server.url, str(files["tls.crt"]), str(files["tls.key"]),
                           str(files["ca.crt"])], capture_output=True, text=True, timeout=30)  # fmt: skip


def node_handshake(server: MtlsServer, files: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(CLIENTS / "nodeclient.js"), server.url, str(files["tls.crt"]),
                           str(files["tls.key"]), str(files["ca.crt"])], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def certs_of(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def import_files(kubectl: Kubectl, namespace: str, name: str, path: str, files: Files, workdir: Path) -> str:
    """Hand the partner's files over as a user would; returns what the plugin printed on stderr."""
    tls, ca = files
    if path == "secret":
        put_signed(kubectl, namespace, f"{name}-signed", {"tls.crt": tls} | ({"ca.crt": ca} if ca else {}))
        return ""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "from-partner.cer").write_bytes(tls)
    args = ["-n", namespace, "import", name, "--cert", str(workdir / "from-partner.cer")]
    if ca:
        (workdir / "partner-ca.cer").write_bytes(ca)
        args += ["--ca", str(workdir / "partner-ca.cer")]
    return kubectl.plugin(*args).stderr


def sign_pending(kubectl: Kubectl, partner: ChainedPartner, namespace: str, name: str, round_: int) -> Path:
    csr = kubectl.plugin("-n", namespace, "csr", name).stdout
    return partner.sign_by_intermediate(csr, f"{name}-r{round_}")


@pytest.fixture(scope="module")
def imported(kubectl: Kubectl, operator: OperatorProcess, partner: ChainedPartner,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # fmt: skip
    """First issuance: every format through both paths, all certificates at once."""
    namespace = f"formats-{int(time.time() * 1000) % 10**8}"
    kubectl.run("create", "namespace", namespace)
    work = tmp_path_factory.mktemp("formats")
    for fmt, path in CASES:
        kubectl.apply(certificate_manifest(case_name(fmt, path)), namespace)
    leaves, stderr = {}, {}
    for fmt, path in CASES:
        name = case_name(fmt, path)
        wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("csr"), "CSR", 60)
        leaves[name] = sign_pending(kubectl, partner, namespace, name, 1)
        stderr[name] = import_files(kubectl, namespace, name, path, FORMATS[fmt](partner, leaves[name]), work / name)
    return {"namespace": namespace, "work": work, "leaves": leaves, "stderr": stderr}


def assert_canonical_and_clients_work(
    kubectl: Kubectl, namespace: str, name: str, leaf: Path, partner: ChainedPartner, server: MtlsServer,
    go_client: Path, workdir: Path,
) -> None:  # fmt: skip
    files = live_files(kubectl, namespace, f"{name}-tls", workdir)
    expected_leaf = x509.load_pem_x509_certificate(leaf.read_bytes())
    inter = x509.load_pem_x509_certificate(partner.inter_crt.read_bytes())
    root = x509.load_pem_x509_certificate(partner.ca_crt.read_bytes())
    assert certs_of(files["tls.crt"].read_bytes()) == [expected_leaf, inter]  # leaf + intermediate, in order
    assert certs_of(files["ca.crt"].read_bytes()) == [root]
    for key in ("tls.crt", "ca.crt"):
        assert b"PRIVATE KEY" not in files[key].read_bytes()
    for client, result in (("go", go_handshake(go_client, server, files)), ("node", node_handshake(server, files))):
        assert result.returncode == 0 and result.stdout.strip() == "200", f"{client}: {result.stderr}"


@pytest.mark.parametrize(("fmt", "path"), CASES, ids=[case_name(f, p) for f, p in CASES])
def test_first_issuance(fmt: str, path: str, imported: dict[str, Any], kubectl: Kubectl, partner: ChainedPartner,
                        server: MtlsServer, go_client: Path) -> None:  # fmt: skip
    namespace, name = imported["namespace"], case_name(fmt, path)
    obj = wait_ready(kubectl, namespace, name, timeout=60)
    assert obj["status"]["phase"] == "Ready", condition(obj)
    assert_canonical_and_clients_work(kubectl, namespace, name, imported["leaves"][name], partner, server, go_client,
                                      imported["work"] / name / "live-1")  # fmt: skip
    if fmt == "key-pasted":
        assert_key_never_stored(kubectl, namespace, name, path, imported["stderr"][name])


def assert_key_never_stored(kubectl: Kubectl, namespace: str, name: str, path: str, stderr: str) -> None:
    signed = kubectl.secret_data(f"{name}-signed", namespace) or {}
    if path == "plugin":
        assert "private key block(s): dropped, never uploaded" in stderr
        assert all(b"PRIVATE KEY" not in v for v in signed.values())  # our tool stored only certificates
    else:
        warnings = wait_for(lambda: [e for e in kubectl.events(namespace, name) if e["reason"] == "PrivateKeyIgnored"],
                            what="Warning PrivateKeyIgnored")  # fmt: skip
        assert "ignored and copied nowhere" in warnings[0]["message"] and warnings[0]["type"] == "Warning"
        assert "PRIVATE KEY-----" not in warnings[0]["message"]


def test_the_clients_can_fail(imported: dict[str, Any], kubectl: Kubectl, server: MtlsServer, go_client: Path,
                              tmp_path: Path) -> None:  # fmt: skip
    """The control: the same Secret with the leaf alone in tls.crt (today's bug) makes Go fail against this
    server, which is what makes the passing cases above mean something."""
    namespace, name = imported["namespace"], case_name("intermediate-in-ca", "secret")
    wait_ready(kubectl, namespace, name, timeout=60)
    files = live_files(kubectl, namespace, f"{name}-tls", tmp_path)
    leaf_only = certs_of(files["tls.crt"].read_bytes())[0]
    files["tls.crt"].write_bytes(leaf_only.public_bytes(serialization.Encoding.PEM))
    refused = go_handshake(go_client, server, files)
    assert refused.returncode != 0, refused.stdout


@pytest.fixture(scope="module")
def renewed(imported: dict[str, Any], kubectl: Kubectl, partner: ChainedPartner) -> dict[str, Any]:
    """Renewal: a new key and CSR for every certificate, then the same format through the same path again."""
    namespace, work = imported["namespace"], imported["work"]
    for fmt, path in CASES:
        wait_ready(kubectl, namespace, case_name(fmt, path), timeout=60)
    kubectl.plugin("-n", namespace, "renew", "--all")
    leaves = {}
    for fmt, path in CASES:
        name = case_name(fmt, path)
        wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("phase") == "Renewing"
                         and (o.get("status") or {}).get("csr"), "renewal CSR", 60)  # fmt: skip
        leaves[name] = sign_pending(kubectl, partner, namespace, name, 2)
        import_files(kubectl, namespace, name, path, FORMATS[fmt](partner, leaves[name]), work / name / "renewal")
    return {"leaves": leaves}


@pytest.mark.parametrize(("fmt", "path"), CASES, ids=[case_name(f, p) for f, p in CASES])
def test_renewal(fmt: str, path: str, imported: dict[str, Any], renewed: dict[str, Any], kubectl: Kubectl,
                 partner: ChainedPartner, server: MtlsServer, go_client: Path) -> None:  # fmt: skip
    namespace, name = imported["namespace"], case_name(fmt, path)
    obj = wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("revision") == 2
                           and o["status"].get("phase") == "Ready", "revision 2 Ready", 60)  # fmt: skip
    assert condition(obj)["status"] == "True"
    assert_canonical_and_clients_work(kubectl, namespace, name, renewed["leaves"][name], partner, server, go_client,
                                      imported["work"] / name / "live-2")  # fmt: skip


def test_names_not_covered_is_a_warning_not_a_refusal(kubectl: Kubectl, operator: OperatorProcess,
                                                      partner: ChainedPartner, namespace: str) -> None:  # fmt: skip
    kubectl.apply(certificate_manifest("sans"), namespace)
    wait_certificate(kubectl, namespace, "sans", lambda o: (o.get("status") or {}).get("csr"), "CSR", 60)
    csr = kubectl.plugin("-n", namespace, "csr", "sans").stdout
    (partner.dir / "othersan.ext").write_text("subjectAltName=DNS:other.example.com\n")
    leaf = partner.sign_by_intermediate(csr, "sans", extfile="othersan.ext")
    put_signed(kubectl, namespace, "sans-signed", {"tls.crt": leaf.read_bytes() + partner.inter_crt.read_bytes(),
                                                   "ca.crt": partner.ca_crt})  # fmt: skip
    obj = wait_ready(kubectl, namespace, "sans", timeout=60)
    message = condition(obj)["message"]
    assert "warning: the certificate's subjectAltName DNS names (other.example.com) do not include" in message
    events = wait_for(lambda: [e for e in kubectl.events(namespace, "sans") if e["reason"] == "NamesNotCovered"],
                      what="Warning NamesNotCovered")  # fmt: skip
    assert events[0]["type"] == "Warning" and CN in events[0]["message"]


# --- PKCS#12 for Java -----------------------------------------------------------------------------------------

KEYSTORE_SPEC = """  keystores:
    pkcs12:
      passwordSecretRef:
        name: java-store-password
      alias: apata
"""


def java_handshake(server: MtlsServer, files: dict[str, Path], password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", str(CLIENTS / "JavaClient.java"), server.url, str(files["keystore.p12"]),
                           str(files["truststore.p12"]), password], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_java_client_with_the_pkcs12_keystore(kubectl: Kubectl, operator: OperatorProcess, partner: ChainedPartner,
                                              server: MtlsServer, namespace: str, tmp_path: Path) -> None:  # fmt: skip
    name = "java-client"
    kubectl.apply(certificate_manifest(name, extra_spec=KEYSTORE_SPEC), namespace)
    wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("csr"), "CSR", 60)
    leaf = sign_pending(kubectl, partner, namespace, name, 1)
    import_files(kubectl, namespace, name, "secret", FORMATS["p7b-der-everything"](partner, leaf), tmp_path)

    # No password Secret yet: a clear condition, and the PEM files are in service all the same.
    obj = wait_certificate(kubectl, namespace, name, lambda o: condition(o).get("reason") == "KeystorePasswordNotFound",
                           "KeystorePasswordNotFound", 60)  # fmt: skip
    assert "Secret java-store-password (spec.keystores.pkcs12.passwordSecretRef) does not exist" in condition(obj)[
        "message"]  # fmt: skip
    pem_only = kubectl.secret_data(f"{name}-tls", namespace) or {}
    assert pem_only.get("tls.key") and pem_only.get("tls.crt") and "keystore.p12" not in pem_only

    kubectl.run(
        "create", "secret", "generic", "java-store-password", "-n", namespace, "--from-literal=password=ch4ng3it"
    )
    wait_certificate(kubectl, namespace, name, lambda o: condition(o).get("status") == "True", "Ready", 60)
    files = wait_for(lambda: (f := live_files(kubectl, namespace, f"{name}-tls", tmp_path / "live-1")) and
                     "keystore.p12" in f and f, what="keystore.p12 written")  # fmt: skip
    info = subprocess.run(["openssl", "pkcs12", "-info", "-noout", "-in", str(files["keystore.p12"]),
                           "-passin", "pass:ch4ng3it"], capture_output=True, text=True)  # fmt: skip
    assert info.returncode == 0 and "PBES2, PBKDF2, AES-256-CBC" in info.stderr, info.stderr
    first_serial = stored_leaf_serial(files["keystore.p12"], "ch4ng3it")
    assert first_serial == x509.load_pem_x509_certificate(leaf.read_bytes()).serial_number
    result = java_handshake(server, files, "ch4ng3it")
    assert result.returncode == 0 and result.stdout.split() == ["200", "alias", "apata"], result.stderr

    # Renewal: a new key, a new certificate, new stores in the same write.
    kubectl.plugin("-n", namespace, "renew", name)
    wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("phase") == "Renewing"
                     and (o.get("status") or {}).get("csr"), "renewal CSR", 60)  # fmt: skip
    renewed_leaf = sign_pending(kubectl, partner, namespace, name, 2)
    import_files(kubectl, namespace, name, "plugin", FORMATS["der-leaf"](partner, renewed_leaf), tmp_path / "r2")
    wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("revision") == 2
                     and condition(o).get("status") == "True", "revision 2 Ready", 60)  # fmt: skip
    files = live_files(kubectl, namespace, f"{name}-tls", tmp_path / "live-2")
    assert stored_leaf_serial(files["keystore.p12"], "ch4ng3it") == x509.load_pem_x509_certificate(
        renewed_leaf.read_bytes()).serial_number  # fmt: skip
    assert certs_of(files["tls.crt"].read_bytes())[0].serial_number == stored_leaf_serial(files["keystore.p12"],
                                                                                          "ch4ng3it")  # fmt: skip
    result = java_handshake(server, files, "ch4ng3it")
    assert result.returncode == 0 and result.stdout.split()[0] == "200", result.stderr


def stored_leaf_serial(path: Path, password: str) -> int:
    loaded = pkcs12.load_pkcs12(path.read_bytes(), password.encode())
    assert loaded.cert is not None and loaded.key is not None
    return loaded.cert.certificate.serial_number


def test_keystores_with_a_partner_csr_are_refused_at_apply(kubectl: Kubectl, namespace: str) -> None:
    body = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsCertificate", "metadata": {"name": "outbound-p12"},
            "spec": {"secretName": "o", "commonName": CN, "subject": {"country": "IE", "organization": "P"},
                     "signer": {"ca": {"secretName": "ca"}}, "keystores": {"pkcs12": {"passwordSecretRef": {
                         "name": "pw"}}},
                     "csr": "-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----\n"}}  # fmt: skip
    refused = kubectl.apply(json.dumps(body), namespace, check=False)
    assert refused.returncode != 0 and "keystores cannot be set with csr" in refused.stderr
