"""`kubectl mtls renew`: ask the operator to renew now, as `cmctl renew` does.

It sets the annotation mtls.dev/renew-requested-at; the operator starts one renewal (a new key per
rotationPolicy; for `manual`, a new CSR to send; automatic signers re-issue at once) and records the request as
satisfied when the new certificate is in service. Asking again while a request is still open changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from mtls_operator.api.names import GROUP, PLURAL, RENEW_ANNOTATION, VERSION
from mtls_operator.api.status import MICRO_TIME_FORMAT, utcnow
from mtls_operator.plugin.common import certificate_targets


def cmd_renew(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    targets = certificate_targets(args, custom, namespace)
    if not targets:
        print("no certificates matched")
        return 0
    stamp = utcnow().strftime(MICRO_TIME_FORMAT)
    for cert in targets:
        meta, status = cert["metadata"], cert.get("status") or {}
        where = f"{meta['namespace']}/{meta['name']}"
        open_request = (meta.get("annotations") or {}).get(RENEW_ANNOTATION)
        if open_request and open_request != status.get("lastRenewalRequest"):
            print(f"{where}: renewal already requested at {open_request} and under way; not asking twice")
            continue
        patch = {"metadata": {"annotations": {RENEW_ANNOTATION: stamp}}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch)
        print(f"{where}: renewal requested; the certificate in service keeps serving until the new one is in")
    return 0
