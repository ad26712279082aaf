"""`kubectl mtls revoke`: take back a certificate an issuer of ours signed (an MtlsRevocation).

By name, the certificate in service of an MtlsCertificate; or, for one whose object is gone, an issuer's serial
number (`--serial` with `--issuer`). The revocation records who asks: the name the apiserver authenticates this
user as (a SelfSubjectReview, what `kubectl auth whoami` asks), which the chart's admission policy holds it to.
Then it waits until the issuer's CRL lists the serial (or --timeout), and says where the CRL is.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import API_VERSION, GROUP, REVOCATION_KIND, REVOCATION_PLURAL, VERSION
from mtls_operator.api.status import find_condition
from mtls_operator.pki.crl import REASONS, parse_serial
from mtls_operator.plugin.common import PluginError, UsageError, get_certificate

POLL_SECONDS = 0.5


def whoami() -> str:
    request = kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    review: Any = kubernetes.client.AuthenticationV1Api().create_self_subject_review(request)
    return str(review.status.user_info.username)


def revocation_body(args: argparse.Namespace, namespace: str, requested_by: str) -> dict[str, Any]:
    if args.reason not in REASONS:
        raise UsageError(f"--reason must be one of: {', '.join(REASONS)}")
    spec: dict[str, Any] = {"reason": args.reason, "requestedBy": requested_by}
    if args.serial:
        if not args.issuer or "/" not in args.issuer:
            raise UsageError("--serial needs --issuer KIND/NAME (MtlsIssuer/x or ClusterMtlsIssuer/y)")
        kind, _, issuer = args.issuer.partition("/")
        if kind not in ("MtlsIssuer", "ClusterMtlsIssuer"):
            raise UsageError("--issuer KIND must be MtlsIssuer or ClusterMtlsIssuer")
        parse_serial(args.serial)  # a clear error here rather than at admission
        spec |= {"serialNumber": args.serial, "issuerRef": {"kind": kind, "name": issuer}}
        name = args.name or f"serial-{args.serial.replace(':', '').lower()[:40]}-{uuid.uuid4().hex[:5]}"
    else:
        if not args.name:
            raise UsageError("say which certificate: NAME, or --serial with --issuer")
        spec["certificateName"] = args.name
        name = args.name
    if args.comment:
        spec["comment"] = args.comment
    return {
        "apiVersion": API_VERSION,
        "kind": REVOCATION_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def cmd_revoke(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    if args.name and not args.serial:
        cert = get_certificate(custom, namespace, args.name)
        issued = (cert.get("status") or {}).get("issuedBy") or {}
        if not issued.get("serialNumber"):
            raise PluginError(
                f"{namespace}/{args.name} has no certificate in service signed by an MtlsIssuer or ClusterMtlsIssuer: "
                "only those issuers publish CRLs (a partner-signed certificate is revoked by the partner's CA)"
            )
        print(f"{namespace}/{args.name}: revoking serial {issued['serialNumber']} of {issued.get('issuer')}")
    body = revocation_body(args, namespace, whoami())
    name = body["metadata"]["name"]
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, REVOCATION_PLURAL, body)
    except ApiException as exc:
        if exc.status == 409:
            raise PluginError(
                f'mtlsrevocation "{name}" already exists in "{namespace}": a revocation is final'
            ) from None
        if exc.status in (403, 422):
            raise PluginError(f"refused by the apiserver ({exc.status}): {_message(exc)}") from None
        raise
    print(f"mtlsrevocation {namespace}/{name} created ({args.reason})")
    deadline = time.monotonic() + args.timeout
    condition: dict[str, Any] = {}
    while args.timeout > 0 and time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, REVOCATION_PLURAL, name)
        condition = find_condition(obj.get("status") or {}, "Published")
        if condition.get("status") == "True" or condition.get("reason") not in (None, "Pending"):
            break
        time.sleep(POLL_SECONDS)
    if condition.get("status") == "True":
        print(f"published: {condition.get('message')}")
        return 0
    if args.timeout <= 0:
        return 0
    print(
        f"not published yet: {condition.get('reason', 'no answer from the operator')}: {condition.get('message', '')}"
    )
    return 1


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message"))
    except (TypeError, ValueError):
        return str(exc.reason)
