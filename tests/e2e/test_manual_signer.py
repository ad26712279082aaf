"""Inbound direction, signer `manual`: key and CSR in the cluster, the partner signs by hand with openssl."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    condition,
    create_and_get_csr,
    put_signed,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)


def test_round_trip_as_a_user_does_it(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "apata")
    obj = kubectl.get("mtlscertificate", "apata", namespace)
    assert obj["status"]["phase"] == "AwaitingSignature"
    assert condition(obj)["reason"] == "AwaitingSignature"
    assert any(e["reason"] == "CSRCreated" and e["type"] == "Normal" for e in kubectl.events(namespace, "apata"))

    # The CSR is what the partner's guide asks for: valid self-signature, full subject, RSA 2048.
    (partner.dir / "client.csr").write_text(csr)
    verify = partner.openssl("req", "-in", "client.csr", "-noout", "-verify", "-text").decode()
    assert "C = IE, ST = Dublin, L = Dublin, O = My Company Inc., OU = IT, CN = client.example.com" in verify
    assert "Public-Key: (2048 bit)" in verify
    assert "TLS Web Client Authentication" in verify

    live_before = kubectl.secret_data("apata-tls", namespace)
    assert live_before["tls.key"].startswith(b"-----BEGIN PRIVATE KEY-----")
    assert kubectl.get("secret", "apata-tls", namespace)["type"] == "kubernetes.io/tls"

    client_crt = partner.sign(csr, days=365)
    kubectl.plugin("import", "apata", "-n", namespace, "--cert", str(client_crt), "--ca", str(partner.ca_crt))
    obj = wait_ready(kubectl, namespace, "apata")
    status = obj["status"]
    assert status["phase"] == "Ready"
    assert status["revision"] == 1
    serial = partner.openssl("x509", "-in", str(client_crt), "-noout", "-serial").decode().strip().split("=")[1]
    assert status["serialNumber"] == serial
    fingerprint = partner.openssl("x509", "-in", str(client_crt), "-noout", "-fingerprint", "-sha256").decode()
    assert status["fingerprintSHA256"] == fingerprint.strip().split("=")[1]
    assert "CN=Partner Test CA" in status["issuer"]
    assert "csr" not in status
    assert any(e["reason"] == "Issued" for e in kubectl.events(namespace, "apata"))

    live = kubectl.secret_data("apata-tls", namespace)
    assert live["tls.key"] == live_before["tls.key"], "the key whose CSR was signed must be the key in service"
    assert live["ca.crt"] == partner.ca_crt.read_bytes()
    (partner.dir / "tls.crt").write_bytes(live["tls.crt"])
    (partner.dir / "tls.key").write_bytes(live["tls.key"])
    cert_pub = partner.openssl("x509", "-in", "tls.crt", "-noout", "-pubkey")
    key_pub = partner.openssl("pkey", "-in", "tls.key", "-pubout")
    assert cert_pub == key_pub
    handshake(partner, partner.dir / "tls.crt", partner.dir / "tls.key")


def handshake(partner: Partner, cert: Path, key: Path) -> None:
    """openssl s_server demanding a client cert from the partner's CA; s_client presents the issued pair."""
    server = partner.dir / "server"
    server.mkdir(exist_ok=True)
    partner.openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "server/server.key", "-out", "server/server.crt",
        "-days", "1", "-subj", "/CN=localhost",
    )  # fmt: skip
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-cert", "server/server.crt", "-key", "server/server.key",
         "-Verify", "1", "-verify_return_error", "-CAfile", str(partner.ca_crt), "-naccept", "1", "-www"],
        cwd=partner.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert srv.stdout is not None
        # -naccept 1: probing the port would use up the one connection, so wait for s_server to say it listens.
        wait_for(lambda: b"ACCEPT" in srv.stdout.readline(), timeout=20, interval=0, what="s_server listening")
        client = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key)],
            input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=20,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr.decode(errors="replace")
        server_out = srv.communicate(timeout=20)[0].decode(errors="replace")
        # The server verified our client certificate against the partner's CA (it aborts otherwise).
        assert "CN = client.example.com\nverify return:1" in server_out, server_out
        assert "verify error" not in server_out.lower(), server_out
    finally:
        srv.kill()


@pytest.mark.parametrize(
    ("case", "reason", "message_part"),
    [
        ("another key", "KeyMismatch", "it was signed for a different CSR"),
        ("common name", "CommonNameMismatch", "'other.example.com' does not equal spec.commonName"),
        ("expired", "Expired", "expired at 2020-02-01T00:00:00Z"),
        ("not yet valid", "NotYetValid", "not valid before 2099-01-01T00:00:00Z"),
        ("unrelated CA", "UntrustedChain", "is not signed by the given CA"),
        ("server usage", "WrongUsage", "does not allow clientAuth"),
        ("junk bytes", "InvalidCertificate", "tls.crt is neither PEM, DER nor PKCS#7"),
        ("empty secret", "InvalidCertificate", "tls.crt is missing or empty"),
    ],
)
def test_bad_signed_certificate_is_rejected_and_changes_nothing(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, tmp_path: Path,
    case: str, reason: str, message_part: str,
) -> None:  # fmt: skip
    csr = create_and_get_csr(kubectl, namespace, "bad")
    live_before = kubectl.get("secret", "bad-tls", namespace)
    files: dict[str, Path | bytes] = {}
    if case == "another key":
        files = {"tls.crt": partner.sign(partner.own_csr()), "ca.crt": partner.ca_crt}
    elif case == "common name":
        files = {"tls.crt": partner.sign(csr, extra=["-subj", "/C=IE/O=X/CN=other.example.com"])}
    elif case == "expired":
        files = {"tls.crt": partner.sign_with_dates(csr, "20200101000000Z", "20200201000000Z")}
    elif case == "not yet valid":
        files = {"tls.crt": partner.sign_with_dates(csr, "20990101000000Z", "20991231000000Z")}
    elif case == "unrelated CA":
        other = Partner(tmp_path / "other", name="Unrelated CA")
        files = {"tls.crt": partner.sign(csr), "ca.crt": other.ca_crt}
    elif case == "server usage":
        (partner.dir / "ext.cnf").write_text("extendedKeyUsage=serverAuth\n")
        files = {"tls.crt": partner.sign(csr, extra=["-extfile", "ext.cnf"]), "ca.crt": partner.ca_crt}
    elif case == "junk bytes":
        files = {"tls.crt": b"\x00\x01this is not a certificate\xff"}
    put_signed(kubectl, namespace, "bad-signed", files)

    obj = wait_reason(kubectl, namespace, "bad", reason)
    assert condition(obj)["status"] == "False"
    assert message_part in condition(obj)["message"]
    warnings = wait_for(
        lambda: [e for e in kubectl.events(namespace, "bad") if e["type"] == "Warning" and e["reason"] == reason],
        what=f"Warning event {reason}",
    )
    assert message_part in warnings[0]["message"]
    live_after = kubectl.get("secret", "bad-tls", namespace)
    assert live_after["data"] == live_before["data"], "a bad upload must leave the live Secret byte-for-byte unchanged"
    assert live_after["metadata"]["resourceVersion"] == live_before["metadata"]["resourceVersion"]


def test_import_plugin_refuses_a_bad_certificate_locally(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    create_and_get_csr(kubectl, namespace, "local")
    wrong = partner.sign(partner.own_csr())
    proc = kubectl.plugin("import", "local", "-n", namespace, "--cert", str(wrong), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    expected = "error: KeyMismatch: the certificate CN=client.example.com (number 1 in tls.crt) is for public key "
    assert len(lines) == 1 and lines[0].startswith(expected + "sha256:"), lines
    assert "but the pending key is sha256:" in lines[0] and "it was signed for a different CSR" in lines[0]
    assert kubectl.get("secret", "local-signed", namespace) is None


def test_restart_between_csr_and_import_keeps_the_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "restart")
    key_before = kubectl.secret_data("restart-tls", namespace)["tls.key"]
    operator.stop()
    # Status is lost too (e.g. restored from a backup without status): the key must still be reused.
    kubectl.run(
        "patch", "mtlscertificate", "restart", "-n", namespace, "--subresource=status", "--type=json",
        "-p", '[{"op": "remove", "path": "/status"}]',
    )  # fmt: skip
    operator.start()
    wait_certificate(kubectl, namespace, "restart", lambda o: (o.get("status") or {}).get("csr"), "CSR republished")
    assert kubectl.secret_data("restart-tls", namespace)["tls.key"] == key_before
    put_signed(kubectl, namespace, "restart-signed", {"tls.crt": partner.sign(csr)})  # signed from the OLD csr
    wait_ready(kubectl, namespace, "restart")
    assert kubectl.secret_data("restart-tls", namespace)["tls.key"] == key_before


def test_plain_kubectl_create_secret_works(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "plain")
    crt = partner.sign(csr)
    kubectl.run(
        "create", "secret", "generic", "plain-signed", "-n", namespace,
        f"--from-file=tls.crt={crt}", f"--from-file=ca.crt={partner.ca_crt}",
    )  # fmt: skip
    obj = wait_ready(kubectl, namespace, "plain", timeout=15)
    assert obj["status"]["notAfter"]


def test_status_table(kubectl: Kubectl, operator: OperatorProcess, namespace: str) -> None:
    create_and_get_csr(kubectl, namespace, "table")
    out = kubectl.plugin("status", "-n", namespace).stdout.splitlines()
    assert out[0].split()[:3] == ["NAME", "PHASE", "COMMON"]
    assert out[0].split() == ["NAME", "PHASE", "COMMON", "NAME", "NOT", "AFTER", "DAYS", "LEFT", "AWAITING", "REASON"]
    row = out[1].split()
    assert row[:5] == ["table", "AwaitingSignature", "client.example.com", "-", "-"]
    assert re.fullmatch(r"\d+s", row[5]), row  # how long the CSR has waited for its signature
    assert row[6] == "AwaitingSignature"
