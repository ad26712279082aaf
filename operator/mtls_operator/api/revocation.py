"""MtlsRevocation as a typed value (the only reader of its raw spec) and what the operator recorded on it.

A revocation names what it takes back: an MtlsCertificate of its own namespace (the serial in service when the
operator first resolves it), or an issuer's serial number — for a certificate whose object is gone. It is a request
with its own lifecycle, made by whoever RBAC allows to create it, and immutable once made (the CRD's CEL rule).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.names import (
    CLUSTER_ISSUER_KIND,
    ISSUER_KIND,
    REVOKED_ISSUER_ANNOTATION,
    REVOKED_SERIAL_ANNOTATION,
)
from mtls_operator.api.refs import IssuerKey, IssuerRef
from mtls_operator.api.status import parse_time
from mtls_operator.pki.crl import REASONS, parse_serial

RevocationKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class RevocationSpec:
    namespace: str
    name: str
    uid: str
    certificate_name: str | None
    issuer_ref: IssuerRef | None  # with serial_number
    serial_number: int | None
    reason: str
    requested_by: str
    created: datetime.datetime | None  # the revocation date in the CRL: when the apiserver stored the request

    @property
    def key(self) -> RevocationKey:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class ResolvedRevocation:
    """What the operator recorded it revokes (annotations on the object): durable like the spec."""

    issuer: IssuerKey
    serial_number: int


def parse_revocation(body: Mapping[str, Any]) -> RevocationSpec:
    """Raises ValueError naming the field (the CRD schema and its CEL rules catch these at apply time)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ValueError("spec must be an object")
    reason = str(spec.get("reason") or "")
    if reason not in REASONS:
        raise ValueError(f"spec.reason {reason[:60]!r} is not one of {', '.join(REASONS)}")
    certificate = spec.get("certificateName") or None
    serial_text = spec.get("serialNumber") or None
    ref = spec.get("issuerRef") or None
    if (certificate is None) == (serial_text is None):
        raise ValueError("spec needs exactly one of certificateName and serialNumber (with issuerRef)")
    issuer_ref = None
    serial = None
    if serial_text is not None:
        if not isinstance(ref, Mapping) or not ref.get("name"):
            raise ValueError("spec.serialNumber needs spec.issuerRef (the issuer that signed it)")
        kind = str(ref.get("kind") or ISSUER_KIND)
        if kind not in (ISSUER_KIND, CLUSTER_ISSUER_KIND):
            raise ValueError(f"spec.issuerRef.kind must be {ISSUER_KIND} or {CLUSTER_ISSUER_KIND}")
        issuer_ref = IssuerRef(kind, str(ref["name"]))
        serial = parse_serial(str(serial_text))
    return RevocationSpec(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        certificate_name=str(certificate) if certificate else None,
        issuer_ref=issuer_ref,
        serial_number=serial,
        reason=reason,
        requested_by=str(spec.get("requestedBy") or ""),
        created=parse_time(meta.get("creationTimestamp")),
    )


def resolved_of(body: Mapping[str, Any]) -> ResolvedRevocation | None:
    """What the operator recorded on the object, or None when not resolved yet (or the record is unreadable)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    serial_text, issuer_text = annotations.get(REVOKED_SERIAL_ANNOTATION), annotations.get(REVOKED_ISSUER_ANNOTATION)
    if not serial_text or not issuer_text:
        return None
    kind, _, name = str(issuer_text).partition("/")
    if kind not in (ISSUER_KIND, CLUSTER_ISSUER_KIND) or not name:
        return None
    try:
        serial = parse_serial(str(serial_text))
    except ValueError:
        return None
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    return ResolvedRevocation(IssuerRef(kind, name).key(namespace), serial)


def resolution_annotations(issuer: IssuerKey, serial_hex: str) -> dict[str, str]:
    return {REVOKED_SERIAL_ANNOTATION: serial_hex, REVOKED_ISSUER_ANNOTATION: f"{issuer.kind}/{issuer.name}"}
