"""Revocations the operator makes by itself when an issuer asks for them (spec.revocation): of the certificate of a
deleted MtlsCertificate (revokeOnDelete, cessationOfOperation) and of one a renewal superseded (revokeSuperseded).

They are MtlsRevocation objects like anyone's — the same record, the same path into the CRL — made in the issuer's
own namespace (a ClusterMtlsIssuer's: the cluster issuers' namespace) by serial number, `requestedBy` the
operator's own name as the apiserver knows it. Their names are fixed by issuer and serial, so making one twice is
harmless, and a retry after a crash finds the first.

revokeOnDelete holds a finalizer on the certificates it covers: the object's deletion waits until the revocation
exists, so a deletion while the operator is down is revoked when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.issuer import parse_issuer, revokes_on_delete
from mtls_operator.api.names import (
    API_VERSION,
    CLUSTER_ISSUER_KIND,
    ISSUER_KIND,
    REVOCATION_KIND,
    REVOKE_ON_DELETE_FINALIZER,
)
from mtls_operator.api.refs import IssuerKey, IssuerRef
from mtls_operator.kube.client import KubeIO
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.pki.crl import parse_serial

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"
CESSATION = "cessationOfOperation"


@dataclass(frozen=True)
class IssuedBy:
    """status.issuedBy of a certificate: which issuer of ours signed the certificate in service, and its serial."""

    issuer: IssuerKey
    serial_hex: str

    @classmethod
    def of(cls, body: Mapping[str, Any] | None) -> IssuedBy | None:
        status = (body or {}).get("status") or {}
        issued = status.get("issuedBy") or {}
        kind, _, name = str(issued.get("issuer") or "").partition("/")
        serial = str(issued.get("serialNumber") or "")
        if kind not in (ISSUER_KIND, CLUSTER_ISSUER_KIND) or not name or not serial:
            return None
        namespace = str(((body or {}).get("metadata") or {}).get("namespace") or "")
        return cls(IssuerRef(kind, name).key(namespace), serial)


def superseded(before: Mapping[str, Any], after: Mapping[str, Any]) -> IssuedBy | None:
    """The certificate a reconcile replaced with another of the same issuer (pure)."""
    old, new = IssuedBy.of(before), IssuedBy.of(after)
    if old is None or new is None or old.issuer != new.issuer or old.serial_hex == new.serial_hex:
        return None
    return old


def finalizers_wanted(body: Mapping[str, Any], issuer_body: Mapping[str, Any] | None) -> list[str] | None:
    """The certificate's finalizers as they should be (None: as they are): ours while its issuer revokes on delete
    and it has a certificate of that issuer in service (pure)."""
    meta = body.get("metadata") or {}
    current = list(meta.get("finalizers") or [])
    wanted = revokes_on_delete(issuer_body) and IssuedBy.of(body) is not None and not meta.get("deletionTimestamp")
    if wanted and REVOKE_ON_DELETE_FINALIZER not in current:
        return [*current, REVOKE_ON_DELETE_FINALIZER]
    if not wanted and REVOKE_ON_DELETE_FINALIZER in current and not meta.get("deletionTimestamp"):
        return [f for f in current if f != REVOKE_ON_DELETE_FINALIZER]
    return None


class AutoRevoker:
    def __init__(self, kube: KubeIO, directory: IssuerDirectory) -> None:
        self.kube = kube
        self.directory = directory
        self._name: str | None = None  # ours, as the apiserver authenticates us: asked once, when first needed

    async def requested_by(self) -> str:
        if not self._name:
            self._name = await self.kube.whoami()
        return self._name

    def _issuer_wants(self, issuer: IssuerKey, what: str) -> bool:
        body = self.directory.find(issuer)
        if body is None:
            return False
        try:
            spec = parse_issuer(issuer.kind, body)
        except ValueError:
            return False
        return spec.revoke_superseded if what == SUPERSEDED else spec.revoke_on_delete

    async def after_reconcile(self, before: Mapping[str, Any], after: Mapping[str, Any] | None) -> None:
        """revokeSuperseded, and the revokeOnDelete finalizer kept in step with the issuer's wish."""
        if after is None:
            return
        old = superseded(before, after)
        if old is not None and self._issuer_wants(old.issuer, SUPERSEDED):
            certificate = f"{after['metadata']['namespace']}/{after['metadata']['name']}"
            await self.revoke(old, SUPERSEDED, f"superseded by a renewal of MtlsCertificate {certificate}")
        issued = IssuedBy.of(after)
        wanted = finalizers_wanted(after, self.directory.find(issued.issuer) if issued else None)
        if wanted is not None:
            meta = after["metadata"]
            await self.kube.set_finalizers(meta["namespace"], meta["name"], meta["resourceVersion"], wanted)

    async def on_delete(self, body: Mapping[str, Any]) -> None:
        """A certificate being deleted with our finalizer: revoked (when its issuer still asks), then let go."""
        meta = body["metadata"]
        issued = IssuedBy.of(body)
        if issued is not None and self._issuer_wants(issued.issuer, CESSATION):
            await self.revoke(issued, CESSATION, f"MtlsCertificate {meta['namespace']}/{meta['name']} was deleted")
        rest = [f for f in meta.get("finalizers") or [] if f != REVOKE_ON_DELETE_FINALIZER]
        await self.kube.set_finalizers(meta["namespace"], meta["name"], meta["resourceVersion"], rest)

    async def revoke(self, issued: IssuedBy, reason: str, comment: str) -> None:
        if self.directory.revoked(issued.issuer, parse_serial(issued.serial_hex)) is not None:
            return  # revoked already (by a person, or keyCompromise before its re-issue)
        namespace = self.directory.ca_namespace(issued.issuer)
        name = f"{'deleted' if reason == CESSATION else reason}-{issued.serial_hex.lower()}"[:253]
        body = {
            "apiVersion": API_VERSION,
            "kind": REVOCATION_KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "serialNumber": issued.serial_hex,
                "issuerRef": {"kind": issued.issuer.kind, "name": issued.issuer.name},
                "reason": reason,
                "requestedBy": await self.requested_by(),
                "comment": comment[:1024],
            },
        }
        created = await self.kube.create_revocation(namespace, body)
        log.info("%s: %s serial %s (%s): %s", issued.issuer, "revoked" if created else "already revoking",
                 issued.serial_hex, reason, comment)  # fmt: skip
