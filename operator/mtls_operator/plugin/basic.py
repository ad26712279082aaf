"""`kubectl mtls csr | import | status`: the human side of the hand-signed flow."""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import (
    CA_CRT,
    CERTIFICATE_LABEL,
    GROUP,
    OPAQUE_SECRET,
    PLURAL,
    TLS_CRT,
    TLS_KEY,
    TLS_SECRET,
    VERSION,
    signed_secret_name,
)
from mtls_operator.api.spec import parse_spec
from mtls_operator.api.status import find_condition, parse_time, utcnow
from mtls_operator.pki.bundle import UnreadableFile, read_certificates
from mtls_operator.pki.certificates import describe_certificate, to_pem
from mtls_operator.pki.csr import load_csr
from mtls_operator.pki.keys import PrivateKey, key_spec_of, load_private_key
from mtls_operator.pki.verify import Rejection, verify_signed_certificate
from mtls_operator.plugin.common import PluginError, age, get_certificate, print_table


def cmd_csr(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    cert = get_certificate(custom, namespace, args.name)
    csr = (cert.get("status") or {}).get("csr")
    if not csr:
        phase = (cert.get("status") or {}).get("phase", "Pending")
        raise PluginError(f'mtlscertificate "{args.name}" has no pending CSR (phase {phase})')
    sys.stdout.write(csr if csr.endswith("\n") else csr + "\n")
    return 0


def cmd_import(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    """Checks locally with the operator's own checks, then stores the certificate for the operator.

    Without --key: a partner-signed certificate for the pending CSR (checked against the CSR's public key).
    With --key (bring your own): a key and certificate made before the operator, for a certificate with none in
    service; the key goes to the apiserver in a kubernetes.io/tls Secret, as `kubectl create secret tls` sends it.
    """
    cert = get_certificate(custom, namespace, args.name)
    status = cert.get("status") or {}
    try:
        spec = parse_spec(cert)
    except ValueError as exc:
        raise PluginError(f'mtlscertificate "{args.name}": {exc}') from None
    if spec.signer.kind != "manual":
        raise PluginError(f'mtlscertificate "{args.name}" is not signed by hand (signer {spec.signer.kind})')
    tls_crt = Path(args.cert).read_bytes()
    ca_crt = Path(args.ca).read_bytes() if args.ca else None
    key_pem = Path(args.key).read_bytes() if args.key else None
    key = _checked_key(args.name, cert, key_pem) if key_pem else _pending_public_key(args.name, status)
    verdict = verify_signed_certificate(tls_crt, ca_crt, key, spec.subject.common_name, utcnow())
    if isinstance(verdict, Rejection):
        raise PluginError(f"{verdict.reason}: {verdict.message}")
    for file, note in zip((args.cert, args.ca), _dropped_keys(tls_crt, ca_crt), strict=True):
        if note:
            print(f"warning: {file} {note}; only its certificates are uploaded", file=sys.stderr)
    secret_name = spec.signer.secret_name or signed_secret_name(spec.name)
    # What travels is the canonical form the operator will serve (leaf + intermediates, then the roots), as PEM
    # re-encoded from the parsed certificates: whatever else the files held (a pasted private key) stays here.
    data = {TLS_CRT: to_pem(verdict.chain)}
    if verdict.ca_certificates:
        data[CA_CRT] = to_pem(verdict.ca_certificates)
    if key_pem:
        data[TLS_KEY] = key_pem
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": {CERTIFICATE_LABEL: args.name}},
        "type": TLS_SECRET if key_pem else OPAQUE_SECRET,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.delete_namespaced_secret(secret_name, namespace)  # a Secret's type cannot change in place
        core.create_namespaced_secret(namespace, body)
    print(f"secret/{secret_name} written; the operator verifies it and puts it in service")
    if key_pem:
        _wait_and_remove_key_copy(args, custom, core, namespace, secret_name)
    elif args.timeout > 0:
        _wait_for_verdict(args, custom, namespace, secret_name, verdict.leaf, find_condition(status))
    return 0


def _wait_for_verdict(
    args: argparse.Namespace,
    custom: Any,
    namespace: str,
    secret_name: str,
    leaf: x509.Certificate,
    before: dict[str, Any],
) -> None:
    """The plugin holds only the CSR's public key, so one check is the operator's alone: OpenSSL's handshake, which
    needs the private key. Wait for that verdict, so the user hears the final answer from this command."""
    serial = describe_certificate(leaf).serial_number
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = get_certificate(custom, namespace, args.name).get("status") or {}
        ready = find_condition(status)
        if status.get("serialNumber") == serial and ready.get("status") == "True":
            print(f"in service: serial {serial}")
            return
        refused = ready.get("status") == "False" and f"Secret {secret_name} rejected" in (ready.get("message") or "")
        if refused and ready != before:
            raise PluginError(f"the operator rejected it: {ready.get('reason')}: {ready.get('message')}")
        time.sleep(0.5)
    print(f"no verdict from the operator after {args.timeout:.0f}s: check `kubectl mtls status {args.name}`",
          file=sys.stderr)  # fmt: skip


def _dropped_keys(tls_crt: bytes, ca_crt: bytes | None) -> tuple[str | None, str | None]:
    """What each file held besides certificates that must not travel (read again: the verdict keeps no files)."""
    notes: list[str | None] = []
    for data in (tls_crt, ca_crt):
        try:
            keys = read_certificates(data, "file").private_keys if data else 0
        except UnreadableFile:
            keys = 0
        notes.append(f"holds {keys} private key block(s): dropped, never uploaded" if keys else None)
    return notes[0], notes[1]


def _pending_public_key(name: str, status: dict[str, Any]) -> Any:
    if not status.get("csr"):
        raise PluginError(f'mtlscertificate "{name}" has no pending CSR to import a certificate for')
    public_key = load_csr(status["csr"]).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PluginError(f"the pending CSR has an unsupported key type {type(public_key).__name__}")
    return public_key


def _checked_key(name: str, cert: dict[str, Any], key_pem: bytes) -> PrivateKey:
    if (cert.get("status") or {}).get("notAfter"):
        raise PluginError(
            f'mtlscertificate "{name}" already has a certificate in service: --key is for bringing an existing key '
            "and certificate to a certificate with none yet (renewals use keys the operator generates)"
        )
    try:
        key = load_private_key(key_pem)
    except ValueError as exc:
        raise PluginError(f"--key: {exc}") from None
    wanted = parse_spec(cert).key
    if key_spec_of(key) != wanted:
        raise PluginError(
            f"--key is {key_spec_of(key)} but spec.privateKey asks for {wanted}: set spec.privateKey to match; "
            "nothing was changed"
        )
    return key


def _wait_and_remove_key_copy(args: argparse.Namespace, custom: Any, core: Any, namespace: str, secret: str) -> None:
    """Once the pair is in service, the key lives in spec.secretName only: remove the copy we uploaded."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = get_certificate(custom, namespace, args.name).get("status") or {}
        ready = find_condition(status)
        if ready.get("status") == "True" and status.get("notAfter"):
            core.delete_namespaced_secret(secret, namespace)
            print(f"in service; secret/{secret} (a copy of the key) removed")
            return
        if ready.get("status") == "False" and ready.get("reason") not in (None, "AwaitingSignature"):
            raise PluginError(f"the operator rejected it: {ready.get('reason')}: {ready.get('message')}")
        time.sleep(1)
    print(f"not in service after {args.timeout:.0f}s: check `kubectl mtls status {args.name}`; then delete "
          f"secret/{secret}, which holds a copy of the key", file=sys.stderr)  # fmt: skip


def _days_left(not_after: str | None) -> str:
    moment = parse_time(not_after)
    return "-" if moment is None else str((moment - utcnow()).days)


def cmd_status(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    if args.name:
        items = [get_certificate(custom, namespace, args.name)]
    else:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL).get("items", [])
    rows = [("NAME", "PHASE", "COMMON NAME", "NOT AFTER", "DAYS LEFT", "AWAITING", "REASON")]
    for item in items:
        status = item.get("status") or {}
        ready = find_condition(status)
        awaiting = status.get("csrPublishedTime") if status.get("csr") else None
        rows.append(
            (
                item["metadata"]["name"],
                status.get("phase", "Pending"),
                item.get("spec", {}).get("commonName", ""),
                status.get("notAfter", "-"),
                _days_left(status.get("notAfter")),
                age(parse_time(awaiting)),
                ready.get("reason", "-"),
            )
        )
    print_table(rows)
    return 0
