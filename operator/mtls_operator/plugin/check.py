"""`kubectl mtls check NAME [--endpoint HOST:PORT]`: the partner guide's troubleshooting list, run for you.

In order: dates; the CN equals the host you connect to (the partner's rule); key, clientAuth and chain; whether
the certificate is revoked according to the CRL it names (fetched, bounded; offline is a warning); then, with
--endpoint, a real TLS handshake presenting the certificate, saying which side refused it and why.
Exit 0 when everything passes (warnings allowed), 1 when a check fails, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mtls_operator.api.names import CA_CRT, TLS_CRT, TLS_KEY
from mtls_operator.api.spec import renew_before_of, secret_name_of
from mtls_operator.api.status import parse_time, utcnow
from mtls_operator.pki.certificates import (
    allows_client_auth,
    common_name_of,
    dns_names_of,
    first_certificate,
    load_pem_bundle,
)
from mtls_operator.pki.keys import load_private_key, same_public_key
from mtls_operator.pki.verify import in_service_problem
from mtls_operator.plugin import tlsprobe
from mtls_operator.plugin.common import PluginError, UsageError, get_certificate, get_secret
from mtls_operator.plugin.revocationcheck import revocation_status

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    message: str
    side: str | None = None  # on FAIL: "client" (ours), "server" (theirs) or "network"


@dataclass
class Report:
    certificate: str
    endpoint: str | None
    checks: list[Check] = field(default_factory=list)
    tls: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def add(self, name: str, status: str, message: str, side: str | None = None) -> None:
        self.checks.append(Check(name, status, message, side if status == FAIL else None))


def split_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--endpoint {text!r} must be HOST:PORT, e.g. api.partner.example:443")
    return host, int(port)


def check_validity(report: Report, leaf: Any, cert: dict[str, Any], moment: datetime.datetime) -> None:
    not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    days = (not_after - moment).total_seconds() / 86400
    status = cert.get("status") or {}
    renew_at = parse_time(status.get("renewalTime")) or not_after - renew_before_of(cert)
    if moment >= not_after:
        report.add("validity", FAIL, f"expired at {not_after:%Y-%m-%dT%H:%M:%SZ}", tlsprobe.CLIENT)
    elif moment < not_before:
        report.add("validity", FAIL, f"not valid before {not_before:%Y-%m-%dT%H:%M:%SZ}", tlsprobe.CLIENT)
    elif moment >= renew_at:
        report.add("validity", WARN, f"{days:.1f} days left: inside the renewal window (renew now)")
    else:
        report.add("validity", PASS, f"valid until {not_after:%Y-%m-%dT%H:%M:%SZ} ({days:.0f} days left)")


def check_names(report: Report, leaf: Any, host: str | None) -> None:
    cn, dns = common_name_of(leaf), dns_names_of(leaf)
    if host is None:
        report.add("common name", PASS, f"CN={cn} (give --endpoint to compare it with the host you connect to)")
    elif cn == host:
        report.add("common name", PASS, f"CN={cn} equals the endpoint host")
    else:
        report.add(
            "common name", FAIL,
            f"CN={cn!r} does not equal the endpoint host {host!r}: the partner requires the CN to be exactly "
            "the hostname used to connect",
            tlsprobe.CLIENT,
        )  # fmt: skip
    if dns and host is not None and host not in dns:
        report.add("dns names", WARN, f"{host} is not among the DNS names {', '.join(dns)}")
    elif dns:
        report.add("dns names", PASS, ", ".join(dns))


def check_material(
    report: Report, chain: list[Any], key_pem: bytes | None, ca_pem: bytes | None, moment: datetime.datetime
) -> None:
    leaf = chain[0]
    key = None
    try:
        key = load_private_key(key_pem or b"")
    except ValueError as exc:
        report.add("key", FAIL, f"tls.key unusable: {exc}", tlsprobe.CLIENT)
    else:
        if same_public_key(key, leaf.public_key()):
            report.add("key", PASS, "tls.key matches the certificate")
        else:
            report.add("key", FAIL, "tls.key does not match the certificate's public key", tlsprobe.CLIENT)
    if allows_client_auth(leaf):
        report.add("client auth", PASS, "extended key usage allows clientAuth")
    else:
        report.add("client auth", FAIL, "extended key usage does not allow clientAuth", tlsprobe.CLIENT)
    anchors = load_pem_bundle(ca_pem) if ca_pem and ca_pem.strip() else []
    if not anchors:
        report.add("chain", WARN, "no ca.crt in the Secret: the chain cannot be checked")
        return
    problem = in_service_problem(chain, anchors, key, moment)
    if problem:
        report.add("chain", FAIL, f"a server trusting ca.crt refuses it: {problem}", tlsprobe.CLIENT)
    else:
        report.add("chain", PASS, "verifies to ca.crt as an OpenSSL server does, and as Go's rules require")


def check_handshake(
    report: Report, host: str, port: int, cert_pem: bytes, key_pem: bytes, server_ca: bytes | None
) -> None:
    result = tlsprobe.handshake(host, port, cert_pem, key_pem, server_ca)
    server = asdict(result.server_certificate) if result.server_certificate else None
    report.tls = {"version": result.tls_version, "cipher": result.cipher, "serverCertificate": server}
    if result.ok:
        report.add("handshake", PASS, f"{result.tls_version} {result.cipher}; the server accepted our certificate")
        return
    side = {"client": "our side", "server": "the server's side", "network": "the connection"}[result.side or "network"]
    report.add("handshake", FAIL, f"{result.reason}: {result.detail} (problem on {side})", result.side)


def run_checks(
    cert: dict[str, Any], secret: Any, endpoint: str | None, server_ca: bytes | None, moment: datetime.datetime
) -> Report:
    meta = cert["metadata"]
    report = Report(f"{meta['namespace']}/{meta['name']}", endpoint)
    host, port = split_endpoint(endpoint) if endpoint else (None, 0)
    cert_pem = secret.get(TLS_CRT) if secret else None
    leaf = first_certificate(cert_pem)
    if leaf is None:
        report.add("certificate", FAIL, "no certificate in service yet (see kubectl mtls status)", tlsprobe.CLIENT)
        return report
    chain = load_pem_bundle(cert_pem or b"")
    check_validity(report, leaf, cert, moment)
    check_names(report, leaf, host)
    check_material(report, chain, secret.get(TLS_KEY), secret.get(CA_CRT), moment)
    issuers = chain[1:] + (load_pem_bundle(secret.data[CA_CRT]) if secret.get(CA_CRT) else [])
    status, message = revocation_status(leaf, issuers, moment)
    report.add("revocation", status, message, tlsprobe.CLIENT)
    if host is not None and cert_pem and secret.get(TLS_KEY):
        check_handshake(report, host, port, cert_pem, secret.data[TLS_KEY], server_ca or secret.get(CA_CRT))
    return report


def print_report(report: Report) -> None:
    print(f"check {report.certificate}" + (f" against {report.endpoint}" if report.endpoint else ""))
    for c in report.checks:
        side = f" [{c.side} side]" if c.side else ""
        print(f"  {c.status.upper():<5} {c.name:<12} {c.message}{side}")
    server = (report.tls or {}).get("serverCertificate")
    if server:
        print(f"        server certificate: subject {server['subject']}, issuer {server['issuer']}, "
              f"expires {server['not_after']}")  # fmt: skip
    failed = sum(c.status == FAIL for c in report.checks)
    warned = sum(c.status == WARN for c in report.checks)
    print(f"result: {'PASS' if report.ok else 'FAIL'} ({failed} failed, {warned} warnings)")


def cmd_check(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    if args.endpoint:
        split_endpoint(args.endpoint)  # usage errors before any API call
    server_ca = None
    if args.server_ca:
        try:
            with open(args.server_ca, "rb") as f:
                server_ca = f.read()
        except OSError as exc:
            raise UsageError(f"--server-ca: {exc.strerror}: {args.server_ca}") from None
    cert = get_certificate(custom, namespace, args.name)
    secret_name = secret_name_of(cert)
    secret = get_secret(core, namespace, secret_name)
    if secret is None and not (cert.get("status") or {}).get("notAfter"):
        raise PluginError(f"Secret {secret_name} does not exist yet: nothing in service to check")
    report = run_checks(cert, secret, args.endpoint, server_ca, utcnow())
    if args.output == "json":
        out = {"certificate": report.certificate, "endpoint": report.endpoint, "ok": report.ok,
               "checks": [asdict(c) for c in report.checks], "tls": report.tls}  # fmt: skip
        print(json.dumps(out, indent=2))
    else:
        print_report(report)
    return 0 if report.ok else 1
