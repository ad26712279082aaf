"""`kubectl mtls`: certificates for mutual TLS, from the command line (a kubectl plugin).

  csr      print the pending CSR to send to the partner
  import   check a signed certificate (or your own key + certificate) locally, then hand it to the operator
  status   a table: phase, expiry, days left, how long a CSR has waited
  inspect  what is in service (subject, issuer, dates, key, usages, fingerprint, chain) and what is pending
  check    the partner guide's troubleshooting list, with a real TLS handshake against --endpoint
  renew    ask the operator to renew now (new key and CSR for hand-signed certificates)
  revoke   take back a certificate an issuer of ours signed (an MtlsRevocation: the issuer's CRL lists it)
  record   record yourself as the requester of certificates (where no admission policy records it for you)

Uses the kubeconfig and namespace like kubectl does. Private keys are read only by `check` (in memory, for the
handshake) and sent only by `import --key` (to the apiserver); they are never printed or written to disk.
"""

from __future__ import annotations

import argparse
import sys

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.plugin.basic import cmd_csr, cmd_import, cmd_status
from mtls_operator.plugin.check import cmd_check
from mtls_operator.plugin.common import PluginError, UsageError, namespace_of
from mtls_operator.plugin.inspection import cmd_inspect
from mtls_operator.plugin.record import cmd_record
from mtls_operator.plugin.renew import cmd_renew
from mtls_operator.plugin.revoke import cmd_revoke

COMMANDS = {
    "csr": cmd_csr, "import": cmd_import, "status": cmd_status,
    "inspect": cmd_inspect, "check": cmd_check, "renew": cmd_renew, "revoke": cmd_revoke, "record": cmd_record,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl mtls", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--kubeconfig", help="path to the kubeconfig file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    csr = sub.add_parser("csr", help="print the pending CSR PEM (kubectl mtls csr NAME > client.csr)")
    csr.add_argument("name")
    imp = sub.add_parser("import", help="check a signed certificate (or your own key + certificate), then store it")
    imp.add_argument("name")
    imp.add_argument(
        "--cert",
        required=True,
        help="the signed certificate as the partner sent it: PEM, DER (.cer) or "
        "PKCS#7 (.p7b), with or without its chain, in any order; a private key in it is never uploaded",
    )
    imp.add_argument("--ca", help="the partner's CA certificate(s), in any of the same formats")
    imp.add_argument("--key", help="bring your own: the private key of --cert, for a certificate with none in service")
    imp.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds to wait for the operator's verdict (it alone can run the handshake check, which needs the "
        "private key); 0: do not wait",
    )
    st = sub.add_parser("status", help="a table of certificates, days left and how long CSRs have waited")
    st.add_argument("name", nargs="?")
    ins = sub.add_parser("inspect", help="what is in service and what is pending (never the key)")
    ins.add_argument("name")
    ins.add_argument("-o", "--output", choices=["text", "json"], default="text")
    chk = sub.add_parser("check", help="check the certificate in service, and a TLS handshake with --endpoint")
    chk.add_argument("name")
    chk.add_argument("--endpoint", metavar="HOST:PORT", help="connect and present the certificate")
    chk.add_argument("--server-ca", metavar="FILE", help="CA to verify the server with (default: the Secret's ca.crt)")
    chk.add_argument("-o", "--output", choices=["text", "json"], default="text")
    ren = sub.add_parser("renew", help="renew now (like cmctl renew): NAME..., -l SELECTOR or --all")
    ren.add_argument("names", nargs="*", metavar="NAME")
    ren.add_argument("-l", "--selector", help="label selector")
    ren.add_argument("--all", action="store_true", help="every certificate in the namespace (with -A: everywhere)")
    ren.add_argument("-A", "--all-namespaces", action="store_true")
    rev = sub.add_parser("revoke", help="revoke: NAME (its certificate in service) or --serial S --issuer KIND/NAME")
    rev.add_argument("name", nargs="?", help="the MtlsCertificate (with --serial: the MtlsRevocation's name)")
    rev.add_argument("--reason", required=True, help="RFC 5280 reason: keyCompromise, superseded, affiliationChanged, "
                     "cessationOfOperation, privilegeWithdrawn, cACompromise or unspecified")  # fmt: skip
    rev.add_argument("--serial", help="a serial number the issuer signed (hex), for a certificate whose object is gone")
    rev.add_argument("--issuer", metavar="KIND/NAME", help="with --serial: MtlsIssuer/x or ClusterMtlsIssuer/y")
    rev.add_argument("--comment", help="free text for the record (a ticket, the partner's report)")
    rev.add_argument("--timeout", type=float, default=60, help="seconds to wait until the CRL lists it; 0: do not wait")
    rec = sub.add_parser("record", help="record yourself as the requester of certificates: NAME..., -l or --all")
    rec.add_argument("names", nargs="*", metavar="NAME")
    rec.add_argument("-l", "--selector", help="label selector")
    rec.add_argument("--all", action="store_true", help="every certificate in the namespace (with -A: everywhere)")
    rec.add_argument("-A", "--all-namespaces", action="store_true")
    for p in (csr, imp, st, ins, chk, ren, rev, rec):
        p.add_argument("-n", "--namespace", dest="sub_namespace", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kubernetes.config.load_kube_config(config_file=args.kubeconfig, context=args.context)
        namespace = namespace_of(args.sub_namespace or args.namespace, args.context, args.kubeconfig)
        api = kubernetes.client.ApiClient()
        return COMMANDS[args.command](
            args, kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api), namespace
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PluginError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ApiException as exc:
        print(f"error: API request failed: {exc.status} {exc.reason}", file=sys.stderr)
    except kubernetes.config.ConfigException as exc:
        print(f"error: kubeconfig: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
