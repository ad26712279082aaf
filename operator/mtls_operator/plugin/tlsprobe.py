"""A real TLS handshake presenting a client certificate, and which side refused it and why (no Kubernetes here).

The private key never touches a disk: Python's ssl module loads keys only from a path, so the PEM goes into an
anonymous in-memory file (memfd) that is read once through /proc/self/fd and closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography import x509

# OpenSSL's names for the alerts a server sends when it refuses a client certificate, as the partner's guide and
# `openssl s_client` call them.
ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate_expired",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake_failure",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported_certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate_revoked",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate_unknown",
    "TLSV1_ALERT_ACCESS_DENIED": "access_denied",
    "TLSV1_ALERT_DECRYPT_ERROR": "decrypt_error",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate_required",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
}
ALERT_MEANING = {
    "unknown_ca": "the server does not trust the CA that signed our certificate",
    "bad_certificate": "the server rejected our certificate (bad or unacceptable)",
    "certificate_expired": "the server says our certificate has expired (or is not valid yet)",
    "handshake_failure": "the server could not agree on parameters, or requires a certificate it did not get",
    "certificate_required": "the server requires a client certificate",
    "access_denied": "the server accepted the certificate but denies this client access",
}

CLIENT = "client"  # the problem is on our side (our certificate), reported by the server
SERVER = "server"  # the problem is on the server's side (its certificate, as we judge it)
NETWORK = "network"  # no TLS conversation at all


@dataclass
class PeerCertificate:
    subject: str
    issuer: str
    not_after: str


@dataclass
class HandshakeResult:
    ok: bool
    side: str | None = None  # CLIENT | SERVER | NETWORK when not ok
    reason: str = ""  # short: "unknown_ca", "connection refused", "server certificate not trusted", ...
    detail: str = ""
    tls_version: str | None = None
    cipher: str | None = None
    server_certificate: PeerCertificate | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("mtls-check", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _describe(der: bytes | None) -> PeerCertificate | None:
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    return PeerCertificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _server_certificate(host: str, port: int, timeout: float) -> PeerCertificate | None:
    """The server's certificate without judging it: to show what we refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return _describe(tls.getpeercert(binary_form=True))
    except (OSError, ValueError):
        return None


def _alert(exc: ssl.SSLError) -> str | None:
    text = f"{exc.reason or ''} {exc}".upper()
    return next((name for code, name in ALERTS.items() if code in text), None)


def handshake(
    host: str,
    port: int,
    certificate_pem: bytes,
    key_pem: bytes,
    server_ca_pem: bytes | None,
    *,
    timeout: float = 5.0,
) -> HandshakeResult:
    """Connects, presents the certificate, verifies the server against `server_ca_pem` (system roots when None)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_ca_pem:
        context.load_verify_locations(cadata=server_ca_pem.decode())
    else:
        context.load_default_certs()
    with _in_memory_file(certificate_pem + b"\n" + key_pem) as path:
        context.load_cert_chain(path)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return HandshakeResult(False, NETWORK, "connection refused", f"nothing accepts connections on {host}:{port}")
    except OSError as exc:
        return HandshakeResult(False, NETWORK, "unreachable", f"{host}:{port}: {exc.strerror or exc}")
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            return HandshakeResult(
                False, SERVER, "server certificate not trusted",
                f"we refused the server's certificate: {exc.verify_message}",
                server_certificate=_server_certificate(host, port, timeout),
            )  # fmt: skip
        except ssl.SSLEOFError:
            return HandshakeResult(
                False, NETWORK, "closed", f"{host}:{port} closed the connection during the handshake"
            )
        except ssl.SSLError as exc:
            return _refused(exc, host, port, timeout)
        except (ConnectionResetError, TimeoutError, OSError) as exc:
            return HandshakeResult(False, NETWORK, "no TLS", f"the connection broke during the handshake: {exc}")
        with tls:
            result = HandshakeResult(
                True, tls_version=tls.version(), cipher=(tls.cipher() or ("",))[0],
                server_certificate=_describe(tls.getpeercert(binary_form=True)),
            )  # fmt: skip
            # TLS 1.3: the server judges our certificate after our side of the handshake is done; its verdict
            # (an alert) arrives with the first read. Silence until the timeout means it accepted us.
            tls.settimeout(min(timeout, 2.0))
            try:
                tls.recv(1)
            except ssl.SSLError as exc:
                return _refused(exc, host, port, timeout, result.server_certificate)
            except (TimeoutError, OSError):
                pass
            return result


def _refused(
    exc: ssl.SSLError, host: str, port: int, timeout: float, server_certificate: PeerCertificate | None = None
) -> HandshakeResult:
    alert = _alert(exc)
    if alert is not None:
        meaning = ALERT_MEANING.get(alert, "the server refused the handshake")
        return HandshakeResult(
            False, CLIENT, alert, f"the server sent the alert {alert}: {meaning}",
            server_certificate=server_certificate or _server_certificate(host, port, timeout),
        )  # fmt: skip
    text = str(exc).lower()
    if "wrong version number" in text or "record layer failure" in text or "packet length too long" in text:
        return HandshakeResult(False, NETWORK, "not TLS", f"{host}:{port} does not speak TLS ({exc.reason})")
    return HandshakeResult(False, NETWORK, "handshake failed", f"{exc.reason or exc}")
