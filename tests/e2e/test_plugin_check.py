"""`kubectl mtls check` against a real `openssl s_server -Verify 1` playing the partner's server."""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    free_port,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)


def server_certificate(partner: Partner, name: str = "server") -> tuple[Path, Path]:
    """A serverAuth certificate for localhost / 127.0.0.1 signed by the partner's CA."""
    (partner.dir / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    partner.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                    "-subj", "/C=IE/O=Partner/CN=localhost")  # fmt: skip
    partner.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.crt", "-days", "30", "-sha256", "-extfile", f"{name}.ext")  # fmt: skip
    return partner.dir / f"{name}.crt", partner.dir / f"{name}.key"


@contextlib.contextmanager
def s_server(workdir: Path, cert: Path, key: Path, trusted_client_ca: Path) -> Iterator[int]:
    """The partner's server: demands a client certificate from `trusted_client_ca` and aborts otherwise."""
    port = free_port()
    log = workdir / f"s_server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", str(port), "-cert", str(cert), "-key", str(key),
             "-Verify", "1", "-verify_return_error", "-CAfile", str(trusted_client_ca)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
        )  # fmt: skip
    try:
        wait_for(lambda: b"ACCEPT" in log.read_bytes(), timeout=20, what="s_server listening")
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def setup(kubectl: Kubectl, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory):
    """One namespace with `edge` (CN=localhost, partner-signed, ca.crt = the partner's CA), Ready."""
    namespace = f"check-{int(time.time() * 1000) % 10**8}"
    kubectl.run("create", "namespace", namespace)
    partner = Partner(tmp_path_factory.mktemp("partner"))
    other = Partner(tmp_path_factory.mktemp("other"), name="Some Other CA")
    csr = published_csr(kubectl, namespace, "edge")
    put_signed(
        kubectl, namespace, "edge-signed", {"tls.crt": partner.sign(csr, out="edge.crt"), "ca.crt": partner.ca_crt}
    )
    wait_ready(kubectl, namespace, "edge")
    return namespace, partner, other


def published_csr(kubectl: Kubectl, namespace: str, name: str) -> str:
    kubectl.apply(certificate_manifest(name, common_name="localhost"), namespace)
    wait_certificate(kubectl, namespace, name, lambda o: (o.get("status") or {}).get("csr"), "CSR published")
    return kubectl.plugin("csr", name, "-n", namespace).stdout


def check(kubectl: Kubectl, namespace: str, *args: str) -> tuple[int, dict]:
    proc = kubectl.plugin("check", *args, "-n", namespace, "-o", "json", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_good_handshake_passes_and_reports_the_tls_version(kubectl: Kubectl, setup, tmp_path: Path) -> None:
    namespace, partner, _ = setup
    cert, key = server_certificate(partner)
    with s_server(tmp_path, cert, key, partner.ca_crt) as port:
        code, report = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{port}")
        text = kubectl.plugin("check", "edge", "-n", namespace, "--endpoint", f"localhost:{port}").stdout
    assert code == 0 and report["ok"], report
    assert [c["status"] for c in report["checks"]] == ["pass"] * len(report["checks"])
    assert [c["name"] for c in report["checks"]] == [
        "validity", "common name", "key", "client auth", "chain", "revocation", "handshake"
    ]  # fmt: skip
    assert report["tls"]["version"] in ("TLSv1.3", "TLSv1.2") and report["tls"]["cipher"]
    assert "CN=localhost" in report["tls"]["serverCertificate"]["subject"]
    assert "result: PASS" in text and "BEGIN" not in text  # no key material printed


def test_server_that_does_not_trust_our_issuer(kubectl: Kubectl, setup, tmp_path: Path) -> None:
    namespace, partner, other = setup
    cert, key = server_certificate(partner)
    with s_server(tmp_path, cert, key, other.ca_crt) as port:
        code, report = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{port}")
    handshake = by_name(report)["handshake"]
    assert code == 1 and handshake["status"] == "fail" and handshake["side"] == "client"
    assert handshake["message"].startswith("unknown_ca: the server sent the alert unknown_ca")


def test_server_certificate_not_trusted_by_our_ca_crt(kubectl: Kubectl, setup, tmp_path: Path) -> None:
    namespace, partner, other = setup
    cert, key = server_certificate(other, "foreign")  # the server's certificate comes from a CA we do not trust
    with s_server(tmp_path, cert, key, partner.ca_crt) as port:
        code, report = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{port}")
    handshake = by_name(report)["handshake"]
    assert code == 1 and handshake["side"] == "server"
    assert "we refused the server's certificate" in handshake["message"]
    assert "Some Other CA" in report["tls"]["serverCertificate"]["issuer"]
    # --server-ca: the right CA for the server makes it pass.
    with s_server(tmp_path, cert, key, partner.ca_crt) as port:
        code, _ = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{port}", "--server-ca", str(other.ca_crt))
    assert code == 0


def test_common_name_differs_from_the_endpoint_host(kubectl: Kubectl, setup, tmp_path: Path) -> None:
    namespace, partner, _ = setup
    cert, key = server_certificate(partner)
    with s_server(tmp_path, cert, key, partner.ca_crt) as port:
        code, report = check(kubectl, namespace, "edge", "--endpoint", f"127.0.0.1:{port}")
    checks = by_name(report)
    assert code == 1
    assert checks["common name"]["status"] == "fail" and checks["common name"]["side"] == "client"
    assert "'localhost' does not equal the endpoint host '127.0.0.1'" in checks["common name"]["message"]
    assert checks["handshake"]["status"] == "pass"  # TLS itself works: only the partner's CN rule fails


def test_endpoint_refusing_connections(kubectl: Kubectl, setup) -> None:
    namespace, _, _ = setup
    code, report = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{free_port()}")
    handshake = by_name(report)["handshake"]
    assert code == 1 and handshake["side"] == "network"
    assert handshake["message"].startswith("connection refused")


def test_plain_endpoint_that_does_not_speak_tls(kubectl: Kubectl, setup) -> None:
    namespace, _, _ = setup
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer_like_http() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=answer_like_http, daemon=True).start()
        code, report = check(kubectl, namespace, "edge", "--endpoint", f"localhost:{port}")
    handshake = by_name(report)["handshake"]
    assert code == 1 and handshake["side"] == "network"
    assert handshake["message"].startswith("not TLS"), handshake


def test_our_certificate_expired(kubectl: Kubectl, setup, tmp_path: Path) -> None:
    namespace, partner, _ = setup
    csr = published_csr(kubectl, namespace, "shortlived")
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=20)
    short = partner.sign_with_dates(csr, f"{start:%Y%m%d%H%M%SZ}", f"{end:%Y%m%d%H%M%SZ}", out="short.crt")
    put_signed(kubectl, namespace, "shortlived-signed", {"tls.crt": short, "ca.crt": partner.ca_crt})
    wait_ready(kubectl, namespace, "shortlived")
    time.sleep(max(0.0, (end - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1)
    wait_reason(kubectl, namespace, "shortlived", "Expired")
    cert, key = server_certificate(partner)
    with s_server(tmp_path, cert, key, partner.ca_crt) as port:
        code, report = check(kubectl, namespace, "shortlived", "--endpoint", f"localhost:{port}")
    checks = by_name(report)
    assert code == 1
    assert checks["validity"]["status"] == "fail" and checks["validity"]["message"].startswith("expired at")
    assert checks["handshake"]["side"] == "client"
    assert checks["handshake"]["message"].startswith("certificate_expired: the server sent the alert")


def test_usage_errors_exit_2(kubectl: Kubectl, setup) -> None:
    namespace, _, _ = setup
    assert kubectl.plugin("check", "edge", "-n", namespace, "--endpoint", "no-port", check=False).returncode == 2
    assert kubectl.plugin("check", "nosuch", "-n", namespace, check=False).returncode == 2
    assert kubectl.plugin("check", "-n", namespace, check=False).returncode == 2
