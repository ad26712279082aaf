"""Real servers as judges: does a TLS server that trusts only the partner's root accept this client chain?

Two servers clients really meet: `openssl s_server -Verify 5 -verify_return_error` (the machine's OpenSSL at its
default security level, as nginx, Apache and HAProxy verify) and a Go `tls.RequireAndVerifyClientCert` server
(tests/e2e/clients/goserver.go). The client presents exactly the files it is given (leaf, then intermediates) with
the matching key; it is OpenSSL at security level 0, so that it sends whatever it is given and the server decides.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
GO_SERVER = ROOT / "tests" / "e2e" / "clients" / "goserver.go"


@dataclass(frozen=True)
class Judgement:
    accepted: bool
    detail: str  # the server's own words when it refused


def server_identity(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed server certificate (the client does not check it: only the server judges)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key_file = directory / "server.crt", directory / "server.key"
    if not crt.exists():
        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = time.time()
        start = datetime.datetime.fromtimestamp(now - 3600, datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30))
            .sign(private, hashes.SHA256())
        )
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return crt, key_file


def _client_request(port: int, chain: Path, key: Path) -> tuple[bool, str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # present anything; the server judges
    context.load_cert_chain(str(chain), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    except (ssl.SSLError, OSError) as exc:
        return False, str(exc)
    return answer.startswith(b"HTTP/1."), answer[:40].decode(errors="replace")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"server on {port} did not listen")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl_judges(workdir: Path, root_pem: bytes, chain: Path, key: Path) -> Judgement:
    """`openssl s_server -Verify 5 -verify_return_error -CAfile root.pem -www`, one connection."""
    server_crt, server_key = server_identity(workdir / "server")
    root = workdir / "trusted-root.pem"
    root.write_bytes(root_pem)
    port = _free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(server_crt), "-key", str(server_key),
         "-CAfile", str(root), "-Verify", "5", "-verify_return_error", "-www"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_port(port, proc)
        accepted, detail = _client_request(port, chain, key)
    finally:
        proc.kill()
        out, err = proc.communicate()
    if accepted:
        return Judgement(True, "")
    said = [line for line in (out + err).decode(errors="replace").splitlines() if "verify error" in line.lower()]
    return Judgement(False, "; ".join(said) or detail)


def build_go_server(out_dir: Path) -> Path:
    out = out_dir / "goserver"
    subprocess.run([shutil.which("go") or "go", "build", "-o", str(out), str(GO_SERVER)], check=True,
                   cwd=GO_SERVER.parent, capture_output=True)  # fmt: skip
    return out


@contextlib.contextmanager
def _go_server(binary: Path, workdir: Path, root_pem: bytes) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    server_crt, server_key = server_identity(workdir / "server")
    root = workdir / "trusted-root.pem"
    root.write_bytes(root_pem)
    proc = subprocess.Popen([str(binary), str(root), str(server_crt), str(server_key)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("listening "):
            raise AssertionError(f"goserver: {line} {proc.stderr.read().decode() if proc.stderr else ''}")
        yield int(line.split()[1]), proc
    finally:
        proc.kill()
        proc.wait()


def go_judges(binary: Path, workdir: Path, root_pem: bytes, chain: Path, key: Path) -> Judgement:
    with _go_server(binary, workdir, root_pem) as (port, proc):
        accepted, detail = _client_request(port, chain, key)
        proc.kill()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if accepted:
        return Judgement(True, "")
    said = [line.split("TLS handshake error from ")[-1] for line in err.splitlines() if "handshake error" in line]
    return Judgement(False, "; ".join(said) or detail)
