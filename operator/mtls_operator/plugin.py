"""`kubectl mtls`: the human side of the hand-signed flow (get the CSR, import the signed certificate, status).

Uses the kubeconfig and namespace like kubectl does. It never reads private keys: the import is checked
against the public key of the pending CSR, with the same checks and messages as the operator.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import sys
from pathlib import Path
from typing import Any

import kubernetes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kubernetes.client.exceptions import ApiException

from . import GROUP, PLURAL, VERSION
from .kube import CERTIFICATE_LABEL
from .pki.csr import load_csr
from .pki.verify import Rejection, verify_signed_certificate


class PluginError(Exception):
    pass


def _namespace(explicit: str | None, context: str | None, config_file: str | None) -> str:
    """-n wins; else the namespace of the (given or current) kubeconfig context; else default."""
    if explicit:
        return explicit
    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
    if context:
        active = next((c for c in contexts if c["name"] == context), active)
    return (active.get("context") or {}).get("namespace") or "default"


def _get(custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return,return-value]
    except ApiException as exc:
        if exc.status == 404:
            raise PluginError(f'mtlscertificate "{name}" not found in namespace "{namespace}"') from None
        raise


def cmd_csr(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    cert = _get(custom, namespace, args.name)
    csr = (cert.get("status") or {}).get("csr")
    if not csr:
        phase = (cert.get("status") or {}).get("phase", "Pending")
        raise PluginError(f'mtlscertificate "{args.name}" has no pending CSR (phase {phase})')
    sys.stdout.write(csr if csr.endswith("\n") else csr + "\n")
    return 0


def cmd_import(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    cert = _get(custom, namespace, args.name)
    spec, status = cert.get("spec") or {}, cert.get("status") or {}
    signer = spec.get("signer") or {"manual": {}}
    if "manual" not in signer:
        raise PluginError(f'mtlscertificate "{args.name}" is not signed by hand (signer {next(iter(signer))})')
    if not status.get("csr"):
        raise PluginError(f'mtlscertificate "{args.name}" has no pending CSR to import a certificate for')
    tls_crt = Path(args.cert).read_bytes()
    ca_crt = Path(args.ca).read_bytes() if args.ca else None
    public_key = load_csr(status["csr"]).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PluginError(f"the pending CSR has an unsupported key type {type(public_key).__name__}")
    now = datetime.datetime.now(datetime.UTC)
    verdict = verify_signed_certificate(tls_crt, ca_crt, public_key, spec["commonName"], now)
    if isinstance(verdict, Rejection):
        raise PluginError(f"{verdict.reason}: {verdict.message}")
    secret_name = (signer.get("manual") or {}).get("signedSecretName") or f"{args.name}-signed"
    data = {"tls.crt": base64.b64encode(tls_crt).decode()}
    if ca_crt:
        data["ca.crt"] = base64.b64encode(ca_crt).decode()
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": {CERTIFICATE_LABEL: args.name}},
        "type": "Opaque",
        "data": data,
    }
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(secret_name, namespace, body)
    print(f"secret/{secret_name} written; the operator verifies it and puts it in service")
    return 0


def _days_left(not_after: str | None) -> str:
    if not not_after:
        return "-"
    moment = datetime.datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return str((moment - datetime.datetime.now(datetime.UTC)).days)


def cmd_status(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    if args.name:
        items = [_get(custom, namespace, args.name)]
    else:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL).get("items", [])
    rows = [("NAME", "PHASE", "COMMON NAME", "NOT AFTER", "DAYS LEFT", "REASON")]
    for item in items:
        status = item.get("status") or {}
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        rows.append(
            (
                item["metadata"]["name"],
                status.get("phase", "Pending"),
                item.get("spec", {}).get("commonName", ""),
                status.get("notAfter", "-"),
                _days_left(status.get("notAfter")),
                ready.get("reason", "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl mtls", description=__doc__)
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--kubeconfig", help="path to the kubeconfig file")
    sub = parser.add_subparsers(dest="command", required=True)
    csr = sub.add_parser("csr", help="print the pending CSR PEM (kubectl mtls csr NAME > client.csr)")
    csr.add_argument("name")
    imp = sub.add_parser("import", help="check a signed certificate locally, then store it for the operator")
    imp.add_argument("name")
    imp.add_argument("--cert", required=True, help="the signed certificate (leaf, then any intermediates)")
    imp.add_argument("--ca", help="the partner's CA certificate")
    st = sub.add_parser("status", help="a table of certificates and days left")
    st.add_argument("name", nargs="?")
    for p in (csr, imp, st):
        p.add_argument("-n", "--namespace", dest="sub_namespace", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"csr": cmd_csr, "import": cmd_import, "status": cmd_status}
    try:
        kubernetes.config.load_kube_config(config_file=args.kubeconfig, context=args.context)
        namespace = _namespace(args.sub_namespace or args.namespace, args.context, args.kubeconfig)
        api = kubernetes.client.ApiClient()
        return commands[args.command](
            args, kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api), namespace
        )
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiException as exc:
        print(f"error: API request failed: {exc.status} {exc.reason}", file=sys.stderr)
    except kubernetes.config.ConfigException as exc:
        print(f"error: kubeconfig: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
