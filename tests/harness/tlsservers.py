"""Real TLS servers that check client certificates against a CA bundle and a CRL, for the revocation tests:
nginx (Debian's package: ssl_verify_client, ssl_client_certificate, ssl_crl) and Node.js (tls `crl`). Both bind to
127.0.0.1 only. A server reads its CRL at start (nginx: and on reload, SIGHUP), as in production."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.cluster import ROOT, free_port, wait_for

NODE_SERVER = ROOT / "tests" / "e2e" / "clients" / "nodecrlserver.js"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Nginx:
    """nginx in the foreground with one mTLS server; `reload()` re-reads ca.crt and ca.crl (SIGHUP)."""

    def __init__(self, workdir: Path, server_crt: Path, server_key: Path, ca_crt: Path, ca_crl: Path) -> None:
        binary = nginx_binary()
        if binary is None:
            raise AssertionError("nginx is not installed: make deps installs it")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        for sub in ("tmp", "logs"):
            (self.dir / sub).mkdir(exist_ok=True)
        conf = self.dir / "nginx.conf"
        tmp = self.dir / "tmp"
        conf.write_text(f"""
user root;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {self.dir}/logs/access.log;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {server_crt};
    ssl_certificate_key {server_key};
    ssl_verify_client on;
    ssl_verify_depth 4;
    ssl_client_certificate {ca_crt};
    ssl_crl {ca_crl};
    location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
  }}
}}
""")
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "logs" / "stderr.log", "wb"),  # noqa: SIM115 - owned by the child
        )
        wait_for(lambda: _listening(self.port) or None, timeout=10, what="nginx listening")

    def reload(self) -> None:
        """What an operator of the server does after the ConfigMap's files changed: nginx re-reads ssl_crl."""
        before = self.error_log()
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reconfiguring" in self.error_log()[len(before) :] or None, timeout=10, what="nginx reload")
        time.sleep(1.0)  # the new worker takes over; the old one finishes

    def error_log(self) -> str:
        path = self.dir / "logs" / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running_nginx(workdir: Path, server_crt: Path, server_key: Path, ca_crt: Path, ca_crl: Path) -> Iterator[Nginx]:
    server = Nginx(workdir, server_crt, server_key, ca_crt, ca_crl)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_node_server(workdir: Path, server_crt: Path, server_key: Path, ca_crt: Path, ca_crl: Path) -> Iterator[int]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["node", str(NODE_SERVER), str(port), str(server_crt), str(server_key), str(ca_crt), str(ca_crl)],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "node-server.log", "wb"),  # noqa: SIM115 - owned by the child
    )
    try:
        wait_for(lambda: _listening(port) or None, timeout=15, what="node server listening")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def https_status(port: int, server_ca: Path, client_crt: Path, client_key: Path) -> int | str:
    """The HTTP status a client presenting this certificate gets, or the TLS error when the handshake fails (a
    server may refuse a revoked certificate in the handshake, as Node does, or with a 400, as nginx does)."""
    context = ssl.create_default_context(cafile=str(server_ca))
    context.load_cert_chain(str(client_crt), str(client_key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn._context.check_hostname = False  # type: ignore[attr-defined]  # the server certificate is for localhost
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except (ssl.SSLError, ConnectionError) as exc:
        return f"TLS: {exc}"
    finally:
        conn.close()


def server_certificate(ca_dir: Path, openssl_ca_crt: Path, openssl_ca_key: Path) -> tuple[Path, Path]:
    """A serverAuth certificate for 127.0.0.1/localhost, signed by the test's server CA."""
    key, csr, crt = ca_dir / "server.key", ca_dir / "server.csr", ca_dir / "server.crt"
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", "/CN=localhost"], check=True, capture_output=True)  # fmt: skip
    ext = ca_dir / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(openssl_ca_crt), "-CAkey",
                    str(openssl_ca_key), "-CAcreateserial", "-out", str(crt), "-days", "30", "-sha256",
                    "-extfile", str(ext)], check=True, capture_output=True)  # fmt: skip
    return crt, key
