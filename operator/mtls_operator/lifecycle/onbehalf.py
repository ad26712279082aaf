"""Secrets a certificate names, read on its requester's behalf only when the requester could read them.

A certificate names Secrets the operator then reads with its own rights: the CA of signer `ca`, the upload of signer
`manual` (which may carry a key: bring your own), the CA bundle of signer `kubernetes`, the keystores' password.
Someone who may create certificates but not read Secrets could otherwise sign with another application's CA key or
copy another application's key. So when a believed requester is recorded (api.requester), RBAC is asked whether that
user may `get` the Secret, before it is read. Without one, 0.2 reads it as before (deprecated) unless the operator
runs with --require-requester, which refuses it (the 0.3 default).
A refusal names the Secret and the field, never anything inside it.
"""

from __future__ import annotations

import datetime

from mtls_operator.api.spec import CertificateSpec
from mtls_operator.lifecycle.accessreviews import AccessReviews
from mtls_operator.lifecycle.attempt import Rejected
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.useaccess import REQUESTER_UNKNOWN

SECRET_NOT_READABLE = "SecretNotReadable"


async def unreadable(
    access: AccessReviews | None, spec: CertificateSpec, secret: str, field: str, now: datetime.datetime
) -> Rejected | None:
    """A refusal when the certificate's requester may not get Secret `secret` (named by `field`), else None."""
    requester = spec.requester
    if access is None:
        return None
    if requester is None or not access.believed():
        if not access.required:
            return None  # deprecated: read as before 0.2
        message = (
            f"Secret {secret} ({field}) is read only for this certificate's requester, and no requester is recorded "
            "(annotation mtls.dev/requested-by, checked by the chart's admission policy): re-apply the certificate "
            "where a MutatingAdmissionPolicy records it, or record yourself (`kubectl mtls record NAME`)"
        )
        return Rejected(REQUESTER_UNKNOWN, message, phase=phases.PENDING)
    if await access.may_read_secret(requester, spec.namespace, secret):
        return None
    message = (
        f"{requester}, recorded as this certificate's requester, may not read Secret {secret} ({field}), so the "
        "operator does not read it on their behalf: name a Secret they may read, or give them get on it"
    )
    return Rejected(SECRET_NOT_READABLE, message, phase=phases.PENDING, retry_at=now + access.ttl)
