"""`kubectl mtls inspect NAME`: what is in service, and what is pending — never the key."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import CA_CRT, GROUP, REVOCATION_PLURAL, TLS_CRT, VERSION
from mtls_operator.api.spec import secret_name_of
from mtls_operator.api.status import find_condition, format_time, parse_time, utcnow
from mtls_operator.pki.certificates import (
    common_name_of,
    describe_certificate,
    dns_names_of,
    extended_key_usages,
    first_certificate,
    load_pem_bundle,
)
from mtls_operator.pki.csr import load_csr
from mtls_operator.pki.keys import key_spec_of
from mtls_operator.pki.verify import in_service_problem
from mtls_operator.plugin.common import age, get_certificate, get_secret


def _fmt(moment: Any) -> str:
    return format_time(moment)


def in_service(cert_data: bytes | None, ca_data: bytes | None) -> dict[str, Any] | None:
    leaf = first_certificate(cert_data)
    if leaf is None:
        return None
    info = describe_certificate(leaf)
    chain = load_pem_bundle(cert_data or b"")
    anchors = load_pem_bundle(ca_data) if ca_data and ca_data.strip() else []
    if anchors:
        problem = in_service_problem(chain, anchors, None, utcnow())
        verification = "verified to ca.crt" if problem is None else f"FAILED: {problem}"
    else:
        verification = "not checked: no ca.crt"
    return {
        "subject": leaf.subject.rfc4514_string(),
        "commonName": common_name_of(leaf),
        "dnsNames": dns_names_of(leaf),
        "issuer": info.issuer,
        "serialNumber": info.serial_number,
        "notBefore": _fmt(info.not_before),
        "notAfter": _fmt(info.not_after),
        "daysLeft": round((info.not_after - utcnow()).total_seconds() / 86400, 1),
        "key": str(key_spec_of(leaf.public_key())),  # type: ignore[arg-type]
        "extendedKeyUsages": extended_key_usages(leaf),
        "fingerprintSHA256": info.fingerprint_sha256,
        "chainLength": len(chain),
        "chainVerification": verification,
    }


def pending(status: dict[str, Any]) -> dict[str, Any] | None:
    if status.get("csr"):
        csr = load_csr(status["csr"])
        published = parse_time(status.get("csrPublishedTime"))
        return {
            "kind": "CSR in status.csr (kubectl mtls csr)",
            "publishedTime": status.get("csrPublishedTime"),
            "waiting": age(published),
            "key": str(key_spec_of(csr.public_key())),  # type: ignore[arg-type]
            "subject": csr.subject.rfc4514_string(),
        }
    if status.get("certificateSigningRequest"):
        return {"kind": "CertificateSigningRequest", "name": status["certificateSigningRequest"]}
    return None


def revocations(custom: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The MtlsRevocations that name this certificate (who, when, why, whether the CRL lists it). A user without
    read access to revocations sees none (and is told so)."""
    try:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, REVOCATION_PLURAL)
    except ApiException as exc:
        if exc.status == 403:
            return [{"note": "not allowed to list mtlsrevocations in this namespace"}]
        if exc.status == 404:
            return []  # the CRD is not installed (an operator older than 0.2.0)
        raise
    listed = []
    for item in found.get("items") or []:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        if spec.get("certificateName") != name:
            continue
        published = find_condition(status, "Published")
        listed.append(
            {
                "revocation": item["metadata"]["name"],
                "serialNumber": status.get("serialNumber", "-"),
                "reason": spec.get("reason"),
                "requestedBy": spec.get("requestedBy"),
                "time": item["metadata"].get("creationTimestamp"),
                "published": f"{published.get('status', 'Unknown')}: {published.get('message', 'not yet seen')}",
            }
        )
    return listed


def cmd_inspect(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    cert = get_certificate(custom, namespace, args.name)
    status = cert.get("status") or {}
    secret = get_secret(core, namespace, secret_name_of(cert))
    report = {
        "name": f"{namespace}/{args.name}",
        "phase": status.get("phase", "Pending"),
        "secret": secret_name_of(cert),
        "inService": in_service(secret.get(TLS_CRT), secret.get(CA_CRT)) if secret else None,
        "pending": pending(status),
        "revocations": revocations(custom, namespace, args.name),
    }
    if args.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"MtlsCertificate {report['name']} (phase {report['phase']}, Secret {report['secret']})")
    current = report["inService"]
    if current is None:
        print("In service: nothing yet")
    else:
        print("In service:")
        for label, key in (
            ("Subject", "subject"), ("DNS names", "dnsNames"), ("Issuer", "issuer"), ("Serial", "serialNumber"),
            ("Not before", "notBefore"), ("Not after", "notAfter"), ("Days left", "daysLeft"), ("Key", "key"),
            ("Extended key usage", "extendedKeyUsages"), ("SHA-256 fingerprint", "fingerprintSHA256"),
            ("Chain", "chainVerification"),
        ):  # fmt: skip
            value = current[key]
            print(f"  {label + ':':<21}{', '.join(value) if isinstance(value, list) else value}")
    waiting = report["pending"]
    if waiting:
        print("Pending request:")
        for key, value in waiting.items():
            print(f"  {key + ':':<21}{value}")
    for revocation in report["revocations"]:
        print("Revoked:" if "note" not in revocation else "Revocations:")
        for key, value in revocation.items():
            print(f"  {key + ':':<21}{value}")
    return 0
